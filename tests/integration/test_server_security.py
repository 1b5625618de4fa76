"""Every rule of "secure by default", against a real server on 127.0.0.1: Host and Origin
checks, API keys, the LAN-bind refusal, caps, schema errors, admission (503) and a client
that disconnects (its generation stops within 100 ms)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from macllm_app.core.errors import UserError
from macllm_app.core.server.app import LocalServer
from macllm_app.core.server.config import ServerConfig
from tests.support.server_thread import ServerThread

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

ORIGIN = "http://app.example:3000"
HELLO = [{"role": "user", "content": "Hello!"}]
LONG = {"messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 300, "ignore_eos": True, "stream": True}


@pytest.fixture(scope="module")
def served() -> Iterator[ServerThread]:
    server = ServerThread(parallel=1, queue_size=1, max_body_bytes=4096, max_prompt_tokens=64,
                          max_tokens_cap=300, client_timeout_s=1.0,
                          allowed_origins=(ORIGIN,)).start()
    yield server
    server.stop()


def _request(served: ServerThread, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=60)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=data, headers=all_headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed


def test_foreign_host_is_refused(served: ServerThread) -> None:
    port = served.server.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.nip.io:{port}",
                 f"localhost:{port + 1}"):
        status, _, body = _request(served, "GET", "/v1/models", headers={"Host": host})
        assert status == 403, host
        assert body["error"]["code"] == "forbidden_host"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert _request(served, "GET", "/v1/models", headers={"Host": host})[0] == 200


def test_foreign_origin_is_refused_and_the_allowed_one_served(served: ServerThread) -> None:
    status, _, body = _request(served, "GET", "/v1/models",
                               headers={"Origin": "http://evil.example"})
    assert status == 403 and body["error"]["code"] == "forbidden_origin"
    status, _, _ = _request(served, "OPTIONS", "/v1/chat/completions",
                            headers={"Origin": "http://evil.example",
                                     "Access-Control-Request-Method": "POST"})
    assert status == 403
    status, headers, _ = _request(served, "OPTIONS", "/v1/chat/completions",
                                  headers={"Origin": ORIGIN,
                                           "Access-Control-Request-Method": "POST"})
    assert status == 204 and headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in headers["access-control-allow-headers"].lower()
    status, headers, body = _request(served, "GET", "/v1/models", headers={"Origin": ORIGIN})
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    same = f"http://{served.host_port}"  # the server's own pages are same-origin
    status, headers, _ = _request(served, "GET", "/v1/models", headers={"Origin": same})
    assert status == 200 and "access-control-allow-origin" not in headers


def test_api_key_is_required_when_set() -> None:
    server = ServerThread(api_key="sk-test-123").start(load=False)
    try:
        assert _request(server, "GET", "/v1/models")[0] == 401
        status, headers, body = _request(server, "GET", "/v1/models",
                                         headers={"Authorization": "Bearer wrong"})
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert body["error"]["type"] == "authentication_error"
        assert _request(server, "GET", "/v1/models",
                        headers={"Authorization": "Bearer sk-test-123"})[0] == 200
        assert _request(server, "GET", "/health")[0] == 200
    finally:
        server.stop()


def test_lan_bind_without_a_key_refuses_to_start() -> None:
    server = LocalServer(ServerConfig(host="0.0.0.0", port=0, use_keychain=False))
    with pytest.raises(UserError, match=r"Binding 0\.0\.0\.0 needs an API key"):
        asyncio.run(server.start())
    assert not server.running


def test_oversized_body_is_refused(served: ServerThread) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 10_000}]}
    status, _, body = _request(served, "POST", "/v1/chat/completions", big)
    assert status == 413 and "4096" in body["error"]["message"]
    # without a Content-Length (chunked), the cap holds while reading
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=iter([json.dumps(big).encode()]),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413
    assert "error" in json.loads(response.read())
    conn.close()


def test_invalid_fields_get_a_400_naming_them(served: ServerThread) -> None:
    cases = [({"messages": HELLO, "temperature": "hot"}, "temperature"),
             ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
             ({"messages": HELLO, "max_tokens": 0}, "max_tokens"),
             ({"messages": HELLO, "max_tokens": 100_000}, "max_tokens"),
             ({"messages": HELLO, "top_logprobs": 99}, "top_logprobs"),
             ({"messages": HELLO, "stop": 5}, "stop"),
             ({"temperature": 0.5}, "messages")]
    for body, param in cases:
        status, _, answer = _request(served, "POST", "/v1/chat/completions", body)
        assert status == 400, body
        assert answer["error"]["param"] == param, answer


def test_prompt_longer_than_the_cap_is_refused(served: ServerThread) -> None:
    long_prompt = [{"role": "user", "content": "word " * 300}]  # < 4096 bytes, > 64 tokens
    status, _, body = _request(served, "POST", "/v1/chat/completions",
                               {"messages": long_prompt, "max_tokens": 4})
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"


def test_slow_client_times_out(served: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {served.host_port}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{".encode())
        started = time.monotonic()
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408")
    assert time.monotonic() - started < 5
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {served.host_port}".encode())
        started = time.monotonic()  # the headers never end: the connection is closed
        assert sock.recv(4096) == b""
    assert time.monotonic() - started < 5


def _open_stream(served: ServerThread, body: dict[str, Any]) -> socket.socket:
    """A streaming request on a raw socket, after its first event has arrived."""
    sock = socket.create_connection(("127.0.0.1", served.server.port), timeout=60)
    data = json.dumps(body).encode()
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {served.host_port}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                 .encode() + data)
    received = b""
    while b"data: " not in received:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received
    return sock


def test_full_queue_gets_503_with_retry_after(served: ServerThread) -> None:
    running = _open_stream(served, LONG)  # parallel=1: this one runs ...
    waiting_status: list[int] = []
    waiter = threading.Thread(target=lambda: waiting_status.append(
        _request(served, "POST", "/v1/chat/completions",
                 {"messages": HELLO, "max_tokens": 2})[0]))
    waiter.start()  # ... this one waits (queue_size=1) ...
    deadline = time.monotonic() + 10
    while served.server.stats.queued < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    status, headers, body = _request(served, "POST", "/v1/chat/completions",
                                     {"messages": HELLO, "max_tokens": 2})
    running.close()  # ... and the third is turned away at once
    waiter.join(120)
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert body["error"]["code"] == "server_busy"
    assert waiting_status == [200]


def test_disconnect_cancels_the_generation_within_100_ms(served: ServerThread) -> None:
    sock = _open_stream(served, LONG)
    time.sleep(0.2)  # decoding is under way
    closed_at = time.time()
    sock.close()
    record = served.wait_record(lambda r: r.finish_reason == "cancelled" and r.time > closed_at)
    assert record.completion_tokens < LONG["max_tokens"]
    assert record.time - closed_at < 0.1, f"stopped {record.time - closed_at:.3f} s later"
    # the slot is free again: the next request is served at once
    assert _request(served, "POST", "/v1/chat/completions",
                    {"messages": HELLO, "max_tokens": 2})[0] == 200
