"""Exports of the branch on screen, and the temp-file-then-rename write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from macllm_app.core.chat.export import export_json, export_markdown, write_export
from macllm_app.core.chat.store import ChatStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    with ChatStore(tmp_path / "chats.sqlite3") as chat_store:
        yield chat_store


def _chat(store: ChatStore) -> int:
    conversation = store.create_conversation("Capitals", system_prompt="Answer in one word.",
                                             settings={"temperature": 0.0})
    store.update_conversation(conversation.id, model="SmolLM2", engine="llama.cpp")
    old = store.add_message(conversation.id, "user", "Capital of Spain?")
    store.add_message(conversation.id, "assistant", "Madrid")
    question = store.add_message(conversation.id, "user", "Capital of France?",
                                 parent_id=old.parent_id)
    reply = store.start_reply(conversation.id, question.id)
    store.finish_reply(reply.id, "Paris", "cancelled",
                       stats={"model": "SmolLM2", "engine": "llama.cpp",
                              "generated_tokens": 2, "decode_tps": 41.25})
    return conversation.id


def test_markdown_has_title_system_prompt_and_active_branch_only(store: ChatStore) -> None:
    text = export_markdown(store, _chat(store))
    assert text.startswith("# Capitals\n")
    assert "## System prompt\n\nAnswer in one word." in text
    assert "## User\n\nCapital of France?" in text
    assert "## Assistant\n\nParis" in text
    assert "reply cancelled · SmolLM2 · llama.cpp · 2 tokens · 41.2 tok/s" in text
    assert "Spain" not in text and "Madrid" not in text


def test_json_has_messages_with_status_stats_and_timestamps(store: ChatStore) -> None:
    document = json.loads(export_json(store, _chat(store)))
    assert document["title"] == "Capitals"
    assert document["system_prompt"] == "Answer in one word."
    assert document["settings"] == {"temperature": 0.0}
    assert (document["model"], document["engine"]) == ("SmolLM2", "llama.cpp")
    messages = document["messages"]
    assert [(m["role"], m["content"], m["status"]) for m in messages] == [
        ("user", "Capital of France?", "complete"), ("assistant", "Paris", "cancelled")]
    assert messages[1]["stats"]["decode_tps"] == 41.25
    assert messages[0]["stats"] is None
    assert messages[0]["created_at"].endswith("+00:00")


def test_export_of_an_empty_chat(store: ChatStore) -> None:
    conversation = store.create_conversation()
    assert export_markdown(store, conversation.id) == "# New chat\n"
    assert json.loads(export_json(store, conversation.id))["messages"] == []


def test_write_export_replaces_the_file_whole(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "chat.md"
    target.write_text("old export", encoding="utf-8")
    write_export(target, "# New ✓\n")
    assert target.read_text(encoding="utf-8") == "# New ✓\n"
    assert sorted(p.name for p in folder.iterdir()) == ["chat.md"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "chat.md"
    target.write_text("old export", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_export(target, "half \ud800 written")
    assert target.read_text(encoding="utf-8") == "old export"
    assert sorted(p.name for p in folder.iterdir()) == ["chat.md"]
