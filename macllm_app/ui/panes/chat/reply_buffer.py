"""The text of the reply being streamed: the one buffer the controller fills and the
message view reads (joined only when it is read)."""

from __future__ import annotations


class ReplyBuffer:
    def __init__(self) -> None:
        self._parts: list[str] = []

    def append(self, text: str) -> None:
        self._parts.append(text)

    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""
