"""Stop strings in streamed text: emit what is safe, hold back what may start a stop."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed it decoded text piece by piece.

    Text that could be the beginning of a stop string is held back until the
    next pieces prove it is not; a completed stop string ends the stream and is
    never emitted.
    """

    __slots__ = ("_firsts", "_held", "_max_len", "_stops", "stopped")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._max_len = max((len(s) for s in self._stops), default=0)
        self._firsts = frozenset(s[0] for s in self._stops)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The text that can be emitted now; sets `stopped` when a stop string completes."""
        if not self._stops:
            return text
        held = self._held + text
        cut = -1
        for stop in self._stops:
            found = held.find(stop)
            if found != -1 and (cut == -1 or found < cut):
                cut = found
        if cut != -1:
            self._held = ""
            self.stopped = True
            return held[:cut]
        keep = self._partial_suffix(held)
        self._held = held[len(held) - keep:] if keep else ""
        return held[: len(held) - keep]

    def flush(self) -> str:
        """Held text at the end of the stream (it never became a stop string)."""
        held, self._held = self._held, ""
        return held

    def finish(self, text: str) -> tuple[str, bool]:
        """Feed the stream's last text and flush: (text to emit, whether a stop matched)."""
        emit = self.feed(text)
        if self.stopped:
            return emit, True
        return emit + self.flush(), False

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop."""
        window = text[1 - self._max_len:] if self._max_len > 1 else ""
        if not any(first in window for first in self._firsts):
            return 0
        for size in range(min(len(text), self._max_len - 1), 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0


def finish_stream(stops: StopMatcher | None, tail: str) -> tuple[str, bool]:
    """An engine's last text once its token loop ends: (text to emit, whether it
    completed a stop string). Without stop strings, or once one has matched, the
    tail stands as it is."""
    if stops is None or stops.stopped:
        return tail, False
    return stops.finish(tail)
