"""JobWorker: a job process's progress and outcome as signals on the GUI thread.

(Worker signals are emitted on the worker's thread, so these tests collect them
in lists and wait for the lists rather than using qtbot.waitSignal.)
"""

from __future__ import annotations

from typing import Any

import pytest

from macllm_app.ui.job_worker import JobWorker

pytestmark = pytest.mark.gui


def _collect(worker: JobWorker) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"progress": [], "finished": [], "failed": [],
                                  "cancelled": []}
    worker.progress.connect(lambda f, m: seen["progress"].append((f, m)))
    worker.finished.connect(seen["finished"].append)
    worker.failed.connect(seen["failed"].append)
    worker.cancelled.connect(lambda: seen["cancelled"].append(True))
    return seen


def _wait_done(qtbot: Any, worker: JobWorker) -> None:
    qtbot.waitUntil(lambda: worker.outcome != "running", timeout=30_000)
    assert worker.wait(5000)


def test_progress_then_finished(qtbot: Any) -> None:
    worker = JobWorker("tests.job_targets:count", (4,), title="Counting")
    seen = _collect(worker)
    worker.start()
    _wait_done(qtbot, worker)
    assert worker.outcome == "finished"
    assert seen["finished"][0]["count"] == 4
    assert seen["progress"][-1] == (1.0, "step 4 of 4")


def test_cancel_ends_as_cancelled(qtbot: Any) -> None:
    worker = JobWorker("tests.job_targets:until_stopped", title="Waiting")
    seen = _collect(worker)
    worker.start()
    qtbot.waitUntil(lambda: bool(seen["progress"]), timeout=30_000)
    worker.cancel()
    _wait_done(qtbot, worker)
    assert worker.outcome == "cancelled"
    assert seen["cancelled"] == [True] and not seen["failed"]


def test_a_user_error_is_the_failed_message(qtbot: Any) -> None:
    worker = JobWorker("tests.job_targets:refuse", ("That folder is not empty.",))
    seen = _collect(worker)
    worker.start()
    _wait_done(qtbot, worker)
    assert seen["failed"] == ["That folder is not empty."]
