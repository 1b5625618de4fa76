"""`macllm quantize` and `macllm eval` run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

MACLLM = [sys.executable, "-m", "macllm_app.cli"]


def _macllm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MACLLM, *args], capture_output=True, text=True, timeout=300,
                          check=False, env=os.environ.copy())


def test_quantize_then_measure(f16_default_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "smollm2-Q4_0.gguf"
    made = _macllm("quantize", str(f16_default_model), "--type", "q4_0", "-o", str(out),
                   "--threads", "2", "--json")
    assert made.returncode == 0, made.stderr
    entry = json.loads(made.stdout)
    assert entry["path"] == str(out) and entry["quantization"] == "Q4_0"
    assert " of 272 (" in made.stderr and "100% Quantized to Q4_0" in made.stderr
    listed = json.loads(_macllm("models", "list", "--json").stdout)
    assert any(row["path"] == str(out) for row in listed)
    measured = _macllm("eval", str(out), "--base", str(f16_default_model), "--quick",
                       "--threads", "2", "--json")
    assert measured.returncode == 0, measured.stderr
    row = json.loads(measured.stdout)
    assert row["chunks"] == 2 and row["delta_ppl"] > 0 and 0 < row["kld_mean"] < 0.5
    assert row["provenance"]["text"] == "resources/texts/evaluation.txt"


def test_quantize_refuses_in_one_line_and_touches_nothing(default_model: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "again.gguf"
    refused = _macllm("quantize", str(default_model), "--type", "Q4_K_M", "-o", str(out))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "macllm: SmolLM2-135M-Instruct.Q4_1.gguf is already quantized (Q4_1); quantizing it "
        "again loses more quality than starting from F16 or F32. Allow requantizing to go "
        "ahead anyway."]
    assert not out.exists()
    bad = _macllm("quantize", str(default_model), "--type", "Q4_0", "-o", str(out),
                  "--tensor-type", "attn_q")
    assert bad.returncode == 1 and "PATTERN=TYPE" in bad.stderr


def test_quantize_with_a_calibration_text_keeps_its_importance_matrix(
        f16_default_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "smollm2-IQ2_M.gguf"
    made = _macllm("quantize", str(f16_default_model), "--type", "IQ2_M", "--calibration",
                   "default", "-o", str(out), "--threads", "2", "--json")
    assert made.returncode == 0, made.stderr
    matrix = tmp_path / "smollm2-IQ2_M.gguf.imatrix.gguf"
    assert matrix.is_file() and json.loads(made.stdout)["quantization"] == "IQ2_M"
    alone = tmp_path / "again.imatrix.gguf"
    computed = _macllm("imatrix", str(f16_default_model), "--text", "default", "-o", str(alone),
                       "--threads", "2")
    assert computed.returncode == 0, computed.stderr
    assert computed.stdout.strip().endswith("(210 weights, 2 chunks)")
    needs = _macllm("quantize", str(f16_default_model), "--type", "IQ1_S", "-o",
                    str(tmp_path / "x.gguf"))
    assert needs.returncode == 1 and "IQ1_S needs an importance matrix" in needs.stderr
