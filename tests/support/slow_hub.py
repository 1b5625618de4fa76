"""Make the fake Hub's CDN slow enough that a download can be paused mid-way."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.fake_hub import _Handler

PIECE = 1 << 16


def slow_cdn(monkeypatch: pytest.MonkeyPatch, pause_s: float = 0.02) -> None:
    """Serve CDN bodies in 64 KiB pieces, `pause_s` apart."""
    original = _Handler._send_bytes

    class Slow:
        def __init__(self, raw: Any) -> None:
            self.raw = raw

        def write(self, data: bytes) -> int:
            for i in range(0, len(data), PIECE):
                self.raw.write(data[i:i + PIECE])
                time.sleep(pause_s)
            return len(data)

        def flush(self) -> None:
            self.raw.flush()

    def send(self: _Handler, data: bytes, head: bool, extra: dict[str, str]) -> None:
        if self.path.startswith("/cdn/"):
            self.wfile = Slow(self.wfile)  # type: ignore[assignment]
        original(self, data, head, extra)

    monkeypatch.setattr(_Handler, "_send_bytes", send)
