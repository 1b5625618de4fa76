"""Mutants the validator accepts must not crash the GGUF -> MLX converter or MLX.

Each either converts and runs, or is refused with a one-line error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from macllm_app.core.errors import ModelFileError
from macllm_app.core.library.formats import inspect_model
from tests.library.gguf_corpus import FieldMap, materialize

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.mlx]


def test_accepted_mutants_convert_cleanly_or_are_refused(default_model: Path,
                                                          tmp_path: Path) -> None:
    accepted = []
    for path in materialize(FieldMap.of(default_model), tmp_path / "corpus", 400):
        try:
            inspect_model(path)
            accepted.append(str(path))
        except ModelFileError:
            path.unlink()
    assert len(accepted) >= 5
    crashed: list[str] = []
    verdicts: list[str] = []
    todo = accepted
    while todo:
        proc = subprocess.run([sys.executable, "-m", "tests.library.convert_mutants", *todo],
                              cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        lines = proc.stdout.splitlines()
        verdicts += [ln for ln in lines if not ln.startswith("start ")]
        if proc.returncode == 0:
            break
        started = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("start ")]
        crashed.append(f"{Path(started[-1]).name} (exit {proc.returncode})")
        todo = todo[todo.index(started[-1]) + 1:]
    assert crashed == []
    assert [v for v in verdicts if v.startswith("bug ")] == []
    assert len(verdicts) == len(accepted)
    assert any(v.startswith("error ") for v in verdicts)  # the corpus does reach the converter
