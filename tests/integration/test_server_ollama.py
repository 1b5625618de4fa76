"""The Ollama API of `LocalServer` over plain HTTP (JSON lines), on a real server on
127.0.0.1 serving the real default model; and no model management over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.server_thread import ServerThread

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]


@pytest.fixture(scope="module")
def served() -> Iterator[ServerThread]:
    server = ServerThread().start()
    yield server
    server.stop()


def _call(served: ServerThread, method: str, path: str,
          body: Any = None) -> tuple[int, str, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(served.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def _lines(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def test_chat_streams_json_lines_by_default(served: ServerThread) -> None:
    status, kind, raw = _call(served, "POST", "/api/chat", {
        "model": "default", "messages": [{"role": "user", "content": "Say hi."}],
        "options": {"num_predict": 8, "temperature": 0}})
    assert status == 200 and kind.startswith("application/x-ndjson")
    lines = _lines(raw)
    assert len(lines) >= 2
    assert all(not line["done"] for line in lines[:-1])
    assert "".join(line["message"]["content"] for line in lines)
    last = lines[-1]
    assert last["done"] is True and last["done_reason"] in ("stop", "length")
    assert 0 < last["eval_count"] <= 8 and last["prompt_eval_count"] > 0
    assert last["model"] == "default"


def test_chat_without_streaming(served: ServerThread) -> None:
    status, _, raw = _call(served, "POST", "/api/chat", {
        "model": "default:latest", "stream": False,
        "messages": [{"role": "user", "content": "Say hi."}],
        "options": {"num_predict": 6, "temperature": 0}})
    body = json.loads(raw)
    assert status == 200 and body["done"] and body["message"]["content"]


def test_generate_streams_and_honours_json_format(served: ServerThread) -> None:
    status, _, raw = _call(served, "POST", "/api/generate", {
        "model": "default", "prompt": "Once upon a time", "raw": True,
        "options": {"num_predict": 6, "temperature": 0}})
    lines = _lines(raw)
    assert status == 200 and lines[-1]["done"] is True
    assert "".join(line["response"] for line in lines)
    status, _, raw = _call(served, "POST", "/api/generate", {
        "model": "default", "prompt": "A person as JSON.", "stream": False, "format": "json",
        "options": {"num_predict": 40, "temperature": 0}})
    body = json.loads(raw)
    assert status == 200
    if body["done_reason"] == "stop":  # a reply cut by num_predict may be unfinished JSON
        assert isinstance(json.loads(body["response"]), dict)
    else:
        assert body["response"].lstrip().startswith("{")


def test_tags_show_version_and_ps(served: ServerThread) -> None:
    status, _, raw = _call(served, "GET", "/api/tags")
    models = json.loads(raw)["models"]
    assert status == 200 and "default" in [m["name"] for m in models]
    default = next(m for m in models if m["name"] == "default")
    assert default["size"] > 10_000_000 and default["details"]["format"] == "gguf"
    status, _, raw = _call(served, "POST", "/api/show", {"model": "default"})
    shown = json.loads(raw)
    assert status == 200 and shown["details"]["family"] == "llama"
    assert "completion" in shown["capabilities"]
    status, _, raw = _call(served, "GET", "/api/version")
    assert status == 200 and json.loads(raw)["version"]
    status, _, raw = _call(served, "GET", "/api/ps")
    assert status == 200 and [m["name"] for m in json.loads(raw)["models"]] == ["default"]
    status, _, raw = _call(served, "GET", "/")
    assert status == 200 and raw == b"Ollama is running"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/pull"), ("POST", "/api/push"), ("POST", "/api/create"),
    ("POST", "/api/copy"), ("DELETE", "/api/delete"), ("POST", "/api/blobs/sha256:00")])
def test_no_model_management_over_http(served: ServerThread, method: str, path: str) -> None:
    status, _, raw = _call(served, method, path, {"model": "default", "name": "/etc/passwd"})
    assert status in (404, 405)
    assert "error" in json.loads(raw)


def test_show_never_opens_a_path(served: ServerThread) -> None:
    status, _, raw = _call(served, "POST", "/api/show", {"model": "/etc/passwd"})
    assert status == 404 and json.loads(raw)["error"]["code"] == "model_not_found"
