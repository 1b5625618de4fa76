"""Export the branch on screen of a conversation as Markdown or JSON."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from macllm_app.core.chat.store import ChatStore, StoredMessage

EXPORT_FORMAT = "macllm-chat"
EXPORT_VERSION = 1
_ROLE_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant"}


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _message_dict(message: StoredMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "error": message.error,
        "stats": message.stats,
        "created_at": iso_time(message.created_at),
        "updated_at": iso_time(message.updated_at),
    }


def export_json(store: ChatStore, conversation_id: int) -> str:
    conversation = store.get_conversation(conversation_id)
    document = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "id": conversation.id,
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "settings": conversation.settings,
        "model": conversation.model,
        "engine": conversation.engine,
        "created_at": iso_time(conversation.created_at),
        "updated_at": iso_time(conversation.updated_at),
        "messages": [_message_dict(m) for m in store.active_path(conversation_id)],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _stats_line(stats: dict[str, Any]) -> str:
    parts = []
    if stats.get("model"):
        parts.append(str(stats["model"]))
    if stats.get("engine"):
        parts.append(str(stats["engine"]))
    if stats.get("generated_tokens"):
        parts.append(f"{stats['generated_tokens']} tokens")
    if stats.get("decode_tps"):
        parts.append(f"{float(stats['decode_tps']):.1f} tok/s")
    return " · ".join(parts)


def export_markdown(store: ChatStore, conversation_id: int) -> str:
    conversation = store.get_conversation(conversation_id)
    lines = [f"# {conversation.title}", ""]
    if conversation.model:
        lines += [f"_Model: {conversation.model} ({conversation.engine or 'unknown engine'})_",
                  ""]
    if conversation.system_prompt.strip():
        lines += ["## System prompt", "", conversation.system_prompt.strip(), ""]
    for message in store.active_path(conversation_id):
        lines += [f"## {_ROLE_HEADINGS[message.role]}", "",
                  message.content.strip() or "_(empty)_", ""]
        notes = []
        if message.status != "complete":
            notes.append(f"reply {message.status}")
        if message.error:
            notes.append(message.error)
        if message.stats:
            notes.append(_stats_line(message.stats))
        notes = [n for n in notes if n]
        if notes:
            lines += [f"_{' · '.join(notes)} — {iso_time(message.created_at)}_", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_export(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temp file in the same folder, then rename."""
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                     dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp_name).replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temp_name).unlink()
        raise
