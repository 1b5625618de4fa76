"""Slot host tests' shared steps: submit requests and gather each one's events."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from macllm_app.core.engines.slot_host import SlotHost
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    LiveStats,
    TextDelta,
)

WAIT_S = 300.0


@dataclass
class Reply:
    """One request's events as they arrived; `end` is its Finished or exception."""

    deltas: list[TextDelta] = field(default_factory=list)
    live: list[LiveStats] = field(default_factory=list)
    end: Finished | Exception | None = None
    order: list[int] = field(default_factory=list)  # global arrival numbers of its events

    @property
    def text(self) -> str:
        return "".join(delta.text for delta in self.deltas)

    @property
    def ids(self) -> list[int]:
        return [token for delta in self.deltas for token in delta.token_ids]

    @property
    def stats(self) -> GenerationStats:
        assert isinstance(self.end, Finished), f"the request ended with {self.end!r}"
        return self.end.stats


class Gatherer:
    """Submits requests to a SlotHost and gathers their events, checking the stream's
    shape: deltas and live stats, then exactly one terminal item, then nothing."""

    def __init__(self, host: SlotHost) -> None:
        self.host = host
        self.replies: dict[int, Reply] = {}
        self._lock = threading.Condition()
        self._counter = 0
        self.errors: list[str] = []

    def submit(self, request: GenerationRequest,
               on_delta: Callable[[int, Reply], None] | None = None) -> int:
        reply = Reply()
        request_id_box: list[int] = []

        def on_event(item: Event | Exception) -> None:
            with self._lock:
                self._counter += 1
                if reply.end is not None:
                    self.errors.append(f"{item!r} after the end")
                reply.order.append(self._counter)
                if isinstance(item, TextDelta):
                    reply.deltas.append(item)
                elif isinstance(item, LiveStats):
                    reply.live.append(item)
                else:
                    reply.end = item
                self._lock.notify_all()
            if on_delta is not None and isinstance(item, TextDelta) and request_id_box:
                on_delta(request_id_box[0], reply)

        with self._lock:
            request_id = self.host.submit(request, on_event)
            request_id_box.append(request_id)
            self.replies[request_id] = reply
        return request_id

    def wait(self, ids: Sequence[int] | None = None, timeout: float = WAIT_S) -> list[Reply]:
        wanted = list(self.replies) if ids is None else list(ids)
        with self._lock:
            finished = self._lock.wait_for(
                lambda: all(self.replies[i].end is not None for i in wanted), timeout)
        assert finished, "requests did not finish in time"
        assert not self.errors, self.errors
        return [self.replies[i] for i in wanted]

    def run(self, requests: Sequence[GenerationRequest]) -> list[Reply]:
        """Submit all at once; wait for all."""
        ids = [self.submit(request) for request in requests]
        return self.wait(ids)
