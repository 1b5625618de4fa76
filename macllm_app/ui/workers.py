"""Background work for the GUI: generator-style workers on QThreads.

A worker runs core code off the GUI thread and only emits signals (started,
progress, token, finished, failed, cancelled); results arrive on the GUI
thread through queued connections. A worker never touches a widget.
Exactly one of finished / failed / cancelled is emitted per run.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Literal

from PySide6.QtCore import QObject, QThread, Signal, Slot

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.types import (
    Event,
    Finished,
    GenerationStats,
    LoadConfig,
    ModelInfo,
    TextDelta,
)
from macllm_app.core.errors import Cancelled, EngineCrashed, UserError

log = logging.getLogger("macllm.ui.workers")

#: Seconds a cancelled generation gets to end by itself before its host is killed.
CANCEL_GRACE_S = 2.0

_running: dict[QThread, Worker] = {}
_running_lock = threading.Lock()


class _Reaper(QObject):
    """Lives on the GUI thread; drops a worker once its thread has really finished.

    Releasing the last reference from inside the worker's own thread would
    destroy a running QThread, which aborts the process.
    """

    @Slot()
    def release(self) -> None:
        thread = self.sender()
        with _running_lock:
            worker = _running.pop(thread, None)  # type: ignore[call-overload]
        if worker is not None:
            worker._thread = None
        if isinstance(thread, QThread):
            thread.deleteLater()


_reaper: _Reaper | None = None


def _get_reaper() -> _Reaper:
    global _reaper  # noqa: PLW0603 - created on the GUI thread at first use
    if _reaper is None:
        _reaper = _Reaper()
    return _reaper


class Worker(QObject):
    """Base worker. Subclasses implement `work()`; it may emit progress/token."""

    started = Signal()
    progress = Signal(float, str)
    token = Signal(str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._abort = threading.Event()
        self.error: BaseException | None = None
        self.outcome: Literal["running", "finished", "failed", "cancelled"] = "running"
        self._thread: QThread | None = None

    # -- to override --------------------------------------------------------
    def work(self) -> object:
        raise NotImplementedError

    # -- control ------------------------------------------------------------
    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def cancel(self) -> None:
        """Ask the work to stop at its next step."""
        self._abort.set()

    def start(self) -> None:
        """Run `work()` on a new QThread; the worker is kept alive until it ends."""
        thread = QThread()
        thread.setObjectName(type(self).__name__)
        self._thread = thread
        self.moveToThread(thread)
        thread.started.connect(self._run)
        thread.finished.connect(_get_reaper().release)
        with _running_lock:
            _running[thread] = self
        thread.start()

    def wait(self, timeout_ms: int = 10_000) -> bool:
        thread = self._thread
        return thread is None or thread.wait(timeout_ms)

    @Slot()
    def _run(self) -> None:
        self.started.emit()
        try:
            result = self.work()
        except Cancelled:
            self._end("cancelled")
        except UserError as exc:
            self.error = exc
            self._end("failed", str(exc))
        except EngineCrashed as exc:
            self.error = exc
            if self.abort_requested:
                self._end("cancelled")
            else:
                self._end("failed", str(exc))
        except Exception as exc:
            self.error = exc
            log.error("%s failed:\n%s", type(self).__name__, traceback.format_exc())
            self._end("failed", f"{type(exc).__name__}: {exc}")
        else:
            if self.abort_requested:
                self._end("cancelled")
            else:
                self._end("finished", result)

    def _end(self, outcome: Literal["finished", "failed", "cancelled"],
             payload: object = None) -> None:
        self.outcome = outcome
        if outcome == "finished":
            self.finished.emit(payload)
        elif outcome == "failed":
            self.failed.emit(str(payload))
        else:
            self.cancelled.emit()
        thread = self._thread
        if thread is not None:
            thread.quit()


def wait_for_workers(timeout_ms: int = 10_000) -> None:
    """Cancel and join every running worker (on quit and in tests)."""
    with _running_lock:
        workers = list(_running.values())
    for worker in workers:
        worker.cancel()
    for worker in workers:
        worker.wait(timeout_ms)


class FunctionWorker(Worker):
    """Runs one blocking call (a query, an export) and emits its result."""

    def __init__(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._call = (fn, args, kwargs)

    def work(self) -> object:
        fn, args, kwargs = self._call
        return fn(*args, **kwargs)


class LoadModelWorker(Worker):
    """Loads a model into an engine host, relaying load progress."""

    def __init__(self, host: EngineHost, config: LoadConfig) -> None:
        super().__init__()
        self.host = host
        self.config = config

    def work(self) -> ModelInfo:
        info = self.host.load(self.config, self._progress)
        if self.abort_requested:
            raise Cancelled
        return info

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.emit(fraction, message)


GenerationAction = Literal["send", "regenerate", "edit"]


class GenerationWorker(Worker):
    """Streams one reply through a ChatSession and emits its text deltas.

    The session (and its own store connection) is created on the worker
    thread from `session_factory`, so SQLite never crosses threads. `finished`
    carries the reply's `GenerationStats` (None if the stream gave none).
    Cancel asks the session to stop; if the host has not finished within
    CANCEL_GRACE_S, the host process is killed.
    """

    def __init__(self, host: EngineHost, session_factory: Callable[[], Any],
                 action: GenerationAction, text: str = "", message_id: object = None) -> None:
        super().__init__()
        self.host = host
        self._factory = session_factory
        self.action = action
        self.text = text
        self.message_id = message_id
        self._session: Any = None
        self._session_ready = threading.Event()
        self._done = threading.Event()
        self._killer: threading.Timer | None = None
        self.tokens_seen = 0
        self.stats: GenerationStats | None = None

    def _events(self, session: Any) -> Iterator[Event]:
        if self.action == "send":
            events: Iterator[Event] = session.send(self.text)
        elif self.action == "regenerate":
            events = session.regenerate()
        else:
            events = session.edit_and_resend(self.message_id, self.text)
        return events

    def work(self) -> object:
        try:
            session = self._factory()
            self._session = session
            self._session_ready.set()
            stats = None
            events = self._events(session)  # the user's side is saved by now
            if self.abort_requested:
                session.cancel()  # stopped before the reply began: store it as cancelled
            for event in events:
                if isinstance(event, TextDelta):
                    if self.abort_requested:
                        self.host.cancel()  # a cancel that raced the stream's start
                    if event.text:
                        self.tokens_seen += max(1, len(event.token_ids))
                        self.token.emit(event.text)
                elif isinstance(event, Finished):
                    stats = event.stats
            self.stats = stats
            if stats is not None and stats.finish_reason == "cancelled":
                self._abort.set()
            return stats
        finally:
            self._done.set()
            if self._killer is not None:
                self._killer.cancel()
            close = getattr(self._session, "close", None)
            if callable(close):
                close()

    def cancel(self) -> None:
        if self._done.is_set() or self._abort.is_set():
            return
        super().cancel()
        self.host.cancel()
        session = self._session
        if session is not None:
            session.cancel()
        self._killer = threading.Timer(CANCEL_GRACE_S, self._force_stop)
        self._killer.daemon = True
        self._killer.start()

    def _force_stop(self) -> None:
        if not self._done.is_set():
            log.warning("The engine did not stop within %.1f s; killing its host.",
                        CANCEL_GRACE_S)
            self.host.kill()

