"""`macllm convert` run as a user runs it: a subprocess, the real default model, a round
trip GGUF -> MLX -> GGUF that llama.cpp then chats with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gguf_writer import TinyGGUF

pytestmark = [pytest.mark.mlx, pytest.mark.llamacpp, pytest.mark.slow]

MACLLM = [sys.executable, "-m", "macllm_app.cli"]


def _macllm(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MACLLM, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=os.environ.copy())


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("macllm:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def test_round_trip_gguf_mlx_gguf(default_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "smollm2-mlx"
    result = _macllm("convert", "gguf-to-mlx", str(default_model), "-o", str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(folder)
    assert "100% Converted" in result.stderr
    inspect = _macllm("models", "inspect", str(folder), "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["architecture"] == "llama"

    again = _macllm("convert", "gguf-to-mlx", str(default_model), "-o", str(folder))
    assert again.returncode == 1
    assert "not empty" in _one_error_line(again.stderr)

    gguf = tmp_path / "smollm2-f16.gguf"
    result = _macllm("convert", "mlx-to-gguf", str(folder), "-o", str(gguf))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(gguf)
    chat = _macllm("chat", "--model", str(gguf), "--prompt", "What is 2+2?", "--temp", "0",
                   "--max-tokens", "8", "--threads", "2", "--ctx", "512")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip()

    taken = _macllm("convert", "mlx-to-gguf", str(folder), "-o", str(gguf))
    assert taken.returncode == 1
    assert "already exists" in _one_error_line(taken.stderr)


def test_user_errors_and_usage(tmp_path: Path) -> None:
    qwen = TinyGGUF.llama(arch="qwen2").write(tmp_path / "tiny-qwen2.gguf")
    result = _macllm("convert", "gguf-to-mlx", str(qwen), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "architecture 'qwen2'" in _one_error_line(result.stderr)
    assert not (tmp_path / "out").exists()
    assert _macllm("convert", "gguf-to-mlx", str(qwen)).returncode == 2
    assert _macllm("convert").returncode == 2


def test_ctrl_c_cancels_an_export(converted_default_model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cancelled.gguf"
    with subprocess.Popen([*MACLLM, "convert", "mlx-to-gguf", str(converted_default_model),
                           "-o", str(dest)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(" 10%"):
                proc.send_signal(signal.SIGINT)
                break
        _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert "cancelled" in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["macllm-home"]
