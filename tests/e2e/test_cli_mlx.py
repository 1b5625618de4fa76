"""`macllm chat` and `macllm bench` on the MLX engine, run as subprocesses."""

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


def _macllm(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MACLLM, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=os.environ.copy())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlx_model(tmp_path_factory.mktemp("cli-mlx") / "tiny", quantize=True)


def test_an_mlx_folder_chats_on_mlx_by_default(tiny_model: Path) -> None:
    result = _macllm("chat", "--model", str(tiny_model), "--prompt", "hi", "--temp", "0",
                     "--max-tokens", "6", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["engine"] == "mlx"
    assert payload["stats"]["engine"] == "mlx"
    assert 0 < payload["stats"]["generated_tokens"] <= 6


def test_an_mlx_folder_on_llama_cpp_is_a_clear_error(tiny_model: Path) -> None:
    result = _macllm("chat", "--model", str(tiny_model), "--engine", "llama.cpp",
                     "--prompt", "hi", "--max-tokens", "4")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bench_prints_the_same_json_on_both_engines(tiny_model: Path,
                                                     default_model: Path) -> None:
    mlx = _macllm("bench", "--model", str(tiny_model), "--engine", "mlx", "--tokens", "8",
                  "--repeat", "1", "--json")
    llama = _macllm("bench", "--model", str(default_model), "--engine", "llama.cpp",
                    "--tokens", "8", "--repeat", "1", "--threads", "2", "--json")
    assert mlx.returncode == 0, mlx.stderr
    assert llama.returncode == 0, llama.stderr
    mlx_result, llama_result = json.loads(mlx.stdout), json.loads(llama.stdout)
    assert mlx_result.keys() == llama_result.keys()
    assert (mlx_result["engine"], llama_result["engine"]) == ("mlx", "llama.cpp")
    for result in (mlx_result, llama_result):
        assert result["generated_tokens"] == 8  # a fixed count: the end token is ignored
        assert result["decode_tps"] > 0 and result["prompt_tps"] > 0
        assert result["peak_rss_mb"] > 10
    assert mlx_result["engine_peak_mb"] > 0
