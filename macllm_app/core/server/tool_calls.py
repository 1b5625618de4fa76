"""Tool calls read back out of a model's reply, in the formats models write them.

- Hermes / Qwen: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, repeated;
- Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]` (or `name[ARGS]{...}`);
- Llama 3: `<|python_tag|>{"name": ..., "parameters": {...}}`, or that JSON alone;
- plain JSON: `{"name", "arguments"}`, a list of them, or llama-server's
  `{"tool_call": {...}}` / `{"tool_calls": [...]}` (what a grammar-forced call emits).

Only calls to tools the request offered count; anything else stays text.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

_DECODER = json.JSONDecoder()
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_MISTRAL_ARGS = re.compile(r"\[TOOL_CALLS\]\s*([A-Za-z0-9_.\-]+)\s*\[ARGS\]", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str  # a JSON object as text, as OpenAI's API carries it
    id: str = ""

    def to_openai(self, index: int | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"id": self.id, "type": "function",
                                "function": {"name": self.name, "arguments": self.arguments}}
        if index is not None:
            call["index"] = index
        return call


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _json_at(text: str, start: int) -> tuple[Any, int] | None:
    try:
        return _DECODER.raw_decode(text, start)
    except ValueError:
        return None


def _calls_in(value: Any) -> list[dict[str, Any]]:
    """The call objects inside a parsed JSON value (one, a list, or llama-server's wrappers)."""
    if isinstance(value, list):
        return [c for item in value for c in _calls_in(item)]
    if not isinstance(value, dict):
        return []
    if "tool_calls" in value:
        return _calls_in(value["tool_calls"])
    if "tool_call" in value:
        return _calls_in(value["tool_call"])
    if isinstance(value.get("function"), dict):  # OpenAI's own shape
        return _calls_in(value["function"])
    return [value] if isinstance(value.get("name"), str) else []


def _to_call(raw: dict[str, Any], names: Collection[str]) -> ParsedCall | None:
    name = raw.get("name")
    if not isinstance(name, str) or name not in names:
        return None
    args = raw.get("arguments", raw.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ParsedCall(name, json.dumps(args, ensure_ascii=False), new_call_id())


def _convert(found: list[dict[str, Any]], names: Collection[str]) -> list[ParsedCall] | None:
    calls = [_to_call(raw, names) for raw in found]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def _hermes(text: str, names: Collection[str]) -> tuple[str, list[ParsedCall]] | None:
    start = text.find("<tool_call>")
    if start < 0:
        return None
    found: list[dict[str, Any]] = []
    for body in _HERMES.findall(text[start:]):
        parsed = _json_at(body, 0)
        if parsed is None:
            return None
        found += _calls_in(parsed[0])
    calls = _convert(found, names)
    return (text[:start].strip(), calls) if calls else None


def _mistral(text: str, names: Collection[str]) -> tuple[str, list[ParsedCall]] | None:
    start = text.find("[TOOL_CALLS]")
    if start < 0:
        return None
    found: list[dict[str, Any]] = []
    for match in _MISTRAL_ARGS.finditer(text, start):
        parsed = _json_at(text, match.end())
        if parsed is None:
            return None
        found.append({"name": match.group(1), "arguments": parsed[0]})
    if not found:
        rest = text[start + len("[TOOL_CALLS]"):].lstrip()
        parsed = _json_at(rest, 0)
        if parsed is None:
            return None
        found = _calls_in(parsed[0])
    calls = _convert(found, names)
    return (text[:start].strip(), calls) if calls else None


def _plain_json(text: str, names: Collection[str]) -> tuple[str, list[ParsedCall]] | None:
    body = text.strip().removeprefix("<|python_tag|>").strip()
    if body.startswith("```"):  # a fenced block: ```json ... ```
        body = body.strip("`").removeprefix("json").strip()
    parsed = _json_at(body, 0)
    if parsed is None or body[parsed[1]:].strip():
        return None
    calls = _convert(_calls_in(parsed[0]), names)
    return ("", calls) if calls else None


def parse_tool_calls(text: str, names: Collection[str]) -> tuple[str, list[ParsedCall]]:
    """(the reply's remaining text, its tool calls); no calls: (text, [])."""
    for parser in (_hermes, _mistral, _plain_json):
        result = parser(text, names)
        if result is not None:
            return result
    return text, []
