"""The engine host's main loop. Runs in a spawned child process that owns one engine.

Protocol (tuples over a multiprocessing pipe):
  parent -> child: ("load", LoadConfig) ("generate", GenerationRequest) ("unload",)
                   ("memory",) ("count", text) ("tokenize", text) ("shutdown",)
  child -> parent: ("progress", fraction, message) ("loaded", ModelInfo)
                   ("event", TextDelta | LiveStats | Finished)
                   ("error", message) ("bug", summary, traceback) ("ok", value)
Cancel is a shared flag the engine checks once per token, so it needs no message.
A `UserError` is a problem the engine survived ("error", one line); any other
exception is a bug: logged here with its traceback and sent as ("bug", ...).
"""

from __future__ import annotations

import logging
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from macllm_app.core.child_process import CancelFlag
from macllm_app.core.engines.base import Engine
from macllm_app.core.errors import EngineError, UserError, one_line
from macllm_app.core.logs import HOST_LOG, setup_logging
from macllm_app.core.platform.memory import current_rss_bytes, peak_rss_bytes
from macllm_app.core.types import (
    EngineMemory,
    EngineName,
    Finished,
    GenerationRequest,
    HostMemory,
    LiveStats,
    LoadConfig,
    TextDelta,
)

log = logging.getLogger("macllm.engine.host_main")

FLUSH_INTERVAL_S = 0.016
FLUSH_TOKENS = 8


def create_engine(name: EngineName) -> Engine:
    """Import and build an engine by name (only ever called here, inside the host)."""
    if name == "llama.cpp":
        from macllm_app.core.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine()
    if name == "mlx":
        try:
            from macllm_app.core.engines.mlx_engine import MLXEngine
        except ImportError as exc:
            raise EngineError(f"MLX is not available on this machine ({exc}).") from exc
        return MLXEngine()
    raise EngineError(f"Unknown engine {name!r} (choose llama.cpp or mlx).")


class _Host:
    """The engine the host holds, and the commands that reach it."""

    def __init__(self, conn: Connection, cancel_flag: CancelFlag) -> None:
        self.conn = conn
        self.cancel_flag = cancel_flag
        self.engine: Engine | None = None

    def loaded(self) -> Engine:
        if self.engine is None:
            raise EngineError("No model is loaded.")
        return self.engine

    def unload(self) -> None:
        if self.engine is not None:
            self.engine.unload()
            self.engine = None

    def handle(self, command: tuple[Any, ...]) -> None:
        kind, send = command[0], self.conn.send
        if kind == "load":
            config: LoadConfig = command[1]
            self.unload()
            engine = create_engine(config.engine)
            info = engine.load(config, lambda f, m: send(("progress", f, m)))
            self.engine = engine
            send(("loaded", info))
        elif kind == "generate":
            _generate(self.conn, self.loaded(), command[1], self.cancel_flag)
        elif kind == "tokenize":
            send(("ok", self.loaded().tokenize(command[1])))
        elif kind == "count":
            send(("ok", self.loaded().count_tokens(command[1])))
        elif kind == "unload":
            self.unload()
            send(("ok", None))
        elif kind == "memory":
            used = self.engine.memory() if self.engine is not None else EngineMemory()
            send(("ok", HostMemory(rss_bytes=current_rss_bytes(),
                                   peak_rss_bytes=peak_rss_bytes(), engine=used)))
        else:
            send(("error", f"Unknown engine host command {kind!r}."))


def host_main(conn: Connection, cancel_flag: CancelFlag) -> None:
    """Serve commands until "shutdown" or until the parent goes away."""
    setup_logging(logging.WARNING, file_name=HOST_LOG)
    host = _Host(conn, cancel_flag)
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if command[0] == "shutdown":
                host.unload()
                conn.send(("ok", None))
                return
            host.handle(command)
        except UserError as exc:
            conn.send(("error", str(exc)))
        except (BrokenPipeError, EOFError):
            return  # the parent went away
        except Exception as exc:  # a bug in an engine must not kill the host silently
            trace = traceback.format_exc()
            log.error("bug in the engine host:\n%s", trace)
            detail = one_line(exc, "")
            summary = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            conn.send(("bug", summary, trace))


def _generate(conn: Connection, engine: Engine, request: GenerationRequest,
              cancel_flag: CancelFlag) -> None:
    """Relay one generation, batching deltas that arrive faster than a screen shows them."""
    pending_text: list[str] = []
    pending_ids: list[int] = []
    last_flush = 0.0
    first = True
    clock = time.perf_counter
    send = conn.send

    def should_stop() -> bool:
        return bool(cancel_flag.value)

    def flush() -> None:
        send(("event", TextDelta("".join(pending_text), tuple(pending_ids))))
        pending_text.clear()
        pending_ids.clear()

    for event in engine.stream(request, should_stop):
        if type(event) is TextDelta:
            pending_text.append(event.text)
            pending_ids.extend(event.token_ids)
            now = clock()
            if first or len(pending_ids) >= FLUSH_TOKENS or now - last_flush >= FLUSH_INTERVAL_S:
                flush()
                last_flush = now
                first = False
        elif isinstance(event, LiveStats):
            if pending_ids or pending_text:
                flush()
            send(("event", event))
        elif isinstance(event, Finished):
            if pending_ids or pending_text:
                flush()
            send(("event", event))
            return
    raise EngineError("The engine ended a reply without its statistics.")
