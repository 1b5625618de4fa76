"""Running validator-accepted GGUF mutants through a native consumer, surviving crashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.inspect import inspect_model
from tests.support.gguf_corpus import FieldMap, materialize

ROOT = Path(__file__).resolve().parents[2]


def accepted_mutants(model: Path, folder: Path, count: int) -> list[str]:
    """Write `count` mutants of `model` and keep those our validator accepts."""
    accepted = []
    for path in materialize(FieldMap.of(model), folder, count):
        try:
            inspect_model(path)
            accepted.append(str(path))
        except ModelFileError:
            path.unlink()
    return accepted


def run_restarting(module: str, paths: list[str],
                   timeout: float) -> tuple[list[str], list[str]]:
    """Run `python -m module PATH...` (which prints `start PATH` before each file);
    after a crash, start again past the file that caused it.

    Returns the lines the runs printed other than `start` lines, and the crashes.
    """
    lines: list[str] = []
    crashed: list[str] = []
    todo = paths
    while todo:
        proc = subprocess.run([sys.executable, "-m", module, *todo], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)
        out = proc.stdout.splitlines()
        lines += [ln for ln in out if not ln.startswith("start ")]
        if proc.returncode == 0:
            break
        started = [ln.split(" ", 1)[1] for ln in out if ln.startswith("start ")]
        crashed.append(f"{Path(started[-1]).name} (exit {proc.returncode})")
        todo = todo[todo.index(started[-1]) + 1:]
    return lines, crashed
