"""The parent side of the engine host: a child process that owns one engine.

A native crash, a kill or an out-of-memory death takes only the child with it;
callers see `EngineCrashed` and can start a new host. Requests are serialized:
one generation at a time per host.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from macllm_app.core.engines.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    ModelInfo,
    TextDelta,
)
from macllm_app.core.errors import EngineCrashed, EngineError

log = logging.getLogger("macllm.engine.host")

ProgressHandler = Callable[[float, str], None]


def describe_exit(exitcode: int | None) -> str:
    """Plain words for how a process ended."""
    if exitcode is None:
        return "it stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if name == "SIGKILL":
            return "killed by SIGKILL, possibly out of memory"
        return f"crashed with {name}"
    return f"exit code {exitcode}"


class EngineHost:
    """Starts, talks to, and watches one engine host process."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._cancel = self._ctx.RawValue("i", 0)
        self._lock = threading.Lock()
        self.model: ModelInfo | None = None
        self.config: LoadConfig | None = None

    # -- process lifetime -------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        if self.is_alive():
            return
        from macllm_app.core.engines.host_main import host_main

        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=host_main, args=(child_conn, self._cancel), name="macllm-engine-host",
            daemon=True,
        )
        process.start()
        child_conn.close()  # so recv() sees EOF as soon as the child dies
        self._process, self._conn = process, parent_conn
        self.model = None

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask the host to exit; kill it if it does not."""
        with self._lock:
            process, conn = self._process, self._conn
            self._process, self._conn, self.model = None, None, None
            if process is None or conn is None:
                return
            try:
                if process.is_alive():
                    conn.send(("shutdown",))
                    if conn.poll(timeout):
                        conn.recv()
            except (OSError, EOFError):
                pass
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)
            conn.close()

    def kill(self) -> None:
        """Forceful stop for native calls that cannot be interrupted."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    # -- protocol ---------------------------------------------------------
    def _require(self) -> Connection:
        if self._conn is None or self._process is None:
            raise EngineCrashed("the engine host is not running")
        return self._conn

    def _crashed(self) -> EngineCrashed:
        process = self._process
        exitcode = None
        if process is not None:
            process.join(2.0)
            exitcode = process.exitcode
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn, self.model = None, None, None
        return EngineCrashed(describe_exit(exitcode))

    def _recv(self) -> Any:
        conn = self._require()
        try:
            return conn.recv()
        except (EOFError, OSError, ConnectionResetError):
            raise self._crashed() from None

    def _send(self, message: tuple[Any, ...]) -> None:
        conn = self._require()
        try:
            conn.send(message)
        except (OSError, BrokenPipeError):
            raise self._crashed() from None

    def _call(self, message: tuple[Any, ...]) -> Any:
        with self._lock:
            self._send(message)
            reply = self._recv()
        if reply[0] == "error":
            raise EngineError(reply[1])
        return reply[1]

    # -- public API -------------------------------------------------------
    def load(self, config: LoadConfig, progress: ProgressHandler | None = None) -> ModelInfo:
        """Load a model (starting the host if needed); relays load progress."""
        self.start()
        with self._lock:
            self._send(("load", config))
            while True:
                reply = self._recv()
                if reply[0] == "progress":
                    if progress is not None:
                        progress(reply[1], reply[2])
                    continue
                if reply[0] == "error":
                    raise EngineError(reply[1])
                info: ModelInfo = reply[1]
                self.model, self.config = info, config
                return info

    def unload(self) -> None:
        if self.is_alive():
            self._call(("unload",))
        self.model = None

    def count_tokens(self, text: str) -> int:
        return int(self._call(("count", text)))

    def tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self._call(("tokenize", text))
        return tokens

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self._call(("stats",))
        return result

    def cancel(self) -> None:
        """Ask the running generation to stop; it ends within one token."""
        self._cancel.value = 1

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Generate, yielding `TextDelta`s then one `Finished`.

        Abandoning the iterator cancels the generation and drains it, so the
        host is ready for the next request.
        """
        with self._lock:
            self._cancel.value = 0
            self._send(("generate", request))
            done = False
            try:
                while True:
                    reply = self._recv()
                    kind = reply[0]
                    if kind == "delta":
                        yield TextDelta(reply[1], reply[2])
                    elif kind == "done":
                        done = True
                        stats: GenerationStats = reply[1]
                        yield Finished(stats)
                        return
                    elif kind == "error":
                        done = True
                        raise EngineError(reply[1])
            finally:
                if not done and self._conn is not None:
                    self._drain()

    def _drain(self) -> None:
        self._cancel.value = 1
        try:
            while True:
                reply = self._recv()
                if reply[0] in ("done", "error"):
                    return
        except EngineCrashed:
            return

    def __enter__(self) -> EngineHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
