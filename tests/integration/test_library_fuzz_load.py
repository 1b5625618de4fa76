"""Mutants the validator accepts must not crash llama.cpp (it may still refuse them cleanly)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from macllm_app.core.errors import ModelFileError
from macllm_app.core.library.formats import inspect_model
from tests.library.gguf_corpus import FieldMap, materialize

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.llamacpp
def test_accepted_mutants_do_not_crash_llama_cpp(default_model: Path, tmp_path: Path) -> None:
    accepted = []
    for path in materialize(FieldMap.of(default_model), tmp_path / "corpus", 400):
        try:
            inspect_model(path)
            accepted.append(str(path))
        except ModelFileError:
            path.unlink()
    assert len(accepted) >= 5
    crashed: list[str] = []
    todo = accepted
    while todo:
        proc = subprocess.run([sys.executable, "-m", "tests.library.load_mutants", *todo],
                              cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        started = [ln.split(" ", 1)[1] for ln in proc.stdout.splitlines()
                   if ln.startswith("start ")]
        if proc.returncode == 0:
            break
        crashed.append(f"{Path(started[-1]).name} (exit {proc.returncode})")
        todo = todo[todo.index(started[-1]) + 1:]
    assert crashed == []
