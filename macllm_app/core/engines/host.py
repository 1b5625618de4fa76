"""The parent side of the engine host: a child process that owns one engine.

A native crash, a kill or an out-of-memory death takes only the child with it;
callers see `EngineCrashed` and can start a new host. Requests are serialized:
one generation at a time per host. What crosses the pipe keeps its type:
events and stats arrive as themselves, a problem the engine survived as
`EngineError` (one line), and a bug inside the host as `RemoteBug` with the
host's traceback, logged here too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from macllm_app.core.child_process import ChildProcess
from macllm_app.core.errors import EngineCrashed, EngineError, RemoteBug
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    HostMemory,
    LoadConfig,
    ModelInfo,
    ProgressCallback,
)

log = logging.getLogger("macllm.engine.host")

#: A host asked to shut down unloads its model (freeing a large model's memory
#: can take a few seconds) before it exits; after this long it is killed.
SHUTDOWN_GRACE_S = 5.0
#: After the pipe reports the host gone, how long to wait for its exit code.
EXIT_CODE_WAIT_S = 2.0


class EngineHost:
    """Starts, talks to, and watches one engine host process."""

    def __init__(self) -> None:
        self._child: ChildProcess | None = None
        self._lock = threading.Lock()
        self.model: ModelInfo | None = None
        self.config: LoadConfig | None = None

    # -- process lifetime -------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def is_alive(self) -> bool:
        return self._child is not None and self._child.is_alive()

    def start(self) -> None:
        if self.is_alive():
            return
        from macllm_app.core.engines.host_main import host_main

        child = ChildProcess(host_main, name="macllm-engine-host", duplex=True)
        child.start()
        self._child = child
        self.model = None

    def shutdown(self, timeout: float = SHUTDOWN_GRACE_S) -> None:
        """Ask the host to exit; kill it if it has not within `timeout` seconds."""
        with self._lock:
            child, self._child, self.model = self._child, None, None
            if child is None:
                return
            try:
                if child.is_alive():
                    child.conn.send(("shutdown",))
                    if child.conn.poll(timeout):
                        child.conn.recv()
            except (OSError, EOFError):
                pass
            child.stop(timeout)

    def kill(self) -> None:
        """Forceful stop for native calls that cannot be interrupted."""
        if self._child is not None:
            self._child.kill()

    # -- protocol ---------------------------------------------------------
    def _require(self) -> ChildProcess:
        if self._child is None:
            raise EngineCrashed("the engine host is not running")
        return self._child

    def _crashed(self) -> EngineCrashed:
        child, self._child, self.model = self._child, None, None
        detail = "the engine host is not running"
        if child is not None:
            child.join(EXIT_CODE_WAIT_S)
            child.conn.close()
            detail = child.describe_exit()
        return EngineCrashed(detail)

    def _recv(self) -> Any:
        child = self._require()
        try:
            return child.conn.recv()
        except (EOFError, OSError):
            raise self._crashed() from None

    def _send(self, message: tuple[Any, ...]) -> None:
        child = self._require()
        try:
            child.conn.send(message)
        except OSError:
            raise self._crashed() from None

    @staticmethod
    def _failure(reply: tuple[Any, ...]) -> Exception:
        """The exception an "error" or "bug" reply stands for."""
        if reply[0] == "bug":
            summary, trace = reply[1], reply[2]
            log.error("bug in the engine host: %s\n%s", summary, trace)
            return RemoteBug(summary, trace, "the engine host")
        return EngineError(reply[1])

    def _call(self, message: tuple[Any, ...]) -> Any:
        with self._lock:
            self._send(message)
            reply = self._recv()
        if reply[0] in ("error", "bug"):
            raise self._failure(reply)
        return reply[1]

    # -- public API -------------------------------------------------------
    def load(self, config: LoadConfig, progress: ProgressCallback | None = None) -> ModelInfo:
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
                if reply[0] in ("error", "bug"):
                    raise self._failure(reply)
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

    def memory(self) -> HostMemory:
        """The host process's memory, as it measures itself, and its engine's."""
        memory: HostMemory = self._call(("memory",))
        return memory

    def memory_if_idle(self) -> HostMemory | None:
        """`memory()` if the host is not busy (generating, loading), else None at once:
        a monitor never waits for a reply to end."""
        if not self.is_alive() or not self._lock.acquire(blocking=False):
            return None
        try:
            self._send(("memory",))
            reply = self._recv()
        except EngineCrashed:
            return None
        finally:
            self._lock.release()
        return reply[1] if reply[0] == "ok" else None

    def cancel(self) -> None:
        """Ask the running generation to stop; it ends within one token."""
        child = self._child
        if child is not None:
            child.request_cancel()

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Generate, yielding `TextDelta`s and `LiveStats`, then one `Finished`.

        Abandoning the iterator cancels the generation and drains it, so the
        host is ready for the next request.
        """
        with self._lock:
            self._require().clear_cancel()
            self._send(("generate", request))
            done = False
            try:
                while True:
                    reply = self._recv()
                    kind = reply[0]
                    if kind == "event":
                        event: Event = reply[1]
                        done = isinstance(event, Finished)
                        yield event
                        if done:
                            return
                    elif kind in ("error", "bug"):
                        done = True
                        raise self._failure(reply)
            finally:
                if not done and self._child is not None:
                    self._drain()

    def _drain(self) -> None:
        self.cancel()
        try:
            while True:
                reply = self._recv()
                if reply[0] in ("error", "bug") or isinstance(reply[1], Finished):
                    return
        except EngineCrashed:
            return

    def __enter__(self) -> EngineHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
