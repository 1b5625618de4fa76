"""Where the server's asyncio code runs: on the Qt event loop, or on a loop of its own.

- `QtLoop` (qasync): asyncio callbacks run as Qt timer and socket-notifier events on
  the GUI thread, between paints, wherever the Qt event loop turns (`app.exec()`,
  pytest-qt's waits, a modal dialog). The GUI thread is asyncio's running loop only
  while a server session runs, so nothing else there sees a running loop.
- `ThreadLoop`: a plain asyncio loop on its own thread; the GUI hears from it only
  through queued Qt signals.

Both take a coroutine with `submit` and hand back a `concurrent.futures.Future`;
`wait` blocks until it is done (the Qt loop pumps Qt events meanwhile, since it is
the thread that has to run it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import qasync
from PySide6.QtCore import QCoreApplication, QEventLoop

Work = Coroutine[Any, Any, None]


class LoopHost(Protocol):
    name: str

    def submit(self, work: Work) -> concurrent.futures.Future[None]: ...
    def call_soon(self, fn: Callable[[], None]) -> None: ...
    def wait(self, future: concurrent.futures.Future[None], timeout_s: float) -> bool: ...
    def release(self) -> None: ...


class _AttachableLoop(qasync.QEventLoop):
    """A qasync loop that runs whenever the Qt event loop runs, and that asyncio sees as
    the GUI thread's running loop only while attached.

    One lives as long as the app: its Qt objects (timers, notifiers) are never
    destroyed mid-run, where a garbage collection on another thread would do it.
    qasync's own `stop()` would quit the Qt application, so the running flag (kept
    under a private name) is set here instead."""

    def attach(self) -> None:
        running = asyncio.events._get_running_loop()
        if running is not None and running is not self:
            raise RuntimeError("another asyncio loop already runs on the GUI thread")
        self._QEventLoop__is_running = True
        asyncio.events._set_running_loop(self)

    def detach(self) -> None:
        if asyncio.events._get_running_loop() is self:
            asyncio.events._set_running_loop(None)
        self._QEventLoop__is_running = False


_app_loop: _AttachableLoop | None = None


def _qt_asyncio_loop() -> _AttachableLoop:
    global _app_loop  # noqa: PLW0603 - one per app, made at first use
    if _app_loop is None:
        _app_loop = _AttachableLoop(QCoreApplication.instance())
        # plain Python threads for `asyncio.to_thread` (model loads): qasync's default,
        # QThreads, would still run when Qt tears down at exit
        _app_loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
            8, thread_name_prefix="macllm-server-io"))
    return _app_loop


class QtLoop:
    """asyncio on the GUI thread's Qt event loop (qasync)."""

    name = "qt"

    def __init__(self) -> None:
        self._loop: _AttachableLoop | None = None

    def _attached(self) -> _AttachableLoop:
        if self._loop is None:
            loop = _qt_asyncio_loop()
            loop.attach()
            self._loop = loop
        return self._loop

    def submit(self, work: Work) -> concurrent.futures.Future[None]:
        loop = self._attached()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        task = loop.create_task(work)
        task.add_done_callback(lambda t: _copy_outcome(t, done))
        return done

    def call_soon(self, fn: Callable[[], None]) -> None:
        if self._loop is not None:
            self._loop.call_soon(fn)

    def wait(self, future: concurrent.futures.Future[None], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.002)
        return future.done()

    def release(self) -> None:
        if self._loop is not None:
            self._loop.detach()
            self._loop = None


class ThreadLoop:
    """asyncio on a thread of its own."""

    name = "thread"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=_run_loop, args=(loop,),
                                            name="macllm-server-loop", daemon=True)
            self._loop = loop
            self._thread.start()
        return self._loop

    def submit(self, work: Work) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(work, self._started())

    def call_soon(self, fn: Callable[[], None]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    def wait(self, future: concurrent.futures.Future[None], timeout_s: float) -> bool:
        with contextlib.suppress(concurrent.futures.TimeoutError,
                                 concurrent.futures.CancelledError):
            future.exception(timeout=timeout_s)
        return future.done()

    def release(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10.0)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _copy_outcome(task: asyncio.Task[None], done: concurrent.futures.Future[None]) -> None:
    if task.cancelled():
        done.cancel()
    elif (error := task.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(None)


LOOPS: dict[str, Callable[[], LoopHost]] = {"qt": QtLoop, "thread": ThreadLoop}
