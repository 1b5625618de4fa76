"""llama.cpp's own tools (llama-bench, llama-quantize, llama-imatrix, llama-perplexity,
llama-server), built once from the vendored llama.cpp in the llama-cpp-python source
distribution we depend on, into a cache folder outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

CACHE = Path(os.environ.get("MACLLM_BENCH_CACHE", Path.home() / ".cache" / "macllm-bench"))


def build_llama_tool(name: str, jobs: int | None = None) -> Path:
    """The path of llama.cpp's `name` tool, built first if needed (a few minutes)."""
    version = metadata.version("llama-cpp-python")
    root = CACHE / f"llama-cpp-python-{version}"
    binary = root / "build" / "bin" / name
    if binary.exists():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    sdists = list(root.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                        "--no-deps", f"llama-cpp-python=={version}", "-d", str(root)],
                       check=True)
        sdists = list(root.glob("llama_cpp_python-*.tar.gz"))
    src = root / "src"
    if not src.exists():
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(root / "unpack", filter="data")
        shutil.move(next((root / "unpack").iterdir()), src)
    vendor = src / "vendor" / "llama.cpp"
    build = root / "build"
    subprocess.run(["cmake", "-S", str(vendor), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    f"-DLLAMA_BUILD_SERVER={'ON' if name == 'llama-server' else 'OFF'}",
                    "-DLLAMA_CURL=OFF"], check=True)
    subprocess.run(["cmake", "--build", str(build), "-j", str(jobs or os.cpu_count() or 2),
                    "--target", name], check=True)
    return binary
