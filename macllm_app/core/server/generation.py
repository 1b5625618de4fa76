"""One generation in the engine host, seen from the server's event loop.

The host calls back on its reader thread; each event is handed to the loop
(`call_soon_threadsafe`) and read here as an async iterator of `TextDelta`s
that ends with the host's `Finished` stats, or raises the request's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from macllm_app.core.types import Event, Finished, GenerationRequest, GenerationStats, TextDelta

if TYPE_CHECKING:
    from macllm_app.core.server.engine_link import SlotHostLike


class Generation:
    def __init__(self, loop: asyncio.AbstractEventLoop, host: SlotHostLike) -> None:
        self._loop = loop
        self._host = host
        self._queue: asyncio.Queue[Event | Exception] = asyncio.Queue()
        self._done_callbacks: list[Callable[[], None]] = []
        self.request_id: int | None = None
        self.stats: GenerationStats | None = None
        self.error: Exception | None = None
        self.done = False
        self.cancelled_at: float | None = None  # time.time() when the server asked to stop
        self.ended_at: float | None = None  # ... when the host said it ended

    def start(self, request: GenerationRequest) -> None:
        self.request_id = self._host.submit(request, self._from_host)

    def _from_host(self, event: Event | Exception) -> None:
        """On the host's reader thread."""
        with contextlib.suppress(RuntimeError):  # a closed loop: the server has stopped
            self._loop.call_soon_threadsafe(self._arrived, event)

    def _arrived(self, event: Event | Exception) -> None:
        if isinstance(event, Finished | Exception):
            self.done = True
            self.ended_at = time.time()
            if isinstance(event, Finished):
                self.stats = event.stats
            else:
                self.error = event
            for callback in self._done_callbacks:
                callback()
            self._done_callbacks.clear()
        self._queue.put_nowait(event)

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the loop) once the host has ended this generation."""
        if self.done:
            callback()
        else:
            self._done_callbacks.append(callback)

    def cancel(self) -> None:
        if not self.done and self.request_id is not None:
            if self.cancelled_at is None:
                self.cancelled_at = time.time()
            self._host.cancel(self.request_id)

    async def deltas(self) -> AsyncIterator[TextDelta]:
        """The text as it comes; afterwards `stats` holds the host's stats. Raises the
        request's error (EngineError, EngineCrashed) as it arrives."""
        while True:
            event = await self._queue.get()
            if isinstance(event, TextDelta):
                yield event
            elif isinstance(event, Finished):
                return
            elif isinstance(event, Exception):
                raise event

    async def collect(self) -> tuple[str, list[TextDelta]]:
        pieces = [delta async for delta in self.deltas()]
        return "".join(d.text for d in pieces), pieces
