"""`macllm quantize --engine mlx` run as a user runs it, on a tiny random-weight model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.mlx, pytest.mark.slow]

MACLLM = [sys.executable, "-m", "macllm_app.cli"]


def _macllm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MACLLM, *args], capture_output=True, text=True, timeout=300,
                          check=False, env=os.environ.copy())


def test_mlx_quantize_writes_a_folder_into_the_library(tmp_path: Path) -> None:
    base = make_tiny_mlx_model(tmp_path / "tiny")
    out = tmp_path / "tiny-3bit"
    made = _macllm("quantize", str(base), "--mlx-bits", "3", "--group-size",
                   "32", "-o", str(out), "--json")
    assert made.returncode == 0, made.stderr
    entry = json.loads(made.stdout)
    assert entry["path"] == str(out) and entry["format"] == "mlx"
    assert entry["extra"]["quantization"] == "affine 3-bit g32"
    assert json.loads((out / "config.json").read_text())["quantization"]["bits"] == 3
    assert "Quantizing for MLX (affine 3-bit g32)" in made.stderr
    listed = json.loads(_macllm("models", "list", "--json").stdout)
    assert any(row["path"] == str(out) for row in listed)


def test_mlx_quantize_refuses_llama_cpp_options_in_one_line(tmp_path: Path) -> None:
    base = make_tiny_mlx_model(tmp_path / "tiny")
    out = tmp_path / "never"
    mixed = _macllm("quantize", str(base), "--engine", "mlx", "--type", "Q4_0", "-o", str(out))
    assert mixed.returncode == 1 and "Traceback" not in mixed.stderr
    assert mixed.stderr.strip().splitlines() == [
        "macllm: --type, --imatrix and --calibration are llama.cpp's; MLX takes --bits, "
        "--group-size, --mode, --recipe and --dynamic-bpw."]
    odd = _macllm("quantize", str(base), "--engine", "mlx", "--group-size", "128", "-o",
                  str(out))
    assert odd.returncode == 1 and "does not divide tiny's hidden size (64)" in odd.stderr
    untyped = _macllm("quantize", str(base), "-o", str(out))
    assert untyped.returncode == 1 and "Give --type" in untyped.stderr
    assert not out.exists()
