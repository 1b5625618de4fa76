"""Mutants the validator accepts must not crash the GGUF -> MLX converter or MLX.

Each either converts and runs, or is refused with a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mutant_runs import accepted_mutants, run_restarting

pytestmark = [pytest.mark.slow, pytest.mark.mlx]


def test_accepted_mutants_convert_cleanly_or_are_refused(default_model: Path,
                                                          tmp_path: Path) -> None:
    accepted = accepted_mutants(default_model, tmp_path / "corpus", 400)
    assert len(accepted) >= 5
    verdicts, crashed = run_restarting("tests.support.convert_mutants", accepted, timeout=600)
    assert crashed == []
    assert [v for v in verdicts if v.startswith("bug ")] == []
    assert len(verdicts) == len(accepted)
    assert any(v.startswith("error ") for v in verdicts)  # the corpus does reach the converter
