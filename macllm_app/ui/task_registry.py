"""The books of the task API: one thread pool, where bugs go, and which tasks run for
which owner and key (so a newer task, or the owner's end, drops an older one)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, QThreadPool, Signal

BugReporter = Callable[[BaseException], None]

#: Threads the pool may run at once. Long tasks (a reply streaming, a download,
#: a job's relay) hold a thread each, so the pool is larger than the core count.
MAX_THREADS = 32


class Tracked(Protocol):
    """What the registry needs of a task (`tasks.Task` is one)."""

    owner: QObject
    owner_id: int
    key: str | None

    @property
    def running(self) -> bool: ...

    def drop(self) -> None: ...

    def wait(self, timeout_s: float = ...) -> bool: ...


class JobActivity(QObject):
    """Every job task's progress, for whoever watches them all (the hardware monitor)."""

    progress = Signal(str, float)  # the job's title, fraction done


_pool: QThreadPool | None = None
_activity: JobActivity | None = None
_bug_reporter: BugReporter | None = None
_tasks: set[Tracked] = set()
_keyed: dict[tuple[int, str], Tracked] = {}
_watched_owners: set[int] = set()
_lock = threading.Lock()


def thread_pool() -> QThreadPool:
    global _pool  # noqa: PLW0603 - one pool for the app, made at first use
    if _pool is None:
        _pool = QThreadPool()
        _pool.setObjectName("macllm-tasks")
        _pool.setMaxThreadCount(MAX_THREADS)
    return _pool


def job_activity() -> JobActivity:
    global _activity  # noqa: PLW0603 - one hub for the app, made at first use
    if _activity is None:
        _activity = JobActivity()
    return _activity


def set_bug_reporter(reporter: BugReporter | None) -> None:
    """Where bugs raised by tasks go (the app's crash handler offers a report)."""
    global _bug_reporter  # noqa: PLW0603 - installed once by the app
    _bug_reporter = reporter


def report_bug(error: BaseException) -> None:
    if _bug_reporter is not None:
        _bug_reporter(error)


def register(task: Tracked) -> Tracked | None:
    """Track `task`; return the older task it replaces (same owner and key), if any."""
    with _lock:
        _tasks.add(task)
        older = None
        if task.key is not None:
            older = _keyed.get((task.owner_id, task.key))
            _keyed[(task.owner_id, task.key)] = task
        watch = task.owner_id not in _watched_owners
        _watched_owners.add(task.owner_id)
    if watch:
        task.owner.destroyed.connect(functools.partial(_owner_gone, task.owner_id))
    return older


def unregister(task: Tracked) -> None:
    with _lock:
        _tasks.discard(task)
        if task.key is not None and _keyed.get((task.owner_id, task.key)) is task:
            del _keyed[(task.owner_id, task.key)]


def _owner_gone(owner_id: int, *_args: object) -> None:
    with _lock:
        _watched_owners.discard(owner_id)
        orphans = [task for task in _tasks if task.owner_id == owner_id]
    for task in orphans:
        task.drop()


def running_tasks() -> list[Tracked]:
    with _lock:
        return [task for task in _tasks if task.running]


def cancel_all_and_wait(timeout_s: float = 10.0) -> bool:
    """Cancel every task and wait for them to end (on quit and in tests); True if all did."""
    tasks = running_tasks()
    for task in tasks:
        task.drop()
    deadline = time.monotonic() + timeout_s
    return all(task.wait(max(0.0, deadline - time.monotonic())) for task in tasks)
