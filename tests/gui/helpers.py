"""Seeding the chat store directly, for GUI tests that need no engine."""

from __future__ import annotations

from typing import Any

STATS: dict[str, Any] = {
    "model": "SmolLM2-135M-Instruct.Q4_1", "engine": "llama.cpp", "ttft_s": 0.05,
    "decode_tps": 90.0, "generated_tokens": 12, "prompt_tokens": 100,
    "finish_reason": "stop", "n_ctx": 4096, "dropped_messages": 0,
}


def seed_conversation(store: Any, turns: list[tuple[str, str]], title: str | None = None,
                      stats: dict[str, Any] | None = None) -> int:
    """A conversation with (user, assistant) turns; returns its id."""
    conversation = store.create_conversation()
    for user, reply in turns:
        message = store.add_message(conversation.id, "user", user)
        started = store.start_reply(conversation.id, message.id)
        store.finish_reply(started.id, reply, "complete", dict(stats or STATS))
    if title:
        store.rename_conversation(conversation.id, title)
    return int(conversation.id)
