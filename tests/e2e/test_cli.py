"""The `macllm` command run as a user runs it: a subprocess, the real default model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

MACLLM = [sys.executable, "-m", "macllm_app.cli"]
LONG_REPLY = ["--prompt", "Count from 1 to 200, one number per line.", "--temp", "0",
              "--max-tokens", "400", "--threads", "2", "--ctx", "1024"]


def _macllm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MACLLM, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=os.environ.copy())


def test_one_shot_json_has_text_and_stats() -> None:
    result = _macllm("chat", "--prompt", "What is 2+2?", "--temp", "0", "--max-tokens", "12",
                     "--threads", "2", "--ctx", "1024", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["text"].strip()
    stats = payload["stats"]
    assert payload["engine"] == "llama.cpp"
    assert 0 < stats["generated_tokens"] <= 12
    assert stats["prompt_tokens"] > 5
    assert stats["decode_tps"] > 0
    assert stats["finish_reason"] in {"stop", "length"}


def test_greedy_one_shot_is_deterministic() -> None:
    args = ("chat", "--prompt", "Name a colour.", "--temp", "0", "--max-tokens", "10",
            "--threads", "2", "--ctx", "1024")
    first, second = _macllm(*args), _macllm(*args)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout.strip()


def test_reply_streams_before_the_process_ends() -> None:
    proc = subprocess.Popen([*MACLLM, "chat", *LONG_REPLY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        first = proc.stdout.read1(64)  # returns as soon as the first piece is flushed
        still_running = proc.poll() is None
        rest = proc.stdout.read()
    finally:
        proc.wait(60)
    assert first
    assert still_running, "the first text arrived only after the process had finished"
    assert len(rest) > len(first)
    assert proc.returncode == 0


def test_missing_model_is_a_one_line_user_error() -> None:
    result = _macllm("chat", "--model", "/nonexistent/model.gguf", "--prompt", "hi")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent/model.gguf" in lines[0]


def test_not_a_gguf_is_refused_before_the_engine(tmp_path: Path) -> None:
    bogus = tmp_path / "fake.gguf"
    bogus.write_bytes(b"NOTGGUF" + b"\0" * 100)
    result = _macllm("chat", "--model", str(bogus), "--prompt", "hi")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "fake.gguf" in result.stderr


def test_bad_usage_exits_2() -> None:
    result = _macllm("chat", "--max-tokens", "many")
    assert result.returncode == 2


def _engine_host_of(proc: subprocess.Popen[bytes]) -> psutil.Process:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(proc.pid).children(recursive=True):
            if "multiprocessing" in " ".join(child.cmdline()) and "resource_tracker" not in \
                    " ".join(child.cmdline()):
                return child
        time.sleep(0.05)
    raise AssertionError("no engine host process appeared")


def test_engine_crash_mid_reply_exits_3_with_a_plain_message() -> None:
    proc = subprocess.Popen([*MACLLM, "chat", *LONG_REPLY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    host = _engine_host_of(proc)
    assert proc.stdout.read1(16)  # the reply has started
    host.send_signal(signal.SIGKILL)
    proc.wait(60)
    stderr = proc.stderr.read().decode()
    assert proc.returncode == 3
    assert "The engine stopped unexpectedly (killed by SIGKILL" in stderr
    assert "Traceback" not in stderr


def test_ctrl_c_cancels_with_exit_130() -> None:
    proc = subprocess.Popen([*MACLLM, "chat", *LONG_REPLY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read1(16)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr.read().decode()


def test_ctrl_c_in_the_repl_stops_the_reply_and_keeps_its_real_stats() -> None:
    proc = subprocess.Popen(
        [*MACLLM, "chat", "--temp", "0", "--max-tokens", "2000", "--threads", "2",
         "--ctx", "4096"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"Write a very long story about a dragon.\n")
    proc.stdin.flush()
    received = b""
    while received.count(b" ") < 40:  # the reply is well under way
        received += proc.stdout.read1(256)
    proc.send_signal(signal.SIGINT)
    proc.stdin.close()  # then end of input: the REPL exits
    proc.wait(60)
    stderr = proc.stderr.read().decode()
    assert proc.returncode == 0, stderr
    assert "(stopped)" in stderr
    line = next(text for text in stderr.splitlines() if "tokens," in text)
    tokens, speed = line.strip("[]").split(", ")[:2]
    assert int(tokens.split()[0]) >= 40, line  # not "[0 tokens, 0.0 tok/s, TTFT 0 ms]"
    assert float(speed.split()[0]) > 0, line


def test_repl_keeps_history_and_exits_on_eof() -> None:
    result = subprocess.run(
        [*MACLLM, "chat", "--temp", "0", "--max-tokens", "8", "--threads", "2", "--ctx", "1024"],
        input="My name is Ada.\nWhat is my name?\n", capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("tokens,") == 2  # one stats line per reply
    assert result.stdout.count(">>> ") == 3


def test_models_list_names_only_engines_this_build_runs() -> None:
    result = _macllm("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    default = next(row for row in rows if row.get("source") == "bundled")
    assert default["engines"] == ["llama.cpp", "mlx"]  # MLX through its converted copy


def test_monitor_prints_json_samples_of_macllms_processes() -> None:
    repl = subprocess.Popen([*MACLLM, "chat", "--threads", "2", "--ctx", "1024"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        host = _engine_host_of(repl)
        result = _macllm("monitor", "--json", "--count", "2", "--interval", "0.2")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 2
        samples = [json.loads(line) for line in lines]
        assert samples[1]["time"] > samples[0]["time"]
        latest = samples[-1]
        assert latest["memory"]["total_bytes"] > latest["memory"]["used_bytes"] > 0
        assert latest["pressure"] in {"normal", "warning", "critical", "unknown"}
        pids = {p["pid"]: p for p in latest["processes"]}
        assert repl.pid in pids and host.pid in pids  # the command and its engine host
        assert pids[host.pid]["rss_bytes"] > 50_000_000
    finally:
        assert repl.stdin is not None
        repl.stdin.close()
        repl.wait(60)
    text = _macllm("monitor", "--count", "1")
    assert text.returncode == 0 and "pressure" in text.stdout and "used" in text.stdout
    assert _macllm("monitor", "--interval", "0").returncode == 2


def test_a_model_that_wont_fit_needs_force(default_model: Path, tmp_path: Path) -> None:
    padded = tmp_path / "Padded.gguf"  # the default model's tensors, a sparse 2x-RAM tail
    padded.write_bytes(default_model.read_bytes())
    with padded.open("r+b") as handle:
        handle.truncate(2 * psutil.virtual_memory().total)
    args = ("chat", "--model", str(padded), "--prompt", "Hi", "--max-tokens", "3",
            "--threads", "2", "--ctx", "1024")
    refused = _macllm(*args)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    line = refused.stderr.strip()
    assert line.startswith("macllm: Padded.gguf needs about ") and line.endswith(
        "Pass --force to load it anyway.")
    forced = _macllm(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip()
