"""Streamed replies: server-sent events (OpenAI) and JSON lines (Ollama).

A client that stops reading for longer than the server's client timeout, or
whose connection drops, raises `ClientGone`; the handler lets it end the
request, which cancels the generation in the host. (A dropped connection also
cancels the handler task itself: the server runs with handler cancellation.)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

SSE_DONE = b"data: [DONE]\n\n"
#: Unsent bytes beyond which a write waits (at most the client timeout) for the client.
BACKLOG_BYTES = 64 * 1024


class ClientGone(Exception):
    """The client closed its connection or stopped reading."""


class EventStream:
    """One streamed response: `send(obj)` writes it as an SSE event or a JSON line."""

    def __init__(self, request: web.Request, *, sse: bool, timeout_s: float) -> None:
        self._request = request
        self._sse = sse
        self._timeout_s = timeout_s
        self.response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream" if sse else "application/x-ndjson",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        self.started = False

    async def start(self) -> None:
        if not self.started:
            self.started = True
            await self.response.prepare(self._request)

    async def _write(self, data: bytes) -> None:
        await self.start()
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ClientGone
        try:
            if transport.get_write_buffer_size() < BACKLOG_BYTES:
                await self.response.write(data)
            else:  # the client reads slowly: give it until the timeout to catch up
                await asyncio.wait_for(self.response.write(data), self._timeout_s)
        except (ConnectionResetError, ConnectionError, TimeoutError) as exc:
            raise ClientGone from exc

    async def send(self, obj: dict[str, Any]) -> None:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        if self._sse:
            await self._write(b"data: " + text.encode() + b"\n\n")
        else:
            await self._write(text.encode() + b"\n")

    async def done(self) -> web.StreamResponse:
        """End the stream ([DONE] for SSE)."""
        if self._sse:
            await self._write(SSE_DONE)
        try:
            await asyncio.wait_for(self.response.write_eof(), self._timeout_s)
        except (ConnectionResetError, ConnectionError, TimeoutError) as exc:
            raise ClientGone from exc
        return self.response
