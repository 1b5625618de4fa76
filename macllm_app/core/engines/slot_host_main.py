"""The slot host's main loop, in a spawned child that owns one slot engine.

While any request is active the loop alternates: read every command already
waiting on the pipe (submits, cancels, calls) without blocking, run one decode
step, and send the events of all requests in one message: at once when a request
starts streaming, ends or fails, else at most every FLUSH_INTERVAL_S. When idle
it blocks on the pipe. The protocol is described in `slot_host`.
"""

from __future__ import annotations

import logging
import time
from multiprocessing.connection import Connection
from typing import Any

from macllm_app.core.child_process import CancelFlag
from macllm_app.core.engines.slot_engine import SlotEngine, StepItem, bug_item
from macllm_app.core.errors import EngineError, UserError
from macllm_app.core.logs import HOST_LOG, setup_logging
from macllm_app.core.types import LiveStats, LoadConfig, TextDelta

#: Text deltas wait at most this long to share a message (as in the chat host).
FLUSH_INTERVAL_S = 0.016


def create_slot_engine(config: LoadConfig) -> SlotEngine:
    """The slot engine for `config.engine` (imported only here, inside the host)."""
    if config.engine == "llama.cpp":
        from macllm_app.core.engines.llamacpp_slots import LlamaCppSlots

        return LlamaCppSlots()
    from macllm_app.core.engines.host_main import create_engine
    from macllm_app.core.engines.serial_slots import SerialSlots

    return SerialSlots(create_engine(config.engine))


class _SlotHostChild:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.engine: SlotEngine | None = None
        self._pending: list[StepItem] = []  # events not sent yet
        self._streaming: set[int] = set()   # requests that have had events sent
        self._sent_at = 0.0

    def loaded(self) -> SlotEngine:
        if self.engine is None:
            raise EngineError("No model is loaded.")
        return self.engine

    def unload(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            self._pending += [(request_id, ("error", "The model was unloaded."))
                              for request_id in engine.abort_all()]
            self.flush()
            engine.unload()

    def run(self) -> None:
        conn = self.conn
        while True:
            engine = self.engine
            if engine is not None and engine.busy():
                while conn.poll():
                    if not self.handle(conn.recv()):
                        return
                self.step(engine)
            else:
                self.flush()
                if not self.handle(conn.recv()):
                    return

    def step(self, engine: SlotEngine) -> None:
        try:
            items = engine.step()
        except Exception as exc:  # a bug in the engine ends its requests, not the host
            bug = bug_item(exc)
            items = [(request_id, bug) for request_id in engine.abort_all()]
        if not items:
            return
        self._pending += items
        # Send at once what a client waits for (a first token, an end, an error); the
        # rest every FLUSH_INTERVAL_S, so a fast decode costs fewer messages and wake-ups.
        urgent = any(type(item) is not TextDelta or request_id not in self._streaming
                     for request_id, item in items)
        if urgent or time.perf_counter() - self._sent_at >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Send the pending events in one message, a request's successive text deltas
        merged into one."""
        if not self._pending:
            return
        merged: list[StepItem] = []
        open_delta: dict[int, int] = {}  # request id -> index of its last delta in merged
        streaming = self._streaming
        for request_id, item in self._pending:
            if type(item) is TextDelta:
                at = open_delta.get(request_id)
                if at is not None:
                    before = merged[at][1]
                    merged[at] = (request_id, TextDelta(
                        before.text + item.text, before.token_ids + item.token_ids,
                        before.logprobs + item.logprobs))
                    continue
                open_delta[request_id] = len(merged)
                streaming.add(request_id)
            else:
                open_delta.pop(request_id, None)
                if not isinstance(item, LiveStats):  # Finished or a failure: the end
                    streaming.discard(request_id)
            merged.append((request_id, item))
        self._pending = []
        self.conn.send(("events", merged))
        self._sent_at = time.perf_counter()

    def handle(self, command: tuple[Any, ...]) -> bool:
        """Carry out one command; False on "shutdown"."""
        kind = command[0]
        if kind == "submit":
            if self.engine is None:
                self._pending.append((command[1], ("error", "No model is loaded.")))
                self.flush()
            else:
                self.engine.submit(command[1], command[2])
        elif kind == "cancel":
            if self.engine is not None:
                self.engine.cancel(command[1])
        elif kind == "call":
            self.call(command[1], command[2], command[3:])
        elif kind == "shutdown":
            self.unload()
            return False
        return True

    def call(self, call_id: int, name: str, args: tuple[Any, ...]) -> None:
        self.flush()
        send = self.conn.send
        try:
            if name == "load":
                config, parallel = args
                self.unload()
                engine = create_slot_engine(config)
                info = engine.load(config, parallel,
                                   lambda f, m: send(("progress", call_id, f, m)))
                self.engine = engine
                value: Any = info
            elif name == "unload":
                self.unload()
                value = None
            elif name == "embed":
                value = self.loaded().embed(args[0])
            elif name == "tokenize":
                value = self.loaded().tokenize(args[0])
            elif name == "chat_template":
                value = self.loaded().chat_template()
            else:
                raise EngineError(f"Unknown slot host call {name!r}.")
        except UserError as exc:
            send(("error", call_id, str(exc)))
        except Exception as exc:
            _, summary, trace = bug_item(exc)
            send(("bug", call_id, summary, trace))
        else:
            send(("reply", call_id, value))


def slot_host_main(conn: Connection, _cancel_flag: CancelFlag) -> None:
    """Serve until "shutdown" or until the parent goes away."""
    setup_logging(logging.WARNING, file_name=HOST_LOG)
    try:
        _SlotHostChild(conn).run()
    except (EOFError, OSError):
        return  # the parent went away
