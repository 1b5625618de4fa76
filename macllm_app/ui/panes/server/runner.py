"""Starts and stops a `LocalServer` for the Server pane and reports on it in Qt signals.

One server session at a time: `start(config)` runs it on the chosen loop (`loops.py`),
`stop()` ends it, `shutdown()` ends it and waits (the app is quitting). What the
session reports (started, a finished request, the counters every half second,
stopped, a one-line failure) comes to the GUI thread through queued signals,
whichever loop runs it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
from typing import Literal

from PySide6.QtCore import QObject, Qt, Signal, Slot

from macllm_app.core.errors import UserError, describe, is_bug
from macllm_app.core.server.config import ServerConfig
from macllm_app.ui import task_registry
from macllm_app.ui.panes.server.loops import LOOPS, LoopHost

log = logging.getLogger("macllm.ui.server")

Mode = Literal["qt", "thread"]
#: Where the server runs unless the caller says otherwise. With 32 streaming
#: clients (bench/server_gui_stall.py, 2 shared CPU cores) the GUI's longest stall was
#: 17-51 ms on the Qt loop, 24-96 ms with a loop thread (whose loop contends for the GIL).
DEFAULT_MODE: Mode = "qt"
STATS_INTERVAL_S = 0.5
State = Literal["off", "starting", "on", "stopping"]


class _Relay(QObject):
    """Emitted from the server's loop (any thread); connected queued to the runner."""

    started = Signal(str)
    record = Signal(object)
    stats = Signal(object)
    failed = Signal(str)
    ended = Signal()


class ServerRunner(QObject):
    started = Signal(str)           # the server's address
    stopped = Signal()
    failed = Signal(str)            # why it did not start, or stopped: one line
    request_finished = Signal(object)  # a RequestRecord
    stats_changed = Signal(object)  # ServerStats

    def __init__(self, mode: Mode | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mode: Mode = mode or DEFAULT_MODE
        self.state: State = "off"
        self.url = ""
        self._loop: LoopHost | None = None
        self._session: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._relay = _Relay()
        queued = Qt.ConnectionType.QueuedConnection
        self._relay.started.connect(self._on_started, queued)
        self._relay.record.connect(self.request_finished, queued)
        self._relay.stats.connect(self.stats_changed, queued)
        self._relay.failed.connect(self.failed, queued)
        self._relay.ended.connect(self._on_ended, queued)

    # -- control (GUI thread) ------------------------------------------------------
    def start(self, config: ServerConfig) -> None:
        if self.state != "off":
            return
        self.state = "starting"
        self._loop = LOOPS[self.mode]()
        self._session = self._loop.submit(self._run(config))
        self._session.add_done_callback(lambda _f: self._relay.ended.emit())

    def stop(self) -> None:
        if self.state in ("starting", "on") and self._loop is not None:
            self.state = "stopping"
            self._loop.call_soon(self._request_stop)

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop the server and wait for it (the app is quitting); True if it stopped."""
        session, loop = self._session, self._loop
        if session is None or loop is None:
            return True
        self.stop()
        stopped = loop.wait(session, timeout_s)
        if not stopped:
            log.warning("the server did not stop within %.0f s", timeout_s)
        self._on_ended()
        return stopped

    @property
    def running(self) -> bool:
        return self.state != "off"

    # -- on the server's loop -------------------------------------------------------
    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _run(self, config: ServerConfig) -> None:
        from macllm_app.core.server.app import LocalServer  # aiohttp loads only now

        self._stop = stop = asyncio.Event()
        if self.state == "stopping":
            stop.set()
        server = LocalServer(config)
        server.add_listener(self._relay.record.emit)
        try:
            await server.start()
        except Exception as exc:
            self._relay.failed.emit(why_not_started(exc, config))
            with contextlib.suppress(Exception):
                await server.stop()
            return
        self._relay.started.emit(server.url)
        try:
            while not stop.is_set():
                self._relay.stats.emit(server.stats)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), STATS_INTERVAL_S)
        finally:
            await server.stop()
            self._relay.stats.emit(server.stats)

    # -- back on the GUI thread -----------------------------------------------------
    @Slot(str)
    def _on_started(self, url: str) -> None:
        if self.state == "starting":  # not when a stop came while it started
            self.state, self.url = "on", url
            self.started.emit(url)

    @Slot()
    def _on_ended(self) -> None:
        session, loop = self._session, self._loop
        if session is None or loop is None or not session.done():
            return
        self._session = self._loop = self._stop = None
        loop.release()
        self.state, self.url = "off", ""
        error = session.exception() if not session.cancelled() else None
        if error is not None:
            log.error("the server stopped because of a bug", exc_info=error)
            task_registry.report_bug(error)
            self.failed.emit(describe(error))
        self.stopped.emit()


def why_not_started(exc: BaseException, config: ServerConfig) -> str:
    """One line for a server that would not start (a bug keeps its traceback in the log)."""
    if isinstance(exc, UserError):
        return describe(exc)
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return (f"Port {config.port} on {config.host} is already in use: choose another "
                    "port, or stop the program that uses it.")
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{config.host} is not an address of this machine."
        if exc.errno == errno.EACCES:
            return f"This user may not listen on port {config.port}: choose one above 1023."
        return f"Could not listen on {config.host}:{config.port}: {exc.strerror or exc}"
    if is_bug(exc):
        log.error("the server did not start because of a bug", exc_info=exc)
    return describe(exc)
