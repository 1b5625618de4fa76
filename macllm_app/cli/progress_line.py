"""Progress of long commands on stderr."""

from __future__ import annotations

import sys


class ProgressLine:
    """Progress on stderr: one line rewritten in place on a terminal, else a line
    per tenth of the work."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.step = 1 if self.tty else 10
        self.last = -1
        self.last_message = ""

    def __call__(self, fraction: float, message: str) -> None:
        pct = int(fraction * 100) // self.step * self.step
        done_saying_more = fraction >= 1.0 and message != self.last_message
        if pct == self.last and not done_saying_more:
            return
        self.last, self.last_message = pct, message
        if self.tty:
            print(f"\r{pct:3d}% {message[:70]:<70}", end="", file=sys.stderr, flush=True)
        else:
            print(f"{pct:3d}% {message}", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.tty and self.last >= 0:
            print(file=sys.stderr, flush=True)
