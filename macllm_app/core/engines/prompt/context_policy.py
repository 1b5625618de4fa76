"""Fitting a conversation into the context window by dropping its oldest turns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from macllm_app.core.errors import EngineError
from macllm_app.core.types import Message

MIN_REPLY_TOKENS = 64
"""Room always kept free for the reply, however small `max_tokens` is."""

TokenCounter = Callable[[Sequence[Message]], int]
"""Counts the tokens of the prompt these messages render to."""


@dataclass(frozen=True, slots=True)
class FittedConversation:
    messages: tuple[Message, ...]
    dropped: int
    prompt_tokens: int


def prompt_budget(n_ctx: int, max_tokens: int) -> int:
    """Tokens the prompt may use so that the reply still has room.

    The reply reserve is `max_tokens`, at least `MIN_REPLY_TOKENS` and at most half
    the window (a huge `max_tokens` must not leave no room for the prompt itself).
    """
    reserve = max(MIN_REPLY_TOKENS, min(max_tokens, n_ctx // 2))
    return max(1, n_ctx - reserve)


def _turn_starts(middle: Sequence[int], messages: Sequence[Message]) -> list[int]:
    """Indexes (into `middle`) where a droppable turn begins: at each user message.

    Dropping whole turns means the kept history never starts with an assistant
    reply, which many templates reject.
    """
    starts = [0]
    starts.extend(i for i in range(1, len(middle)) if messages[middle[i]].role == "user")
    return starts


def fit_to_context(messages: Sequence[Message], count_tokens: TokenCounter,
                   budget: int) -> FittedConversation:
    """Drop the oldest non-system turns until the rendered prompt fits `budget` tokens.

    System messages and the last message always stay. Raises `EngineError` if even
    those alone do not fit.
    """
    if not messages:
        return FittedConversation((), 0, count_tokens(()))
    full = count_tokens(messages)
    if full <= budget:
        return FittedConversation(tuple(messages), 0, full)

    last = len(messages) - 1
    middle = [i for i in range(last) if messages[i].role != "system"]
    starts = _turn_starts(middle, messages)
    starts.append(len(middle))  # dropping everything droppable

    def keep_from(turn: int) -> tuple[Message, ...]:
        dropped = set(middle[: starts[turn]])
        return tuple(m for i, m in enumerate(messages) if i not in dropped)

    minimal = keep_from(len(starts) - 1)
    minimal_tokens = count_tokens(minimal)
    if minimal_tokens > budget:
        raise EngineError(
            f"The message is too long for the context window "
            f"({minimal_tokens} tokens > {budget})."
        )
    # Fewest dropped turns that fit: a binary search, since dropping more never grows
    # the prompt. `hi` always fits, `lo` never does (turn 0 is the full conversation).
    lo, hi, hi_tokens = 0, len(starts) - 1, minimal_tokens
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tokens = count_tokens(keep_from(mid))
        if tokens <= budget:
            hi, hi_tokens = mid, tokens
        else:
            lo = mid
    kept = keep_from(hi)
    return FittedConversation(kept, len(messages) - len(kept), hi_tokens)
