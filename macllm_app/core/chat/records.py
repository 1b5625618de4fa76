"""Rows of the chats database as dataclasses, and the rules for their fields."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from macllm_app.core.types import ENGINES, EngineName, Role, engine_named

MessageStatus = Literal["complete", "streaming", "interrupted", "cancelled", "error"]
ReplyOutcome = Literal["complete", "interrupted", "cancelled", "error"]

DEFAULT_TITLE = "New chat"
TITLE_CHARS = 40
SETTING_TYPES: dict[str, type] = {
    "temperature": float, "top_p": float, "top_k": int, "min_p": float,
    "repeat_penalty": float, "seed": int, "max_tokens": int,
}
"""Per-conversation sampling overrides (names of `SamplingParams` fields)."""
ENGINE_SETTING = "engine"
"""The conversation's engine choice in its settings; absent means automatic (the
engine the app picks for the model's format)."""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    title: str
    system_prompt: str
    settings: dict[str, Any]
    model: str | None
    engine: str | None
    active_leaf_id: int | None
    created_at: float
    updated_at: float
    deleted_at: float | None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    conversation_id: int
    parent_id: int | None
    role: Role
    content: str
    status: MessageStatus
    error: str | None
    stats: dict[str, Any] | None
    created_at: float
    updated_at: float


CONVERSATION_COLUMNS = ("id, title, system_prompt, settings_json, model, engine, "
                         "active_leaf_id, created_at, updated_at, deleted_at")
MESSAGE_COLUMNS = ("id, conversation_id, parent_id, role, content, status, error, "
                    "stats_json, created_at, updated_at")


def conversation_from_row(row: Any) -> Conversation:
    return Conversation(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5],
                        row[6], row[7], row[8], row[9])


def message_from_row(row: Any) -> StoredMessage:
    stats = json.loads(row[7]) if row[7] is not None else None
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], row[5], row[6], stats,
                         row[8], row[9])


def auto_title(text: str) -> str:
    """The first words of `text`, at most about TITLE_CHARS characters."""
    flat = " ".join(text.split())
    if len(flat) <= TITLE_CHARS:
        return flat
    cut = flat[:TITLE_CHARS].rsplit(" ", 1)[0] if " " in flat[:TITLE_CHARS] else ""
    return (cut or flat[:TITLE_CHARS]).rstrip(" ,.;:") + "…"


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Validated sampling overrides and engine choice; unknown names or wrong types
    raise ValueError. An engine choice of "auto" or None is dropped (automatic)."""
    clean: dict[str, Any] = {}
    for name, value in settings.items():
        if name == ENGINE_SETTING:
            if value not in (None, "auto", *ENGINES):
                raise ValueError(f"unknown engine {value!r}")
            if value in ENGINES:
                clean[name] = value
            continue
        kind = SETTING_TYPES.get(name)
        if kind is None:
            raise ValueError(f"unknown sampling setting {name!r}")
        if value is None and name == "seed":
            clean[name] = None
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"sampling setting {name!r} must be a number, not {value!r}")
        elif kind is int and value != int(value):
            raise ValueError(f"sampling setting {name!r} must be a whole number")
        else:
            clean[name] = kind(value)
    return clean


def engine_choice(settings: dict[str, Any]) -> EngineName | None:
    """The engine a conversation asks for, or None for automatic."""
    return engine_named(settings.get(ENGINE_SETTING))
