"""Mutants the validator accepts must not crash llama.cpp (it may still refuse them cleanly)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mutant_runs import accepted_mutants, run_restarting


@pytest.mark.slow
@pytest.mark.llamacpp
def test_accepted_mutants_do_not_crash_llama_cpp(default_model: Path, tmp_path: Path) -> None:
    accepted = accepted_mutants(default_model, tmp_path / "corpus", 400)
    assert len(accepted) >= 5
    _, crashed = run_restarting("tests.support.load_mutants", accepted, timeout=300)
    assert crashed == []
