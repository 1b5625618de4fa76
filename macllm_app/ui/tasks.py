"""The app's one way to run work off the GUI thread.

In the spirit of Anki's `QueryOp(...).run_in_background()` and napari's
generator workers. A `Task` runs one of these on a shared thread pool:

- `Task.call(owner, fn)`: a plain function `fn() -> T`;
- `Task.context(owner, fn)`: `fn(ctx) -> T`, where `ctx.progress(fraction,
  message)` reports progress and `ctx.should_stop()` tells it to stop;
- `Task.generator(owner, fn)`: a generator function yielding values (progress
  or partial results) and returning T;
- `Task.job(owner, job)`: a core `Job`, a function in a child process.

What comes back arrives on the GUI thread, typed: `on_done(result)`,
`on_yield(value)`, `on_progress(fraction, message)`, `on_cancelled()`, and
`on_error(exc)` with the exception itself. A `UserError` (or a crashed
engine) is a one-line message (`errors.describe`); anything else is a bug:
logged with its traceback and offered as a bug report
(`task_registry.set_bug_reporter`), then handed to `on_error` too so the
caller can tidy up. `on_end()` runs after any outcome.

Cancel is cooperative first: `ctx.should_stop()` turns True, and the task's
own `cancel` hook runs (a source that winds down by itself, such as an
engine ending a reply with its stats). A generator without such a hook is
closed at its next yield. Then forced: `force_stop(fn, after_s)` runs `fn`
(kill an engine host) if the work has not ended that long after the cancel.
A job cancels itself the same way (its child is killed after its grace).

Stale results are dropped here, not by callers: every task has an owner
(a QObject). When the owner is destroyed, or a newer task with the same `key`
starts for that owner, the older task is cancelled and none of its callbacks
run (`task_registry` keeps the books). `poll.Poll` runs a function
periodically from a QTimer.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator
from typing import Any, Generic, Literal, Self, TypeVar

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from macllm_app.core.errors import Cancelled, EngineCrashed, describe, is_bug
from macllm_app.core.jobs import Job
from macllm_app.core.types import ProgressCallback
from macllm_app.ui import task_registry

log = logging.getLogger("macllm.ui.tasks")

T = TypeVar("T")
Y = TypeVar("Y")
Outcome = Literal["waiting", "running", "done", "failed", "cancelled"]

class TaskContext(Generic[Y]):
    """What work running in a task may use."""

    def __init__(self, task: Task[Any, Y]) -> None:
        self._task = task

    def should_stop(self) -> bool:
        return self._task.cancel_requested

    def progress(self, fraction: float, message: str = "") -> None:
        self._task._relay.progress.emit(float(fraction), str(message))

    def publish(self, value: Y) -> None:
        """Hand a partial result to `on_yield` (as a generator's yield does)."""
        self._task._relay.yielded.emit(value)


class _Relay(QObject):
    """Lives on the GUI thread; carries what the pool thread reports into it."""

    progress = Signal(float, str)
    yielded = Signal(object)
    ended = Signal()

    def __init__(self, task: Task[Any, Any]) -> None:
        super().__init__()
        self.task = task
        queued = Qt.ConnectionType.QueuedConnection
        self.progress.connect(self._on_progress, queued)
        self.yielded.connect(self._on_yielded, queued)
        self.ended.connect(self._on_ended, queued)

    @Slot(float, str)
    def _on_progress(self, fraction: float, message: str) -> None:
        self.task._deliver_progress(fraction, message)

    @Slot(object)
    def _on_yielded(self, value: object) -> None:
        self.task._deliver_yield(value)

    @Slot()
    def _on_ended(self) -> None:
        self.task._deliver_end()

    @Slot()
    def force_stop_if_running(self) -> None:
        self.task._force_stop_if_running(due=True)


class Task(Generic[T, Y]):
    """One piece of background work and where its results go (see the module docstring)."""

    def __init__(self, owner: QObject, work: Callable[[TaskContext[Y]], T], *,
                 key: str | None = None, name: str = "") -> None:
        self.owner_id = id(owner)
        self.owner = owner
        self.key = key
        self.name = name or getattr(work, "__name__", "task")
        self._work = work
        self._relay = _Relay(self)
        self._context: TaskContext[Y] = TaskContext(self)
        self._cancel = threading.Event()
        self._ended = threading.Event()
        self._dropped = False
        self._cancel_hook: Callable[[], None] | None = None
        self._force: tuple[Callable[[], None], float] | None = None
        self._cancelled_at: float | None = None
        self._job_title: str | None = None
        self._done_cb: Callable[[T], None] | None = None
        self._error_cb: Callable[[BaseException], None] | None = None
        self._progress_cb: ProgressCallback | None = None
        self._yield_cb: Callable[[Y], None] | None = None
        self._cancelled_cb: Callable[[], None] | None = None
        self._end_cb: Callable[[], None] | None = None
        self.outcome: Outcome = "waiting"
        self.result: T | None = None
        self.error: BaseException | None = None

    # -- making tasks -------------------------------------------------------------
    @classmethod
    def call(cls, owner: QObject, fn: Callable[[], T], *, key: str | None = None,
             name: str = "") -> Task[T, None]:
        """Run `fn()`."""
        return Task(owner, lambda _ctx: fn(), key=key,
                    name=name or getattr(fn, "__name__", ""))

    @classmethod
    def context(cls, owner: QObject, fn: Callable[[TaskContext[Y]], T], *,
                key: str | None = None, name: str = "") -> Task[T, Y]:
        """Run `fn(ctx)`: it reports through `ctx.progress` and polls `ctx.should_stop`."""
        return Task(owner, fn, key=key, name=name)

    @classmethod
    def generator(cls, owner: QObject, fn: Callable[[], Generator[Y, None, T]], *,
                  key: str | None = None, name: str = "") -> Task[T, Y]:
        """Run the generator `fn()`: each value goes to `on_yield`, its return value to
        `on_done`. A cancel closes it at its next yield unless the task has a `cancel`
        hook, in which case the generator's source winds down and it runs to its end."""
        task: Task[T, Y] = Task(owner, lambda ctx: task._drive(fn(), ctx), key=key,
                                name=name or getattr(fn, "__name__", ""))
        return task

    @classmethod
    def job(cls, owner: QObject, job: Job, *, key: str | None = None) -> Task[Any, Any]:
        """Run a core `Job` (a child process); its progress goes to `on_progress` (and to
        `task_registry.job_activity()`, which the hardware monitor watches), the values
        it reports to `on_yield`."""
        task: Task[Any, Any] = Task(
            owner, lambda ctx: job.run(ctx.progress, ctx.should_stop, ctx.publish),
            key=key, name=job.target)
        task._job_title = job.title
        return task

    # -- where results go (each returns the task, to chain) -----------------------
    def on_done(self, fn: Callable[[T], None]) -> Self:
        self._done_cb = fn
        return self

    def on_error(self, fn: Callable[[BaseException], None]) -> Self:
        self._error_cb = fn
        return self

    def on_progress(self, fn: ProgressCallback) -> Self:
        self._progress_cb = fn
        return self

    def on_yield(self, fn: Callable[[Y], None]) -> Self:
        self._yield_cb = fn
        return self

    def on_cancelled(self, fn: Callable[[], None]) -> Self:
        self._cancelled_cb = fn
        return self

    def on_end(self, fn: Callable[[], None]) -> Self:
        self._end_cb = fn
        return self

    def cancel_with(self, hook: Callable[[], None]) -> Self:
        """Run `hook` (from the GUI thread) when the task is cancelled."""
        self._cancel_hook = hook
        return self

    def force_stop(self, fn: Callable[[], None], after_s: float) -> Self:
        """Run `fn` if the work is still running `after_s` seconds after a cancel."""
        self._force = (fn, after_s)
        return self

    # -- control ------------------------------------------------------------------
    def start(self) -> Self:
        """Run the work on the pool (replacing an older task with the same owner and key)."""
        if self.outcome != "waiting":
            raise RuntimeError("a Task runs once")
        older = task_registry.register(self)
        if older is not None:
            older.drop()
        self.outcome = "running"
        task_registry.thread_pool().start(self._run)
        return self

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        return self.outcome == "running"

    def cancel(self) -> None:
        """Ask the work to stop (cooperatively, then by force if a force stop is set)."""
        if self._cancel.is_set() or self._ended.is_set():
            return
        self._cancel.set()
        self._cancelled_at = time.monotonic()
        if self._cancel_hook is not None:
            self._cancel_hook()
        if self._force is not None:
            QTimer.singleShot(int(self._force[1] * 1000), self._relay,
                              self._relay.force_stop_if_running)

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Block until the work has ended (True) or `timeout_s` passed; a pending force
        stop is applied while waiting (the event loop may not be running)."""
        deadline = time.monotonic() + timeout_s
        while not self._ended.wait(0.02):
            self._force_stop_if_running()
            if time.monotonic() >= deadline:
                return False
        return True

    # -- on the pool thread --------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._cancel.is_set() and self._cancel_hook is None:
                raise Cancelled  # cancelled before it began (a hooked source stops itself)
            self.result = self._work(self._context)
            self.outcome = "done"
        except Cancelled:
            self.outcome = "cancelled"
        except BaseException as exc:
            if isinstance(exc, EngineCrashed) and self._cancel.is_set():
                self.outcome = "cancelled"  # the forced step of a cancel killed its host
            else:
                self.error, self.outcome = exc, "failed"
                if is_bug(exc):
                    log.error("bug in task %s:\n%s", self.name, traceback.format_exc())
        finally:
            self._ended.set()
            self._relay.ended.emit()

    def _drive(self, gen: Generator[Y, None, T], ctx: TaskContext[Y]) -> T:
        try:
            while True:
                if ctx.should_stop() and self._cancel_hook is None:
                    gen.close()
                    raise Cancelled
                ctx.publish(next(gen))
        except StopIteration as stop:
            return stop.value

    # -- on the GUI thread ----------------------------------------------------------
    def drop(self) -> None:
        """Forget the results of this task (its owner moved on) and cancel it."""
        self._dropped = True
        self.cancel()

    def _force_stop_if_running(self, *, due: bool = False) -> None:
        """Apply the force stop if the work still runs and its grace is over (`due`: the
        grace timer fired, which may be a hair before the clock says so)."""
        force, cancelled_at = self._force, self._cancelled_at
        if force is None or cancelled_at is None or self._ended.is_set():
            return
        if not due and time.monotonic() - cancelled_at < force[1]:
            return
        self._force = None
        log.warning("task %s did not stop within %.1f s of its cancel; forcing it",
                    self.name, force[1])
        force[0]()

    def _deliver_progress(self, fraction: float, message: str) -> None:
        if self._job_title is not None:
            task_registry.job_activity().progress.emit(self._job_title, fraction)
        if not self._dropped and self._progress_cb is not None:
            self._progress_cb(fraction, message)

    def _deliver_yield(self, value: Any) -> None:
        if not self._dropped and self._yield_cb is not None:
            self._yield_cb(value)

    def _deliver_end(self) -> None:
        task_registry.unregister(self)
        error = self.error
        if error is not None and is_bug(error):
            task_registry.report_bug(error)
        if self._dropped:
            return
        try:
            if self.outcome == "done" and self._done_cb is not None:
                self._done_cb(self.result)  # type: ignore[arg-type]
            elif self.outcome == "cancelled" and self._cancelled_cb is not None:
                self._cancelled_cb()
            elif self.outcome == "failed" and error is not None:
                if self._error_cb is not None:
                    self._error_cb(error)
                elif not is_bug(error):
                    log.warning("%s: %s", self.name, describe(error))
        finally:
            if self._end_cb is not None:
                self._end_cb()
