"""`macllm serve` run as a user runs it: it starts, serves the default model, and stops
cleanly on Ctrl+C (SIGINT), taking its engine host with it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

MACLLM = [sys.executable, "-m", "macllm_app.cli"]


def _wait_for_url(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"the server did not start (exit code {proc.poll()})")


def _open_long_stream(url: str) -> socket.socket:
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"messages": [{"role": "user", "content": "Tell a long story."}],
                       "max_tokens": 400, "ignore_eos": True, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    assert b"data: " in sock.recv(4096) + sock.recv(4096)
    return sock


def test_serve_starts_serves_and_stops_on_sigint(macllm_home: Path) -> None:
    proc = subprocess.Popen([*MACLLM, "serve", "--port", "0", "--parallel", "1", "--ctx",
                             "512", "--threads", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        url = _wait_for_url(proc)
        with urllib.request.urlopen(url + "/health", timeout=30) as response:
            assert json.loads(response.read())["model"] == "default"
        body = json.dumps({"messages": [{"role": "user", "content": "Hi"}],
                           "max_tokens": 4}).encode()
        request = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            assert json.loads(response.read())["choices"][0]["message"]["content"]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the engine host
        streaming = _open_long_stream(url)  # a reply still streaming does not hold Ctrl+C up
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        streaming.close()
        assert time.monotonic() - stopped_at < 15
        assert proc.returncode == 0, err
        assert "Server stopped." in err
        assert "Traceback" not in err
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_lan_bind_without_a_key() -> None:
    no_keychain = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    result = subprocess.run([*MACLLM, "serve", "--host", "0.0.0.0", "--port", "0"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env=no_keychain)
    assert result.returncode == 1
    assert "needs an API key" in result.stderr
    assert "Traceback" not in result.stderr
