"""The parent side of the slot host: an engine host that serves many requests at once.

Where `EngineHost` runs one generation at a time, a `SlotHost` takes requests as
they come (`submit` returns at once) and its child decodes up to `parallel` of
them together (llama.cpp; MLX runs one at a time); the rest wait in the child,
first come first served. A reader thread receives the child's messages and
hands each request's events to its callback. If the child dies, every pending
request and every waiting call gets `EngineCrashed`.

Protocol (tuples over the pipe):
  parent -> child: ("call", call_id, name, *args) with name in load, unload, embed,
                   tokenize, chat_template; ("submit", request_id, GenerationRequest)
                   ("cancel", request_id) ("shutdown",)
  child -> parent: ("events", [(request_id, item), ...]) -- a decode step's events (or a
                   few steps' when tokens come faster than FLUSH_INTERVAL_S);
                   item: TextDelta | LiveStats | Finished | ("error", message)
                   | ("bug", summary, traceback)
                   ("progress", call_id, fraction, message)
                   ("reply", call_id, value) ("error", call_id, message)
                   ("bug", call_id, summary, traceback)
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from macllm_app.core.child_process import ChildProcess
from macllm_app.core.errors import EngineCrashed, EngineError, RemoteBug
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    LoadConfig,
    ModelInfo,
    ProgressCallback,
)

log = logging.getLogger("macllm.engine.slot_host")

EventCallback = Callable[[Event | Exception], None]

#: Asked to shut down, the host unloads its model before it exits; then it is killed.
SHUTDOWN_GRACE_S = 5.0
#: After the pipe reports the host gone, how long to wait for its exit code.
EXIT_CODE_WAIT_S = 2.0


def remote_failure(item: tuple[Any, ...]) -> Exception:
    """The exception an ("error", message) or ("bug", summary, traceback) item stands for."""
    if item[0] == "bug":
        log.error("bug in the slot host: %s\n%s", item[1], item[2])
        return RemoteBug(item[1], item[2], "the engine host")
    return EngineError(item[1])


@dataclass
class _Call:
    """A blocking call waiting for the child's reply."""

    progress: ProgressCallback | None = None
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: Exception | None = None

    def finish(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error
        self.done.set()


class _Link:
    """One child process and what is waiting on it; dies with it."""

    def __init__(self, child: ChildProcess) -> None:
        self.child = child
        self.lock = threading.Lock()        # guards the tables and `dead`
        self.send_lock = threading.Lock()   # one writer on the pipe at a time
        self.requests: dict[int, EventCallback] = {}
        self.calls: dict[int, _Call] = {}
        self.dead: EngineCrashed | None = None
        self.closing = False

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            with self.send_lock:
                self.child.conn.send(message)
        except (OSError, ValueError):
            pass  # the reader sees the pipe close and fails everything pending

    def fail_all(self, error: EngineCrashed) -> None:
        with self.lock:
            self.dead = error
            requests, self.requests = self.requests, {}
            calls, self.calls = self.calls, {}
        for call in calls.values():
            call.finish(error=error)
        for callback in requests.values():
            _deliver(callback, error)


def _deliver(callback: EventCallback, item: Event | Exception) -> None:
    try:
        callback(item)
    except Exception:  # a caller's bug must not stop the reader thread
        log.exception("an on_event callback raised")


class SlotHost:
    """Starts, talks to and watches one slot host process."""

    def __init__(self, parallel: int = 4) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.parallel = parallel
        self.model: ModelInfo | None = None
        self.config: LoadConfig | None = None
        self._link: _Link | None = None
        self._ids = itertools.count(1)
        self._start_lock = threading.Lock()

    # -- process lifetime -------------------------------------------------
    @property
    def pid(self) -> int | None:
        link = self._link
        return link.child.pid if link is not None else None

    def is_alive(self) -> bool:
        link = self._link
        return link is not None and link.dead is None and link.child.is_alive()

    def start(self) -> None:
        with self._start_lock:
            if self.is_alive():
                return
            from macllm_app.core.engines.slot_host_main import slot_host_main

            child = ChildProcess(slot_host_main, name="macllm-slot-host", duplex=True)
            child.start()
            link = _Link(child)
            self._link = link
            self.model = self.config = None
            threading.Thread(target=self._read, args=(link,), name="macllm-slot-host-reader",
                             daemon=True).start()

    def shutdown(self, timeout: float = SHUTDOWN_GRACE_S) -> None:
        """Ask the host to exit (pending requests get EngineCrashed); kill it if it has
        not within `timeout` seconds."""
        with self._start_lock:
            link, self._link = self._link, None
            self.model = self.config = None
        if link is None:
            return
        link.closing = True
        if link.child.is_alive():
            link.send(("shutdown",))
        link.child.stop(timeout)
        link.fail_all(EngineCrashed("the engine host was shut down"))

    def kill(self) -> None:
        """End the host at once (SIGKILL)."""
        link = self._link
        if link is not None:
            link.child.kill()

    # -- the reader thread ------------------------------------------------
    def _read(self, link: _Link) -> None:
        conn = link.child.conn
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError, ValueError):
                break
            try:
                self._dispatch(link, message)
            except Exception:
                log.exception("the slot host sent a message that could not be handled")
        detail = "the engine host was shut down"
        if not link.closing:
            link.child.join(EXIT_CODE_WAIT_S)
            detail = link.child.describe_exit()
        link.fail_all(EngineCrashed(detail))
        if self._link is link:
            self.model = self.config = None

    def _dispatch(self, link: _Link, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "events":
            for request_id, item in message[1]:
                terminal = isinstance(item, Finished | tuple)
                with link.lock:
                    callback = (link.requests.pop(request_id, None) if terminal
                                else link.requests.get(request_id))
                if callback is not None:
                    _deliver(callback, remote_failure(item) if isinstance(item, tuple) else item)
            return
        with link.lock:
            call = link.calls.get(message[1])
            if call is not None and kind != "progress":
                del link.calls[message[1]]
        if call is None:
            return
        if kind == "progress":
            if call.progress is not None:
                try:
                    call.progress(message[2], message[3])
                except Exception:
                    log.exception("a progress callback raised")
        elif kind == "reply":
            call.finish(message[2])
        else:
            call.finish(error=remote_failure((kind, *message[2:])))

    # -- protocol ---------------------------------------------------------
    def _live_link(self) -> _Link:
        link = self._link
        if link is None:
            raise EngineCrashed("the engine host is not running")
        return link

    def _call(self, name: str, *args: Any, progress: ProgressCallback | None = None) -> Any:
        link = self._live_link()
        call_id = next(self._ids)
        call = _Call(progress)
        with link.lock:
            if link.dead is not None:
                raise link.dead
            link.calls[call_id] = call
        link.send(("call", call_id, name, *args))
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.value

    # -- public API -------------------------------------------------------
    def load(self, config: LoadConfig, progress: ProgressCallback | None = None) -> ModelInfo:
        """Load a model (starting the host if needed); blocks, relaying progress.
        `config.n_ctx` is each slot's context."""
        self.start()
        self.model = None
        info: ModelInfo = self._call("load", config, self.parallel, progress=progress)
        self.model, self.config = info, config
        return info

    def unload(self) -> None:
        if self.is_alive():
            self._call("unload")
        self.model = self.config = None

    def submit(self, request: GenerationRequest, on_event: EventCallback) -> int:
        """Queue a request; returns its id at once. `on_event` (called on the reader
        thread) gets its TextDelta / LiveStats events, then one Finished or exception."""
        link = self._live_link()
        request_id = next(self._ids)
        with link.lock:
            if link.dead is not None:
                raise link.dead
            link.requests[request_id] = on_event
        try:
            link.send(("submit", request_id, request))
        except Exception:  # the request could not be pickled: it never left
            with link.lock:
                link.requests.pop(request_id, None)
            raise
        return request_id

    def cancel(self, request_id: int) -> None:
        """End a request with finish_reason "cancelled" (within one decode step)."""
        link = self._link
        if link is not None and link.dead is None:
            link.send(("cancel", request_id))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._call("embed", list(texts))
        return vectors

    def tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self._call("tokenize", text)
        return tokens

    def chat_template(self) -> str:
        source: str = self._call("chat_template")
        return source

    def __enter__(self) -> SlotHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
