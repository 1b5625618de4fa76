"""Real models' chat templates render exactly as Hugging Face transformers renders them.

The templates are llama.cpp's collection (tests/data/chat_templates, see its README).
Each is rendered by our sandboxed `ChatTemplate` and by transformers' own
`render_jinja_template` (what `apply_chat_template` calls, no tokenizer needed), for a
plain conversation and for the same conversation with two tools. Where a template
refuses the input (`raise_exception`), both renderers must refuse it.
"""

from __future__ import annotations

import datetime as _datetime
from pathlib import Path
from typing import Any

import pytest
from transformers.utils import chat_template_utils  # installed with mlx-lm

from macllm_app.core.engines.prompt import template as template_module
from macllm_app.core.engines.prompt.template import ChatTemplate
from macllm_app.core.errors import TemplateError
from macllm_app.core.types import Message

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "data" / "chat_templates"
TEMPLATE_FILES = sorted(TEMPLATES_DIR.glob("*.jinja"))

BOS, EOS = "<s>", "</s>"

CONVERSATION = (
    Message("system", "You are a helpful assistant. Réponds brièvement."),
    Message("user", "What's the weather in Zürich? Use <b>bold</b> & be quick."),
    Message("assistant", "It is 21 °C and sunny — 晴れ."),
    Message("user", "And tomorrow in 東京?"),
)

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city & date; returns <temp> in °C (e.g. 20 > 10).",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "object",
                        "description": "Where — city and country",
                        "properties": {
                            "city": {"type": "string", "description": "e.g. Zürich, 東京"},
                            "country": {"type": "string", "enum": ["CH", "JP", "FR"]},
                        },
                        "required": ["city"],
                    },
                    "days": {"type": "integer", "description": "How many days (<= 7)"},
                    "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_notes",
            "description": "Search the user's notes for \"text\" & <tags>.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Words to find, e.g. café"},
                    "filters": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "tag": {"type": "string"},
                                "after": {"type": "string", "format": "date"},
                            },
                        },
                    },
                },
                "required": ["query"],
            },
        },
    },
]


class _FixedDatetime(_datetime.datetime):
    """`datetime.now()` fixed, so templates printing today's date render the same."""

    @classmethod
    def now(cls, tz: _datetime.tzinfo | None = None) -> _FixedDatetime:
        return cls(2026, 3, 14, 9, 26, 53, tzinfo=tz)


@pytest.fixture(autouse=True)
def _fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_module, "datetime", _FixedDatetime)
    monkeypatch.setattr(chat_template_utils, "datetime", _FixedDatetime)


def _transformers_render(source: str, tools: list[dict[str, Any]] | None) -> str:
    messages = [{"role": m.role, "content": m.content} for m in CONVERSATION]
    rendered, _ = chat_template_utils.render_jinja_template(
        conversations=[messages], tools=tools, chat_template=source,
        add_generation_prompt=True, bos_token=BOS, eos_token=EOS,
    )
    return str(rendered[0])


def _check_same(path: Path, tools: list[dict[str, Any]] | None) -> None:
    source = path.read_text(encoding="utf-8")
    ours: str | TemplateError
    try:
        ours = ChatTemplate(source, bos_token=BOS, eos_token=EOS).render(CONVERSATION, tools=tools)
    except TemplateError as exc:
        ours = exc
    try:
        theirs = _transformers_render(source, tools)
    except Exception as exc:
        assert isinstance(ours, TemplateError), (
            f"transformers refused ({type(exc).__name__}: {exc}) but we rendered")
        assert "\n" not in str(ours)
        return
    assert not isinstance(ours, TemplateError), f"we refused ({ours}) but transformers rendered"
    assert ours == theirs


def test_templates_are_present() -> None:
    assert len(TEMPLATE_FILES) >= 70


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.stem)
def test_plain_conversation_matches_transformers(path: Path) -> None:
    _check_same(path, None)


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.stem)
def test_conversation_with_tools_matches_transformers(path: Path) -> None:
    _check_same(path, TOOLS)
