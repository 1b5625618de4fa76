"""Chat templates: a model's Jinja template rendered in a sandbox.

GGUF files carry their prompt format as a Jinja template (`tokenizer.chat_template`).
It is untrusted input, so it renders in jinja2's immutable sandbox: no attribute
walks to Python internals, no mutation of the objects we pass in. Any failure
becomes a one-line `TemplateError`.

The environment mirrors the one Hugging Face transformers builds for
`apply_chat_template` (transformers/utils/chat_template_utils.py), so a model's
template renders here exactly as it does there: trim_blocks/lstrip_blocks, loop
controls, the `{% generation %}` tag, a `tojson` filter that neither sorts keys nor
escapes HTML, `raise_exception`, `strftime_now`, a restricted `dict` and
`namespace`, and the same variables (`messages`, `tools`, `documents`,
`add_generation_prompt`, the special tokens).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from macllm_app.core.errors import TemplateError, one_line
from macllm_app.core.types import Message

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Names a message's reasoning may come under; templates read the first (as in transformers).
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class _TemplateRaised(Exception):
    """The template called raise_exception(); its message is meant for the user."""


def _raise_exception(message: str) -> NoReturn:
    raise _TemplateRaised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | str | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    """Like transformers' filter: keys in order, no HTML escaping, json.dumps options."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` marks the assistant's text for training
    masks; when rendering a prompt it just renders its body."""

    tags = {"generation"}  # noqa: RUF012 - jinja's Extension API declares it this way

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_render_body")
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Macro) -> str:
        return str(caller())


class _TemplateDict:
    """`dict(...)` for templates, without exposing the `dict` type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(Namespace):
    """jinja's `namespace`, refusing underscore-prefixed attribute names."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # jinja's trick: namespace(self=...) works
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: object) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(f"namespace attribute {name!r} starts with an underscore")


def _plain(value: Any) -> Any:
    """`value` rebuilt from plain JSON-like types, so the template sees nothing with
    methods of its own; anything else becomes an inert placeholder."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Message):
        return {"role": _plain(value.role), "content": _plain(value.content)}
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return f"<{type(value).__name__}>"


def _message_payload(message: Message | Mapping[str, Any]) -> dict[str, Any]:
    """One message as the template sees it: a dict without None values, with its
    reasoning under every name templates read it by (as transformers does)."""
    plain = _plain(message)
    if not isinstance(plain, dict):
        raise TypeError(f"a chat message must be a Message or a dict, not {type(message).__name__}")
    payload = {key: item for key, item in plain.items() if item is not None}
    reasoning = next((payload[key] for key in _REASONING_FIELDS if key in payload), None)
    if reasoning is not None:
        payload = {"thinking": reasoning, **payload, "reasoning_content": reasoning}
    return payload


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True,
        extensions=[_GenerationTag, "jinja2.ext.loopcontrols"],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


class ChatTemplate:
    """A compiled chat template. Construction fails with `TemplateError` on bad syntax."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = "") -> None:
        self.is_fallback = not source
        self.source = source or CHATML_TEMPLATE
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template = _environment().from_string(self.source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"The model's chat template has a syntax error (line {exc.lineno}): "
                f"{one_line(exc.message)}"
            ) from None
        except Exception as exc:
            raise TemplateError(
                f"The model's chat template failed to load: {one_line(exc)}"
            ) from None

    def render(self, messages: Sequence[Message | Mapping[str, Any]],
               add_generation_prompt: bool = True,
               tools: Sequence[Mapping[str, Any]] | None = None,
               **extra: Any) -> str:
        """The prompt text for `messages`, ending with the assistant's turn opener.

        `messages` are `Message`s or raw message dicts (e.g. with `tool_calls`);
        `tools` are JSON-schema function descriptions (OpenAI style). `extra`
        becomes template variables and may override the special tokens, as in
        transformers' `apply_chat_template(**kwargs)`.
        """
        try:
            variables: dict[str, Any] = {
                "bos_token": self.bos_token, "eos_token": self.eos_token, "documents": None,
                **extra,
            }
            variables = _plain(variables)
            variables["tools"] = None if tools is None else _plain(list(tools))
            variables["messages"] = [_message_payload(m) for m in messages]
            variables["add_generation_prompt"] = add_generation_prompt
            return self._template.render(**variables)
        except SecurityError as exc:
            raise TemplateError(f"The model's chat template is unsafe: {one_line(exc)}") from None
        except _TemplateRaised as exc:
            raise TemplateError(
                f"The model's chat template rejected the conversation: {one_line(exc)}"
            ) from None
        except Exception as exc:
            raise TemplateError(
                f"The model's chat template failed to render: "
                f"{type(exc).__name__}: {one_line(exc)}"
            ) from None
