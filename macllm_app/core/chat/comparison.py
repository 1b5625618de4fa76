"""Two replies to the same message, side by side: engine, speed, tokens, memory, model.

Shown under a reply made by "Run on the other engine" or "Run without the adapter"
(its stats name the reply it is compared with, as `compared_with`).
"""

from __future__ import annotations

from typing import Any

from macllm_app.core.chat.records import StoredMessage
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.types import GenerationStats
from macllm_app.core.units import human_size

MISSING = "–"
ROW_TITLES = ("Engine", "Time to first token", "Prompt", "Decode", "Tokens", "Peak memory",
              "Model")


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value else MISSING


def _speed(value: float) -> str:
    return f"{value:.1f} tok/s" if value else MISSING


def stats_column(stored: dict[str, Any] | None) -> tuple[str, ...]:
    """One reply's values, in the order of ROW_TITLES."""
    s = GenerationStats.from_dict(stored)
    if s is None:
        return (MISSING,) * len(ROW_TITLES)
    tokens = f"{s.generated_tokens}"
    if s.prompt_tokens:
        tokens += f" (prompt {s.prompt_tokens})"
    return (s.engine or MISSING, _seconds(s.ttft_s), _speed(s.prompt_tps),
            _speed(s.decode_tps), tokens,
            human_size(s.peak_rss_bytes) if s.peak_rss_bytes else MISSING,
            s.model or MISSING)


def comparison_rows(before: dict[str, Any] | None,
                    after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(row title, earlier reply's value, this reply's value) for each row."""
    return list(zip(ROW_TITLES, stats_column(before), stats_column(after), strict=True))


def compared_reply(store: ChatStore, reply: StoredMessage) -> StoredMessage | None:
    """The reply `reply` was compared with (its stats say which), if it is in its chat."""
    wanted = (reply.stats or {}).get("compared_with")
    if not isinstance(wanted, int):
        return None
    try:
        other = store.get_message(wanted)
    except KeyError:
        return None
    return other if other.conversation_id == reply.conversation_id else None
