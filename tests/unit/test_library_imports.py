"""Importing the library is light: no Hub client, no engines, no Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_library_import_is_lazy() -> None:
    code = (
        "import sys\n"
        "import macllm_app.core.library.commands, macllm_app.core.library.stores\n"
        "import macllm_app.core.library.importer, macllm_app.core.library.pull\n"
        "import macllm_app.core.library.download, macllm_app.core.library.hub\n"
        "import macllm_app.core.hardware.fit, macllm_app.core.library.memory_records\n"
        "bad = [m for m in ('huggingface_hub', 'llama_cpp', 'PySide6', 'mlx', 'httpx2', 'gguf')"
        " if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"
