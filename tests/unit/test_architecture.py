"""The layering rules of the architecture, checked on the real code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import macllm_app

PACKAGE = Path(macllm_app.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_qt() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / "core").rglob("*.py"))
        for name in _imported_modules(path)
        if name.split(".")[0] in {"PySide6", "PyQt6", "PyQt5", "shiboken6"}
    ]
    assert offenders == []


def test_core_files_were_scanned() -> None:
    assert len(list((PACKAGE / "core").rglob("*.py"))) > 10


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_importing_the_whole_ui_loads_no_engine() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import macllm_app.ui as ui\n"
        "names = [m.name for m in pkgutil.walk_packages(ui.__path__, 'macllm_app.ui.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'llama_cpp', 'mlx', 'mlx_lm', 'transformers', 'huggingface_hub', 'torch'})\n"
        "print(len(names)); print(bad)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    count, bad = result.stdout.strip().splitlines()
    assert int(count) >= 3
    assert bad == "[]"


def test_importing_core_and_cli_loads_no_engine() -> None:
    code = (
        "import sys\n"
        "import macllm_app.cli, macllm_app.core.engines.host, macllm_app.core.chat\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'llama_cpp', 'mlx', 'PySide6', 'huggingface_hub'}))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_library_import_is_lazy() -> None:
    code = (
        "import sys\n"
        "import macllm_app.core.library.commands, macllm_app.core.library.stores\n"
        "import macllm_app.core.library.importer, macllm_app.core.library.pull\n"
        "import macllm_app.core.library.download, macllm_app.core.library.hub\n"
        "import macllm_app.core.library.loading, macllm_app.core.library.model_choice\n"
        "import macllm_app.core.hardware.fit, macllm_app.core.library.memory_records\n"
        "bad = [m for m in ('huggingface_hub', 'llama_cpp', 'PySide6', 'mlx', 'httpx2', 'gguf')"
        " if m in sys.modules]\n"
        "print(bad)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
