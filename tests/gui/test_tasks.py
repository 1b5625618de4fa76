"""The task API: typed results on the GUI thread, progress, generators, cooperative then
forced cancel, stale results dropped by owner and key, errors as exceptions, jobs, polls."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QObject, QThread

from macllm_app.core.errors import Cancelled, EngineCrashed, RemoteBug, UserError
from macllm_app.core.jobs import Job, JobFailed
from macllm_app.ui import task_registry
from macllm_app.ui.poll import Poll
from macllm_app.ui.tasks import Task, TaskContext

pytestmark = pytest.mark.gui


@pytest.fixture
def owner(qtbot: Any) -> Iterator[QObject]:
    obj = QObject()
    yield obj
    assert task_registry.cancel_all_and_wait(10.0)


def _gui_thread() -> bool:
    return QThread.currentThread() is QThread.currentThread().thread() and \
        threading.current_thread() is threading.main_thread()


def test_a_function_runs_on_the_pool_and_its_result_arrives_on_the_gui_thread(
        qtbot: Any, owner: QObject) -> None:
    ran_on: list[threading.Thread] = []
    got: list[tuple[int, bool]] = []

    def work() -> int:
        ran_on.append(threading.current_thread())
        return 42

    task = Task.call(owner, work).on_done(lambda value: got.append((value, _gui_thread())))
    task.start()
    qtbot.waitUntil(lambda: bool(got))
    assert got == [(42, True)]
    assert ran_on and ran_on[0] is not threading.main_thread()
    assert task.outcome == "done" and task.result == 42


def test_pool_threads_are_reused_not_started_per_call(qtbot: Any, owner: QObject) -> None:
    threads: set[int] = set()
    done: list[int] = []
    for i in range(8):
        Task.call(owner, lambda i=i: (threads.add(threading.get_ident()), i)[1]) \
            .on_done(done.append).start()
        qtbot.waitUntil(lambda i=i: len(done) == i + 1)
        qtbot.wait(20)  # the thread goes back to the pool just after it reports
    assert len(threads) <= 4, "each call started its own thread"


def test_progress_then_result_from_a_context_function(qtbot: Any, owner: QObject) -> None:
    seen: list[Any] = []

    def work(ctx: TaskContext[None]) -> str:
        for step in range(3):
            ctx.progress((step + 1) / 3, f"step {step + 1}")
        return "ok"

    (Task.context(owner, work).on_progress(lambda f, m: seen.append((round(f, 2), m)))
     .on_done(seen.append).start())
    qtbot.waitUntil(lambda: "ok" in seen)
    assert seen == [(0.33, "step 1"), (0.67, "step 2"), (1.0, "step 3"), "ok"]


def test_a_generator_yields_in_order_and_returns_its_result(qtbot: Any,
                                                            owner: QObject) -> None:
    seen: list[Any] = []

    def numbers() -> Iterator[int]:
        yield from range(5)
        return "five"  # type: ignore[misc]

    Task.generator(owner, numbers).on_yield(seen.append).on_done(seen.append).start()  # type: ignore[arg-type]
    qtbot.waitUntil(lambda: "five" in seen)
    assert seen == [0, 1, 2, 3, 4, "five"]


def test_cancel_closes_a_generator_at_its_next_yield(qtbot: Any, owner: QObject) -> None:
    closed = threading.Event()
    first = threading.Event()
    outcomes: list[str] = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                n += 1
                first.set()
                yield n
        finally:
            closed.set()

    task = (Task.generator(owner, endless)  # type: ignore[arg-type]
            .on_cancelled(lambda: outcomes.append("cancelled"))
            .on_done(lambda _r: outcomes.append("done")).start())
    assert first.wait(5)
    task.cancel()
    qtbot.waitUntil(lambda: bool(outcomes))
    assert outcomes == ["cancelled"] and closed.is_set()


def test_a_generator_with_a_cancel_hook_winds_down_by_itself(qtbot: Any,
                                                              owner: QObject) -> None:
    """The source is told (the hook) and the generator runs on to its real end."""
    stop = threading.Event()
    started = threading.Event()
    seen: list[Any] = []

    def source() -> Iterator[str]:
        started.set()
        while not stop.is_set():
            yield "piece"
        yield "last words"
        return "summary"  # type: ignore[misc]

    task = (Task.generator(owner, source).cancel_with(stop.set)  # type: ignore[arg-type]
            .on_yield(seen.append).on_done(seen.append).start())
    assert started.wait(5)
    task.cancel()
    qtbot.waitUntil(lambda: "summary" in seen)
    assert seen[-2:] == ["last words", "summary"]


class StuckHost:
    """Hangs in a 'native call' that ignores cancel, until it is killed."""

    def __init__(self) -> None:
        self.killed = threading.Event()
        self.cancels = 0

    def cancel(self) -> None:
        self.cancels += 1

    def kill(self) -> None:
        self.killed.set()

    def generate(self) -> str:
        if not self.killed.wait(10):
            raise AssertionError("never killed")
        raise EngineCrashed("killed by SIGKILL")


def test_work_that_ignores_a_cancel_is_forced_after_its_grace(qtbot: Any,
                                                              owner: QObject) -> None:
    host = StuckHost()
    outcomes: list[str] = []
    task = (Task.call(owner, host.generate).cancel_with(host.cancel)
            .force_stop(host.kill, 0.3)
            .on_cancelled(lambda: outcomes.append("cancelled"))
            .on_error(lambda e: outcomes.append(f"error {e}"))
            .start())
    task.cancel()
    qtbot.waitUntil(lambda: bool(outcomes), timeout=5000)
    assert host.killed.is_set() and host.cancels == 1
    assert outcomes == ["cancelled"], "a user's stop is not reported as a crash"


def test_wait_applies_a_pending_force_stop_without_the_event_loop(owner: QObject) -> None:
    host = StuckHost()
    task = Task.call(owner, host.generate).cancel_with(host.cancel).force_stop(host.kill, 0.2)
    task.start()
    task.cancel()
    assert task.wait(5.0)
    assert host.killed.is_set() and task.outcome == "cancelled"


def test_a_newer_task_with_the_same_key_drops_the_older_one(qtbot: Any,
                                                             owner: QObject) -> None:
    release = threading.Event()
    got: list[str] = []
    older = Task.call(owner, lambda: release.wait(5) and "old", key="list").on_done(got.append)
    older.start()
    Task.call(owner, lambda: "new", key="list").on_done(got.append).start()
    qtbot.waitUntil(lambda: got == ["new"])
    assert older.cancel_requested
    release.set()
    assert older.wait(5)
    qtbot.wait(100)
    assert got == ["new"], "the stale result reached the caller"


def test_tasks_of_an_owner_that_goes_away_are_dropped(qtbot: Any) -> None:
    release = threading.Event()
    got: list[str] = []
    owner = QObject()
    task = Task.call(owner, lambda: release.wait(5) and "late").on_done(got.append).start()
    owner.deleteLater()
    qtbot.waitUntil(lambda: task.cancel_requested)
    release.set()
    assert task.wait(5)
    qtbot.wait(100)
    assert got == []


def test_a_user_error_arrives_as_itself(qtbot: Any, owner: QObject) -> None:
    errors: list[BaseException] = []

    def fail() -> None:
        raise UserError("The disk is full.")

    Task.call(owner, fail).on_error(errors.append).start()
    qtbot.waitUntil(lambda: bool(errors))
    assert isinstance(errors[0], UserError) and str(errors[0]) == "The disk is full."


def test_a_bug_is_logged_with_its_traceback_and_reported(
        qtbot: Any, owner: QObject, caplog: pytest.LogCaptureFixture) -> None:
    reported: list[BaseException] = []
    errors: list[BaseException] = []
    task_registry.set_bug_reporter(reported.append)
    try:
        def buggy() -> None:
            raise KeyError("missing")

        with caplog.at_level(logging.ERROR, logger="macllm.ui.tasks"):
            Task.call(owner, buggy).on_error(errors.append).start()
            qtbot.waitUntil(lambda: bool(errors))
    finally:
        task_registry.set_bug_reporter(None)
    assert isinstance(errors[0], KeyError) and reported == errors
    assert "Traceback" in caplog.text and "buggy" in caplog.text


def test_a_cancelled_exception_is_a_cancel_not_an_error(qtbot: Any, owner: QObject) -> None:
    outcomes: list[str] = []

    def give_up() -> None:
        raise Cancelled

    (Task.call(owner, give_up).on_cancelled(lambda: outcomes.append("cancelled"))
     .on_error(lambda _e: outcomes.append("error")).on_end(lambda: outcomes.append("end"))
     .start())
    qtbot.waitUntil(lambda: "end" in outcomes)
    assert outcomes == ["cancelled", "end"]


def test_a_job_relays_progress_and_its_result(qtbot: Any, owner: QObject) -> None:
    progress: list[tuple[float, str]] = []
    results: list[dict[str, int]] = []
    job = Job("tests.support.job_targets:count", (4,), title="Counting")
    Task.job(owner, job).on_progress(lambda f, m: progress.append((f, m))) \
        .on_done(results.append).start()
    qtbot.waitUntil(lambda: bool(results), timeout=30_000)
    assert results[0]["count"] == 4
    assert progress[-1] == (1.0, "step 4 of 4")


def test_cancelling_a_job_task_stops_its_child(qtbot: Any, owner: QObject) -> None:
    progress: list[str] = []
    outcomes: list[str] = []
    job = Job("tests.support.job_targets:until_stopped", title="Waiting")
    task = (Task.job(owner, job).on_progress(lambda _f, m: progress.append(m))
            .on_cancelled(lambda: outcomes.append("cancelled")).start())
    qtbot.waitUntil(lambda: bool(progress), timeout=30_000)
    task.cancel()
    qtbot.waitUntil(lambda: bool(outcomes), timeout=30_000)
    assert outcomes == ["cancelled"]


def test_a_job_that_fails_or_has_a_bug_reports_the_right_exception(
        qtbot: Any, owner: QObject) -> None:
    errors: list[BaseException] = []
    Task.job(owner, Job("tests.support.job_targets:refuse", ("Folder not empty.",))) \
        .on_error(errors.append).start()
    Task.job(owner, Job("tests.support.job_targets:buggy", title="Tidying")) \
        .on_error(errors.append).start()
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=30_000)
    user = next(e for e in errors if isinstance(e, JobFailed))
    bug = next(e for e in errors if isinstance(e, RemoteBug))
    assert str(user) == "Folder not empty."
    assert bug.summary == "Tidying failed: ValueError: bad value second line of detail"
    assert "Traceback" in bug.remote_traceback


def test_a_poll_runs_periodically_and_skips_a_beat_while_busy(qtbot: Any,
                                                               owner: QObject) -> None:
    calls: list[int] = []
    release = threading.Event()

    def slow() -> int:
        calls.append(1)
        release.wait(5)
        return len(calls)

    results: list[int] = []
    poll = Poll(owner, 20, slow, results.append)
    poll.start()
    qtbot.wait(200)
    assert len(calls) == 1, "a new run started while the last one was busy"
    release.set()
    qtbot.waitUntil(lambda: len(results) >= 2, timeout=5000)
    poll.stop()
