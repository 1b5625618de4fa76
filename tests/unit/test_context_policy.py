"""The context policy drops the oldest turns, never the system prompt or the last message."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from macllm_app.core.engines.prompt.context_policy import (
    MIN_REPLY_TOKENS,
    fit_to_context,
    prompt_budget,
)
from macllm_app.core.errors import EngineError
from macllm_app.core.types import Message

OVERHEAD = 3  # per-message template tokens of the fake counter


class FakeCounter:
    """One token per word plus a fixed overhead per message; records every call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, messages: Sequence[Message]) -> int:
        self.calls += 1
        return sum(len(m.content.split()) + OVERHEAD for m in messages)


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def conversation(turns: int, size: int = 10) -> list[Message]:
    messages = [Message("system", words(5, "sys"))]
    for i in range(turns):
        messages.append(Message("user", words(size, f"u{i}-")))
        messages.append(Message("assistant", words(size, f"a{i}-")))
    messages.append(Message("user", words(size, "last")))
    return messages


def test_fits_without_dropping() -> None:
    messages = conversation(2)
    counter = FakeCounter()
    fitted = fit_to_context(messages, counter, budget=1000)
    assert fitted.messages == tuple(messages)
    assert fitted.dropped == 0
    assert fitted.prompt_tokens == counter(messages)


def test_drops_oldest_turns_first() -> None:
    messages = conversation(5)  # system 8 + 10 turns of 13 + last 13 = 151 tokens
    fitted = fit_to_context(messages, FakeCounter(), budget=100)
    kept = fitted.messages
    assert kept[0] == messages[0]
    assert kept[-1] == messages[-1]
    assert fitted.dropped == len(messages) - len(kept)
    # 8 + 13 + 3 * 26 = 99 tokens: the three newest turns survive.
    assert kept[1:-1] == tuple(messages[-7:-1])
    assert fitted.dropped == 4
    assert fitted.prompt_tokens == 99


def test_never_starts_history_with_an_assistant_reply() -> None:
    messages = conversation(5)
    for budget in range(40, 160):
        fitted = fit_to_context(messages, FakeCounter(), budget)
        history = [m for m in fitted.messages if m.role != "system"]
        assert history[0].role == "user"
        assert fitted.prompt_tokens <= budget


def test_keeps_every_system_message() -> None:
    messages = [Message("system", "a"), *conversation(4)[1:], Message("system", "b")]
    messages.append(Message("user", "final"))
    fitted = fit_to_context(messages, FakeCounter(), budget=20)
    assert [m.content for m in fitted.messages] == ["a", "b", "final"]


def test_last_message_alone_too_long() -> None:
    messages = [Message("system", "sys"), Message("user", words(200))]
    with pytest.raises(EngineError, match=r"^The message is too long for the context window "
                                          r"\(207 tokens > 100\)\.$"):
        fit_to_context(messages, FakeCounter(), budget=100)


def test_counts_logarithmically_many_times() -> None:
    messages = conversation(200, size=2)
    counter = FakeCounter()
    fit_to_context(messages, counter, budget=200)
    assert counter.calls <= 12


def test_empty_conversation() -> None:
    fitted = fit_to_context([], FakeCounter(), budget=10)
    assert fitted.messages == ()
    assert fitted.dropped == 0


def test_prompt_budget() -> None:
    assert prompt_budget(2048, 512) == 1536
    assert prompt_budget(2048, 1) == 2048 - MIN_REPLY_TOKENS
    assert prompt_budget(2048, 100_000) == 1024
