"""The engine host's main loop. Runs in a spawned child process that owns one engine.

Protocol (tuples over a multiprocessing pipe):
  parent -> child: ("load", LoadConfig) ("generate", GenerationRequest) ("unload",)
                   ("stats",) ("count", text) ("tokenize", text) ("shutdown",)
  child -> parent: ("progress", fraction, message) ("loaded", ModelInfo)
                   ("delta", text, token_ids) ("done", GenerationStats)
                   ("error", message) ("ok", value)
Cancel is a shared flag the engine checks once per token, so it needs no message.
"""

from __future__ import annotations

import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from macllm_app.core.engines.base import Engine, create_engine
from macllm_app.core.engines.types import Finished, GenerationRequest, LoadConfig, TextDelta
from macllm_app.core.errors import UserError
from macllm_app.core.hardware.memory import current_rss_bytes, peak_rss_bytes

FLUSH_INTERVAL_S = 0.016
FLUSH_TOKENS = 8


def host_main(conn: Connection, cancel_flag: Any) -> None:
    """Serve commands until "shutdown" or until the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    engine: Engine | None = None
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            return
        kind = command[0]
        try:
            if kind == "shutdown":
                if engine is not None:
                    engine.unload()
                conn.send(("ok", None))
                return
            if kind == "load":
                config: LoadConfig = command[1]
                if engine is not None:
                    engine.unload()
                    engine = None
                new_engine = create_engine(config.engine)
                info = new_engine.load(
                    config, lambda f, m: conn.send(("progress", f, m))
                )
                engine = new_engine
                conn.send(("loaded", info))
            elif kind == "generate":
                if engine is None:
                    conn.send(("error", "No model is loaded."))
                    continue
                _generate(conn, engine, command[1], cancel_flag)
            elif kind == "tokenize":
                if engine is None:
                    conn.send(("error", "No model is loaded."))
                    continue
                conn.send(("ok", engine.tokenize(command[1])))
            elif kind == "count":
                if engine is None:
                    conn.send(("error", "No model is loaded."))
                    continue
                conn.send(("ok", engine.count_tokens(command[1])))
            elif kind == "unload":
                if engine is not None:
                    engine.unload()
                    engine = None
                conn.send(("ok", None))
            elif kind == "stats":
                conn.send(("ok", {"rss_bytes": current_rss_bytes(),
                                  "peak_rss_bytes": peak_rss_bytes()}))
            else:
                conn.send(("error", f"Unknown engine host command {kind!r}."))
        except UserError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:  # a bug in an engine must not kill the host silently
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _generate(conn: Connection, engine: Engine, request: GenerationRequest,
              cancel_flag: Any) -> None:
    """Relay one generation, batching deltas that arrive faster than a screen shows them."""
    pending_text: list[str] = []
    pending_ids: list[int] = []
    last_flush = 0.0
    first = True
    clock = time.perf_counter
    send = conn.send

    def should_stop() -> bool:
        return bool(cancel_flag.value)

    try:
        for event in engine.stream(request, should_stop):
            if type(event) is TextDelta:
                pending_text.append(event.text)
                pending_ids.extend(event.token_ids)
                now = clock()
                due = len(pending_ids) >= FLUSH_TOKENS or now - last_flush >= FLUSH_INTERVAL_S
                if first or due:
                    send(("delta", "".join(pending_text), tuple(pending_ids)))
                    pending_text.clear()
                    pending_ids.clear()
                    last_flush = now
                    first = False
            elif isinstance(event, Finished):
                if pending_ids or pending_text:
                    send(("delta", "".join(pending_text), tuple(pending_ids)))
                send(("done", event.stats))
                return
    except UserError as exc:
        send(("error", str(exc)))
        return
    send(("error", "The engine ended a reply without its statistics."))
