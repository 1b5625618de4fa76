"""The Server pane over the real server (default model, 127.0.0.1): the switch, a real
request in the log and counters, example code, the port freed on stop, one-line errors.

The server runs on the GUI thread's Qt event loop (qasync) or on its own loop
thread; either way clients call it from other threads while `qtbot` keeps the Qt
loop turning, so nothing waits on itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import keyring
import openai
import pytest

from macllm_app.core.server.config import KEYCHAIN_NAME, SERVICE
from macllm_app.ui.panes.server.log_model import COLUMNS, MAX_ROWS, RequestLogModel
from macllm_app.ui.panes.server.pane import ServerPane
from tests.unit.test_library_token import MemoryKeyring

pytestmark = [pytest.mark.gui, pytest.mark.llamacpp]

T = TypeVar("T")
START_MS = 30_000
REPLY_MS = 120_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Another server could listen there now (as servers do, it may reuse a port whose
    last connections are in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        sock.listen()
        return True


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)  # never a real keychain in tests
    yield ring
    keyring.set_keyring(before)


@pytest.fixture
def make_pane(qtbot: Any, memory_keyring: MemoryKeyring) -> Iterator[Callable[..., ServerPane]]:
    panes: list[ServerPane] = []

    def make(mode: str | None = None) -> ServerPane:
        pane = ServerPane(mode)  # type: ignore[arg-type]
        qtbot.addWidget(pane)
        pane.show()
        pane.port.setValue(free_port())
        pane.parallel.setValue(2)
        panes.append(pane)
        return pane

    yield make
    for pane in panes:
        assert pane.runner.shutdown(20.0), "the server did not stop"


def switch_on(qtbot: Any, pane: ServerPane) -> str:
    with qtbot.waitSignal(pane.runner.started, timeout=START_MS):
        pane.switch.click()
    assert pane.switch.isChecked() and not pane.error.isVisible()
    return pane.address.text()


def switch_off(qtbot: Any, pane: ServerPane) -> None:
    with qtbot.waitSignal(pane.runner.stopped, timeout=START_MS):
        pane.switch.click()
    assert not pane.switch.isChecked()


def off_thread(qtbot: Any, fn: Callable[[], T], timeout_ms: int = REPLY_MS) -> T:
    """Run `fn` on another thread while the Qt loop (and a server on it) keeps running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(fn)
        qtbot.waitUntil(future.done, timeout=timeout_ms)
        return future.result()


def chat_stream(url: str, key: str | None = None) -> tuple[str, int]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key or "none", timeout=90, max_retries=0)
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8,
        temperature=0, stream=True, stream_options={"include_usage": True})
    text, tokens = "", 0
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return text, tokens


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("mode", ["qt", "thread"])
def test_a_real_request_shows_in_the_log_and_counters(
        qtbot: Any, make_pane: Callable[..., ServerPane], mode: str) -> None:
    pane = make_pane(mode)
    port = pane.port.value()
    url = switch_on(qtbot, pane)
    assert url == f"http://127.0.0.1:{port}"
    assert not pane.form.isEnabled(), "the fields are fixed while the server runs"
    text, tokens = off_thread(qtbot, lambda: chat_stream(url))
    assert text and 0 < tokens <= 8
    qtbot.waitUntil(lambda: pane.log_model.rowCount() >= 1, timeout=10_000)
    row = dict(zip(COLUMNS, pane.log_model.rows[-1], strict=True))
    assert row["Method"] == "POST" and row["Path"] == "/v1/chat/completions"
    assert row["Status"] == "200" and row["Tokens"] == str(tokens)
    assert row["Client"].startswith("127.0.0.1")
    assert pane.total_requests == 1 and "Requests: 1" in pane.counters.text()
    health = off_thread(qtbot, lambda: get_json(f"{url}/health"))
    assert health
    qtbot.waitUntil(lambda: pane.log_model.rowCount() == 2, timeout=10_000)
    assert "Requests: 2" in pane.counters.text()
    switch_off(qtbot, pane)
    assert port_is_free(port), "switching off frees the port"
    assert pane.form.isEnabled() and pane.address.text() == ""


def test_example_code_names_the_address_model_and_key(
        qtbot: Any, make_pane: Callable[..., ServerPane],
        memory_keyring: MemoryKeyring) -> None:
    pane = make_pane()
    pane.key.setText("sk-test-123")
    url = switch_on(qtbot, pane)
    for index in range(pane.examples.count()):
        pane.examples.setCurrentIndex(index)
        code = pane.current_example()
        assert url in code and "default" in code and "sk-test-123" in code
    pane.examples.setCurrentIndex(1)  # the openai client's example runs as shown
    code = pane.current_example()
    out: list[str] = []
    printed = {"print": lambda *args, **_kw: out.extend(map(str, args))}
    off_thread(qtbot, lambda: exec(code, printed))  # the example itself, as a user runs it
    assert "".join(out).strip()
    qtbot.waitUntil(lambda: memory_keyring.store.get((SERVICE, KEYCHAIN_NAME)) == "sk-test-123",
                    timeout=10_000)  # the key went to the keychain
    fresh = make_pane()
    qtbot.waitUntil(lambda: fresh.key.text() == "sk-test-123", timeout=10_000)


def test_a_key_is_required_and_checked(qtbot: Any, make_pane: Callable[..., ServerPane]) -> None:
    pane = make_pane()
    pane.key.setText("sk-right")
    url = switch_on(qtbot, pane)
    with pytest.raises(openai.AuthenticationError):
        off_thread(qtbot, lambda: chat_stream(url, "sk-wrong"))
    qtbot.waitUntil(lambda: pane.log_model.rowCount() == 1, timeout=10_000)
    assert pane.log_model.rows[-1][COLUMNS.index("Status")] == "401"


def test_a_lan_bind_without_a_key_is_refused_in_one_line(
        qtbot: Any, make_pane: Callable[..., ServerPane]) -> None:
    pane = make_pane()
    pane.host.setCurrentText("0.0.0.0")
    with qtbot.waitSignal(pane.runner.stopped, timeout=START_MS):
        pane.switch.click()
    assert pane.error.isVisible() and "needs an API key" in pane.error.text()
    assert "\n" not in pane.error.text()
    assert not pane.switch.isChecked() and pane.form.isEnabled()
    assert port_is_free(pane.port.value())


def test_a_busy_port_is_refused_in_one_line_and_the_app_goes_on(
        qtbot: Any, make_pane: Callable[..., ServerPane]) -> None:
    pane = make_pane()
    port = pane.port.value()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with qtbot.waitSignal(pane.runner.stopped, timeout=START_MS):
            pane.switch.click()
        assert pane.error.isVisible() and f"Port {port}" in pane.error.text()
        assert "already in use" in pane.error.text()
        assert not pane.switch.isChecked()
    switch_on(qtbot, pane)  # the port is free again: the same pane starts
    assert not pane.error.isVisible()


def test_the_window_has_the_pane_and_closing_it_stops_the_server(
        qtbot: Any, make_window: Any, memory_keyring: MemoryKeyring) -> None:
    window = make_window(load=False)
    window.show_pane("server")
    pane = window.panes["server"]
    assert isinstance(pane, ServerPane) and window.stack.currentWidget() is pane
    pane.port.setValue(free_port())
    switch_on(qtbot, pane)
    window.close()
    assert pane.runner.state == "off" and port_is_free(pane.port.value())


def test_the_log_keeps_the_last_thousand_requests() -> None:
    from macllm_app.core.server.app import RequestRecord

    model = RequestLogModel()
    for i in range(MAX_ROWS + 5):
        model.add(RequestRecord(time=1.7e9 + i, method="GET", path=f"/health?{i}", status=200,
                                model="", prompt_tokens=0, completion_tokens=0,
                                duration_s=0.001, client="127.0.0.1"))
    assert model.rowCount() == MAX_ROWS
    assert model.rows[0][COLUMNS.index("Path")] == "/health?5"
    assert model.rows[-1][COLUMNS.index("Path")] == f"/health?{MAX_ROWS + 4}"


def test_the_pane_remembers_where_the_server_last_listened(
        qtbot: Any, make_window: Any, memory_keyring: MemoryKeyring) -> None:
    from macllm_app.core import settings as settings_mod

    window = make_window(load=False)
    pane = window.panes["server"]
    port = free_port()
    pane.port.setValue(port)
    pane.parallel.setValue(3)
    pane.origins.setText("http://localhost:5173, https://app.example")
    switch_on(qtbot, pane)
    window.close()  # saves the window's settings
    saved = settings_mod.load().server
    assert (saved.port, saved.parallel) == (port, 3)
    assert saved.allowed_origins == ["http://localhost:5173", "https://app.example"]

    # closing the window stops it, shown or not, and gives the GUI thread's loop back
    assert pane.runner.state == "off" and asyncio.events._get_running_loop() is None
    again = make_window(settings_mod.load(), load=False).panes["server"]
    assert again.port.value() == port and again.parallel.value() == 3
    assert again.config().allowed_origins == ("http://localhost:5173", "https://app.example")
