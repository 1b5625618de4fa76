"""The job runner: a core function in a spawned child, with progress, cancel and failures."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from macllm_app.core.errors import Cancelled, RemoteBug, UserError
from macllm_app.core.jobs import Job, JobFailed, run_job


def test_a_job_reports_progress_and_returns_its_result() -> None:
    seen: list[tuple[float, str]] = []
    result = run_job("tests.support.job_targets:count", 5, title="Counting",
                     progress=lambda f, m: seen.append((f, m)))
    assert result["count"] == 5
    assert result["pid"] != os.getpid()  # it ran in a child process
    assert seen, "no progress was relayed"
    assert seen[-1] == (1.0, "step 5 of 5")  # the latest report is never dropped
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_cancel_stops_a_job_that_polls_should_stop() -> None:
    job = Job("tests.support.job_targets:until_stopped", title="Waiting")
    with pytest.raises(Cancelled):
        job.run(lambda _f, _m: job.cancel())


def test_a_job_without_should_stop_stops_at_its_next_progress_report(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    job = Job("tests.support.job_targets:progress_only", (str(marker),))
    with pytest.raises(Cancelled):
        job.run(lambda _f, _m: job.cancel())
    assert not marker.exists()


def test_a_job_that_ignores_cancel_is_killed_and_cleaned_up(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    job = Job("tests.support.job_targets:stuck", (str(marker),), cancel_grace_s=0.3,
              after_crash=marker.unlink)
    with pytest.raises(Cancelled):
        job.run(lambda _f, _m: job.cancel())
    assert not marker.exists()


def test_a_user_error_passes_through_as_its_own_message() -> None:
    with pytest.raises(JobFailed) as info:
        run_job("tests.support.job_targets:refuse", "The disk is full.", title="Converting")
    assert str(info.value) == "The disk is full."
    assert not info.value.crashed


def test_a_bug_comes_back_as_a_bug_with_the_childs_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(RemoteBug) as info:
        run_job("tests.support.job_targets:buggy", title="Exporting")
    assert info.value.summary == "Exporting failed: ValueError: bad value second line of detail"
    assert "raise ValueError" in info.value.remote_traceback
    assert not isinstance(info.value, UserError), "a bug is not dressed up as a user error"
    assert "Traceback" in caplog.text  # logged in the parent too


def test_a_result_that_cannot_be_sent_back_is_a_bug() -> None:
    with pytest.raises(RemoteBug, match=r"^Tidying failed: its result could not be sent back"):
        run_job("tests.support.job_targets:unpicklable", title="Tidying")


def test_a_killed_child_is_reported_in_plain_words() -> None:
    cleaned: list[bool] = []
    job = Job("tests.support.job_targets:wait_to_be_killed", title="Converting",
              after_crash=lambda: cleaned.append(True))

    def kill_child(_f: float, _m: str) -> None:
        assert job.pid is not None
        os.kill(job.pid, signal.SIGKILL)

    with pytest.raises(JobFailed) as info:
        job.run(kill_child)
    assert str(info.value) == ("Converting stopped unexpectedly "
                               "(killed by SIGKILL, possibly out of memory).")
    assert info.value.crashed
    assert cleaned == [True]


def test_a_bad_target_is_a_bug() -> None:
    with pytest.raises(RemoteBug, match=r"^The job failed: ModuleNotFoundError"):
        run_job("tests.no_such_module:fn")


def test_a_callers_should_stop_cancels_the_job() -> None:
    polls: list[int] = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) > 5

    with pytest.raises(Cancelled):
        Job("tests.support.job_targets:until_stopped").run(should_stop=should_stop)


def test_every_reported_value_reaches_the_caller_in_order() -> None:
    values: list[object] = []
    progress: list[str] = []
    result = Job("tests.support.job_targets:report_squares", (200,)).run(
        lambda _f, m: progress.append(m), on_event=values.append)
    assert result == 200
    assert values == [{"i": i, "square": i * i} for i in range(200)]
    assert len(progress) < 200  # progress is thinned; reported values never are
