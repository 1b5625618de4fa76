"""Workers: signals on the GUI thread, cooperative cancel, then a forced kill."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from macllm_app.core.errors import EngineCrashed, UserError
from macllm_app.core.types import Event, Finished, GenerationStats, TextDelta
from macllm_app.ui import workers
from macllm_app.ui.workers import FunctionWorker, GenerationWorker

pytestmark = pytest.mark.gui


class StuckHost:
    """Streams one delta, then hangs in a 'native call' that ignores cancel."""

    def __init__(self) -> None:
        self.killed = threading.Event()
        self.cancels = 0
        self.model = None

    def cancel(self) -> None:
        self.cancels += 1

    def kill(self) -> None:
        self.killed.set()

    def stream(self) -> Iterator[Event]:
        yield TextDelta("Hello", (1,))
        if not self.killed.wait(10):
            raise AssertionError("never killed")
        raise EngineCrashed("killed by SIGKILL")


class FakeSession:
    def __init__(self, host: Any, events: Iterator[Event] | None = None) -> None:
        self.host = host
        self.events = events
        self.cancelled = False

    def send(self, _text: str) -> Iterator[Event]:
        return self.events if self.events is not None else self.host.stream()

    def cancel(self) -> None:
        self.cancelled = True
        self.host.cancel()


def _wait_done(qtbot: Any, worker: Any) -> None:
    qtbot.waitUntil(lambda: worker.outcome != "running", timeout=10_000)


def test_cancel_kills_a_host_that_does_not_stop(qtbot: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "CANCEL_GRACE_S", 0.3)
    host = StuckHost()
    worker = GenerationWorker(host, lambda: FakeSession(host), "send", "hi")  # type: ignore[arg-type]
    cancelled: list[bool] = []
    worker.cancelled.connect(lambda: cancelled.append(True))
    worker.start()
    qtbot.waitUntil(lambda: worker.tokens_seen == 1, timeout=5000)
    worker.cancel()
    _wait_done(qtbot, worker)
    qtbot.waitUntil(lambda: bool(cancelled), timeout=5000)
    assert host.killed.is_set()
    assert host.cancels >= 1
    assert worker.outcome == "cancelled", "a user's stop is not reported as a crash"


def test_finished_carries_stats_and_a_crash_is_a_failure(qtbot: Any) -> None:
    stats = GenerationStats(generated_tokens=2, finish_reason="stop")
    host = StuckHost()
    events: list[Event] = [TextDelta("a", (1,)), TextDelta("b", (2,)), Finished(stats)]
    good = GenerationWorker(host, lambda: FakeSession(host, iter(events)),  # type: ignore[arg-type]
                            "send")
    results: list[object] = []
    good.finished.connect(results.append)
    good.start()
    _wait_done(qtbot, good)
    qtbot.waitUntil(lambda: bool(results))
    assert results == [stats] and good.tokens_seen == 2

    def crash() -> Iterator[Event]:
        yield TextDelta("a", (1,))
        raise EngineCrashed("crashed with SIGSEGV")

    bad = GenerationWorker(host, lambda: FakeSession(host, crash()), "send")  # type: ignore[arg-type]
    messages: list[str] = []
    bad.failed.connect(messages.append)
    bad.start()
    _wait_done(qtbot, bad)
    qtbot.waitUntil(lambda: bool(messages))
    assert messages == ["The engine stopped unexpectedly (crashed with SIGSEGV)."]
    assert isinstance(bad.error, EngineCrashed)


def test_function_worker_reports_user_errors_in_one_line(qtbot: Any) -> None:
    def fail() -> None:
        raise UserError("The disk is full.")

    worker = FunctionWorker(fail)
    messages: list[str] = []
    worker.failed.connect(messages.append)
    worker.start()
    _wait_done(qtbot, worker)
    qtbot.waitUntil(lambda: bool(messages))
    assert messages == ["The disk is full."]
    workers.wait_for_workers(1000)


def test_stop_before_the_reply_starts_stores_it_cancelled(qtbot: Any) -> None:
    from macllm_app.core.chat.session import ChatSession
    from macllm_app.core.chat.store import ChatStore

    class UnusedHost(StuckHost):
        def stream(self, *_args: Any) -> Iterator[Event]:
            raise AssertionError("the engine must not be asked")

    host = UnusedHost()
    with ChatStore() as store:
        conversation = store.create_conversation()
        worker = GenerationWorker(
            host, lambda: ChatSession(store, host, conversation.id),  # type: ignore[arg-type]
            "send", "Hello")
        worker.cancel()
        worker.start()
        _wait_done(qtbot, worker)
        assert worker.outcome == "cancelled"
        user, reply = store.active_path(conversation.id)
        assert user.content == "Hello", "the user's words are kept"
        assert reply.status == "cancelled" and reply.content == ""
    assert not host.killed.is_set()
