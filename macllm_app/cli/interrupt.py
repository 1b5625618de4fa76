"""Ctrl+C in the CLI: the first press asks the running work to stop cleanly, a second
press interrupts at once."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from macllm_app.core.types import StopCheck


@contextmanager
def ctrl_c_stops(on_stop: Callable[[], None] | None = None) -> Iterator[StopCheck]:
    """While inside, Ctrl+C calls `on_stop` (e.g. an engine host's cancel) and makes the
    yielded `should_stop()` return True; work polled with it ends at its next check
    (a reply keeps its text and stats, a download its partial file). A second Ctrl+C
    raises KeyboardInterrupt."""
    asked = {"stop": False}

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        if asked["stop"]:
            raise KeyboardInterrupt
        asked["stop"] = True
        if on_stop is not None:
            on_stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: asked["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)
