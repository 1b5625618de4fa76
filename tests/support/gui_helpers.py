"""GUI test helpers: waiting for the model and replies, seeding the chat store directly,
per-chat settings, replies."""

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


def set_max_tokens(pane: Any, max_tokens: int) -> None:
    """Conversations keep their own sampling; change this one's reply length (and show it)."""
    if pane.conversation_id is None:
        pane.new_conversation()
    settings = pane.store.get_conversation(pane.conversation_id).settings
    pane.store.update_conversation(pane.conversation_id,
                                   settings={**settings, "max_tokens": max_tokens})
    pane.settings_panel.show_conversation(pane.store.get_conversation(pane.conversation_id))


def last_reply(pane: Any) -> Any:
    """The open conversation's last message, which must be a reply."""
    path = pane.store.active_path(pane.conversation_id)
    assert path and path[-1].role == "assistant"
    return path[-1]


def wait_loaded(qtbot: Any, window: Any, timeout: int = 60_000) -> None:
    qtbot.waitUntil(window.engine.is_ready, timeout=timeout)


def wait_reply(qtbot: Any, pane: Any, timeout: int = 180_000) -> None:
    """Wait until the pane is no longer generating."""
    qtbot.waitUntil(lambda: not pane.is_streaming(), timeout=timeout)


def send_and_wait(qtbot: Any, pane: Any, text: str, timeout: int = 180_000) -> None:
    with qtbot.waitSignal(pane.streaming_changed, timeout=timeout,
                          check_params_cb=lambda streaming: streaming is False):
        pane.send(text)
