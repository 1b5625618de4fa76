"""Run one core function in a child process: conversion, export, later quantize and train.

Work that needs mlx (or may crash, or eat all memory) must not run in the GUI
process. A `Job` names its function as "package.module:function", starts a
child (`child_process.ChildProcess`) that imports and calls it, and relays
what happens:

- progress: the function gets `progress(fraction, message)` (when it takes a
  `progress` argument); the parent passes reports on, at most one per
  `PROGRESS_INTERVAL_S`, never dropping the latest one;
- events: a function that takes a `report` argument may send any picklable value
  (a training step's metrics) with `report(value)`; every one reaches the
  caller's `on_event`, in order, none dropped;
- cancel: `Job.cancel()` (or the caller's `should_stop` turning True) sets a
  shared flag the function polls through `should_stop()`; a function without
  `should_stop` is stopped at its next progress report. A child that has not
  stopped `cancel_grace_s` later is killed; either way `run()` raises
  `Cancelled`;
- failure: a `UserError` raised by the function comes back as `JobFailed`
  with the same message; any other exception is a bug and comes back as
  `RemoteBug` with the child's traceback (logged here too); a child that dies
  (a native crash, a kill, out of memory) as `JobFailed(crashed=True)`,
  "<title> stopped unexpectedly (<how>)."

`after_crash` runs in the parent when the child died without saying so, to
remove what a killed child could not clean up itself.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from macllm_app.core.child_process import CancelFlag, ChildProcess
from macllm_app.core.errors import Cancelled, RemoteBug, UserError, one_line
from macllm_app.core.types import ProgressCallback, StopCheck

log = logging.getLogger("macllm.jobs")

#: Shortest time between two progress reports passed on to the caller.
PROGRESS_INTERVAL_S = 0.05
#: How long a cancelled job gets to stop by itself before it is killed. Jobs poll
#: their flag between steps, and one step (writing a large tensor, one training
#: step of a big model) can take several seconds.
CANCEL_GRACE_S = 10.0
#: How long a job that sent its last message gets to exit before it is killed.
EXIT_GRACE_S = 5.0


_running: set[Job] = set()
_running_lock = threading.Lock()


def running_jobs() -> list[tuple[str, int]]:
    """(title, child pid) of every job running in this process's children (for the
    hardware monitor)."""
    with _running_lock:
        return [(job.title, pid) for job in _running if (pid := job.pid) is not None]


class JobFailed(UserError):
    """A job ended with a user error or died (its message is one line, ready to show)."""

    def __init__(self, message: str, crashed: bool = False) -> None:
        super().__init__(message)
        self.crashed = crashed


def resolve_target(target: str) -> Callable[..., Any]:
    """"package.module:function" -> the function (imported in the child)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"job target {target!r} is not 'module:function'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"job target {target!r} is not callable")
    return obj


def job_main(conn: Connection, stop_flag: CancelFlag, target: str, args: tuple[Any, ...],
             kwargs: dict[str, Any], title: str) -> None:
    """The child's side: call the target and send exactly one final message.

    Messages: ("progress", fraction, message) and ("event", value) ... then one of
    ("done", result),
    ("cancelled",), ("error", message), ("bug", summary, traceback).
    """

    def should_stop() -> bool:
        return bool(stop_flag.value)

    def progress(fraction: float, message: str) -> None:
        conn.send(("progress", float(fraction), str(message)))  # fails if the parent is gone

    def progress_or_stop(fraction: float, message: str) -> None:
        if should_stop():
            raise Cancelled
        progress(fraction, message)

    def report(value: Any) -> None:
        conn.send(("event", value))

    try:
        fn = resolve_target(target)
        params = inspect.signature(fn).parameters
        call_kwargs = dict(kwargs)
        if "report" in params:
            call_kwargs["report"] = report
        if "should_stop" in params:
            call_kwargs["should_stop"] = should_stop
            if "progress" in params:
                call_kwargs["progress"] = progress
        elif "progress" in params:
            call_kwargs["progress"] = progress_or_stop
        if should_stop():
            raise Cancelled
        result = fn(*args, **call_kwargs)
    except Cancelled:
        reply: tuple[Any, ...] = ("cancelled",)
    except UserError as exc:
        reply = ("error", one_line(exc, "") or f"{title} failed.")
    except (BrokenPipeError, EOFError):
        return  # the parent went away; nobody to tell
    except BaseException as exc:  # a bug in a job must reach the parent
        detail = one_line(exc, "")
        summary = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        reply = ("bug", summary, traceback.format_exc())
    else:
        reply = ("done", result)
    try:
        conn.send(reply)
    except (OSError, EOFError):
        pass
    except Exception as exc:  # a result that cannot be pickled
        with contextlib.suppress(OSError, EOFError):
            conn.send(("bug", f"its result could not be sent back ({one_line(exc)})",
                       traceback.format_exc()))
    finally:
        conn.close()


class Job:
    """One function run in one child process. Start it with `run()` (blocking)."""

    def __init__(self, target: str, args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None, *, title: str = "The job",
                 cancel_grace_s: float | None = None,
                 after_crash: Callable[[], None] | None = None) -> None:
        self.target = target
        self.args = args
        self.kwargs = dict(kwargs or {})
        self.title = title
        self.cancel_grace_s = CANCEL_GRACE_S if cancel_grace_s is None else cancel_grace_s
        self.after_crash = after_crash
        self._child = ChildProcess(
            job_main, (target, args, self.kwargs, title),
            name=f"macllm-job-{target.rsplit(':', 1)[-1]}")
        self._cancel_at: float | None = None
        self._lock = threading.Lock()
        self._started = False

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._started else None

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_at is not None

    def cancel(self) -> None:
        """Ask the job to stop (safe from any thread; a no-op once it has ended)."""
        with self._lock:
            if self._cancel_at is None:
                self._cancel_at = time.monotonic()
            self._child.request_cancel()

    def kill(self) -> None:
        """Stop the child at once (the job then ends as cancelled)."""
        self.cancel()
        if self._started:
            self._child.kill()

    def run(self, progress: ProgressCallback | None = None,
            should_stop: StopCheck | None = None,
            on_event: Callable[[Any], None] | None = None) -> Any:
        """Start the child, relay its progress and events, and return the function's result.

        `should_stop` is polled while the job runs; True cancels it.

        Raises:
            Cancelled: `cancel()` was called (the child stopped or was killed).
            JobFailed: the function raised a user error, or the child died.
            RemoteBug: the function raised anything else.
        """
        if self._started:
            raise RuntimeError("a Job runs once")
        self._started = True
        self._child.start()
        log.info("job %s started (pid %s)", self.target, self._child.pid)
        with _running_lock:
            _running.add(self)
        try:
            reply = self._relay(progress or (lambda _f, _m: None), should_stop,
                                on_event or (lambda _value: None))
        finally:
            with _running_lock:
                _running.discard(self)
            self._child.stop(EXIT_GRACE_S)
        return self._outcome(reply)

    def _relay(self, progress: ProgressCallback, should_stop: StopCheck | None,
               on_event: Callable[[Any], None]) -> tuple[Any, ...] | None:
        """Pass progress on until the final message; None when the child died."""
        conn = self._child.conn
        pending: tuple[float, str] | None = None
        last_sent = 0.0
        while True:
            if should_stop is not None and not self.cancel_requested and should_stop():
                self.cancel()
            self._kill_if_overdue()
            if not conn.poll(PROGRESS_INTERVAL_S):
                if pending is not None:
                    progress(*pending)
                    pending, last_sent = None, time.monotonic()
                continue
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is not None and message[0] == "event":
                on_event(message[1])
                continue
            if message is None or message[0] != "progress":
                if pending is not None:
                    progress(*pending)
                return None if message is None else tuple(message)
            now = time.monotonic()
            if now - last_sent >= PROGRESS_INTERVAL_S:
                progress(message[1], message[2])
                pending, last_sent = None, now
            else:
                pending = (message[1], message[2])

    def _kill_if_overdue(self) -> None:
        cancel_at = self._cancel_at
        if (cancel_at is not None and self._child.is_alive()
                and time.monotonic() - cancel_at > self.cancel_grace_s):
            log.warning("job %s did not stop within %.1f s of cancel; killing it",
                        self.target, self.cancel_grace_s)
            self._child.kill()

    def _outcome(self, reply: tuple[Any, ...] | None) -> Any:
        if reply is None:
            if self.after_crash is not None:
                try:
                    self.after_crash()
                except Exception:  # cleanup must not hide what happened
                    log.exception("cleanup after job %s failed", self.target)
            if self.cancel_requested:
                raise Cancelled
            how = self._child.describe_exit()
            log.warning("job %s died: %s", self.target, how)
            raise JobFailed(f"{self.title} stopped unexpectedly ({how}).", crashed=True)
        kind = reply[0]
        if kind == "done":
            if self.cancel_requested:
                log.info("job %s finished before it saw the cancel", self.target)
            return reply[1]
        if kind == "cancelled":
            raise Cancelled
        if kind == "bug":
            summary, trace = reply[1], reply[2]
            log.error("bug in job %s: %s\n%s", self.target, summary, trace)
            raise RemoteBug(f"{self.title} failed: {summary}", trace, f"job {self.target}")
        raise JobFailed(reply[1])


def run_job(target: str, *args: Any, title: str = "The job",
            progress: ProgressCallback | None = None, **kwargs: Any) -> Any:
    """Run `target(*args, **kwargs)` in a child process and wait for its result."""
    return Job(target, args, kwargs, title=title).run(progress)
