"""1,000 mutants of the default model's header through inspect and import, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gguf_fuzz_corpus(default_model: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.fuzz_gguf", str(default_model), "1000",
         str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["count"] == 1000
    assert result["n_problems"] == 0, result["problems"]
    assert result["verdicts"]["valid"] + result["verdicts"]["error"] == 1000
    assert result["verdicts"]["error"] > 900  # the corpus really is hostile
    assert result["slowest_s"] < 2.0  # no hangs
    assert result["copies"] >= 1  # some valid mutants went through a real copy-import
    assert not result["llama_cpp_imported"]
