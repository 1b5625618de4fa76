"""Ollama's request bodies (/api/chat, /api/generate, /api/show), validated by pydantic.

Options Ollama clients send that only its own runner understands (num_ctx,
num_gpu, mirostat, ...) are ignored: the server decides how models load.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from macllm_app.core.server.schemas_openai import unsupported


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Options(_Body):
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, ge=0.0, le=5.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = None
    num_predict: int | None = None  # -1: no limit, -2: fill the context
    stop: list[str] | None = None

    def stops(self) -> tuple[str, ...]:
        return tuple(self.stop or ())


class OllamaFunction(_Body):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class OllamaToolCall(_Body):
    function: OllamaFunction


class OllamaMessage(_Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = None

    _no_images = field_validator("images")(unsupported("images are not supported"))


class Generating(_Body):
    model: str | None = None
    stream: bool = True
    format: Literal["", "json"] | dict[str, Any] | None = None
    options: Options = Field(default_factory=Options)
    keep_alive: str | int | float | None = None


class OllamaChatRequest(Generating):
    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class OllamaGenerateRequest(Generating):
    prompt: str = ""
    system: str | None = None
    raw: bool = False
    images: list[str] | None = None
    template: str | None = None
    suffix: str | None = None

    _no_images = field_validator("images")(unsupported("images are not supported"))
    _no_template = field_validator("template")(
        unsupported("a request cannot replace the model's template"))
    _no_suffix = field_validator("suffix")(
        unsupported("suffix (fill in the middle) is not supported"))


class OllamaShowRequest(_Body):
    model: str | None = None
    name: str | None = None  # older clients send the model as `name`
