"""Token id -> text, asked of llama.cpp once per vocabulary entry and then memoized.

A generated token costs a list lookup instead of two native calls. Pieces that are
not complete UTF-8 on their own (byte-fallback tokens, halves of an emoji) are kept
as bytes and go through an incremental decoder, so a character is never split.
"""

from __future__ import annotations

import codecs
import ctypes
from typing import Any, Final

import llama_cpp.llama_cpp as lc

END_OF_GENERATION: Final = object()
"""The entry of tokens that end a reply (llama_vocab_is_eog)."""

_BUFFER_BYTES = 256


class TokenPieces:
    """Memoized pieces of one vocabulary: str (whole UTF-8), bytes, or END_OF_GENERATION."""

    def __init__(self, vocab: Any, n_vocab: int) -> None:
        self._vocab = vocab
        self._buffer = ctypes.create_string_buffer(_BUFFER_BYTES)
        self.entries: list[object] = [None] * n_vocab

    def lookup(self, token: int) -> object:
        """The entry of `token`, filled in on first use."""
        if lc.llama_vocab_is_eog(self._vocab, token):
            entry: object = END_OF_GENERATION
        else:
            raw = self.piece_bytes(token)
            try:
                entry = raw.decode("utf-8")
            except UnicodeDecodeError:
                entry = raw
        self.entries[token] = entry
        return entry

    def piece_bytes(self, token: int) -> bytes:
        n = lc.llama_token_to_piece(self._vocab, token, self._buffer, _BUFFER_BYTES, 0, False)
        if n >= 0:
            return self._buffer.raw[:n]
        buffer = ctypes.create_string_buffer(-n)
        n = lc.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:n]


class StreamText:
    """Incremental text of a token stream that only ever emits whole characters."""

    __slots__ = ("_decode", "_decoder", "partial")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._decode = self._decoder.decode
        self.partial = False  # the decoder holds the start of an unfinished character

    def feed(self, entry: str | bytes) -> str:
        """Text for a piece that needs the decoder (bytes, or anything while partial)."""
        data = entry if isinstance(entry, bytes) else entry.encode("utf-8")
        text = self._decode(data)
        self.partial = bool(self._decoder.getstate()[0])
        return text

    def close(self) -> str:
        """Whatever is left at the end; an unfinished character becomes U+FFFD."""
        self.partial = False
        return self._decode(b"", True)
