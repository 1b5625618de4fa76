"""Chat templates: a model's Jinja template rendered in a sandbox.

GGUF files carry their prompt format as a Jinja template (`tokenizer.chat_template`).
It is untrusted input, so it renders in jinja2's immutable sandbox: no attribute
walks to Python internals, no mutation of the objects we pass in. Any failure
becomes a one-line `TemplateError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from macllm_app.core.errors import TemplateError, one_line
from macllm_app.core.types import Message

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class _TemplateRaised(Exception):
    """The template called raise_exception(); its message is meant for the user."""


def _raise_exception(message: str) -> NoReturn:
    raise _TemplateRaised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    """A compiled chat template. Construction fails with `TemplateError` on bad syntax."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = "") -> None:
        self.is_fallback = not source
        self.source = source or CHATML_TEMPLATE
        self.bos_token = bos_token
        self.eos_token = eos_token
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(self.source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"The model's chat template has a syntax error (line {exc.lineno}): "
                f"{one_line(exc.message)}"
            ) from None
        except Exception as exc:
            raise TemplateError(
                f"The model's chat template failed to load: {one_line(exc)}"
            ) from None

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True,
               **extra: Any) -> str:
        """The prompt text for `messages`, ending with the assistant's turn opener."""
        payload = [{"role": m.role, "content": m.content} for m in messages]
        try:
            return self._template.render(
                messages=payload,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
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
