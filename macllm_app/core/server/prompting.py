"""OpenAI chat requests as the engine's `GenerationRequest`.

Messages go to the model's own chat template as raw OpenAI-style dicts (tool
calls, tool results). A template that knows nothing of tools gets them the way
llama-server's generic format does: a system note listing the tools and asking
for a JSON call, earlier calls written back as that JSON, results as user turns.

A tool choice that requires a call (`"required"`, or a named function) is
enforced by a JSON schema of the call, which the engine turns into a grammar,
as llama-server does; the reply is then read back into `tool_calls`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from macllm_app.core.server.errors import ApiError
from macllm_app.core.server.schemas_openai import (
    ChatCompletionRequest,
    ChatMessage,
    NamedToolChoice,
    SamplingFields,
    Tool,
)
from macllm_app.core.types import GenerationRequest, SamplingParams

JSON_OBJECT_SCHEMA = '{"type": "object"}'


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """Which tool names a reply may call, and whether to read calls back at all."""

    names: tuple[str, ...] = ()
    parse: bool = False


def sampling_from(fields: SamplingFields, max_tokens: int, *, logprobs: bool = False,
                  top_logprobs: int = 0, json_schema: str | None = None) -> SamplingParams:
    """The engine's sampling for a request: its fields, else the engine's defaults
    (with no repeat penalty, as OpenAI's API has none)."""
    base = SamplingParams()

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return SamplingParams(
        temperature=pick(fields.temperature, base.temperature),
        top_p=pick(fields.top_p, base.top_p), top_k=pick(fields.top_k, base.top_k),
        min_p=pick(fields.min_p, base.min_p), repeat_penalty=pick(fields.repeat_penalty, 1.0),
        presence_penalty=pick(fields.presence_penalty, 0.0),
        frequency_penalty=pick(fields.frequency_penalty, 0.0),
        seed=fields.seed, max_tokens=max_tokens, stop=fields.stops(),
        ignore_eos=fields.ignore_eos, logprobs=logprobs, top_logprobs=top_logprobs,
        json_schema=json_schema)


def reply_tokens(requested: int | None, cap: int, param: str = "max_tokens") -> int:
    """The reply's token limit: the request's (at most `cap`), else `cap`."""
    if requested is None:
        return cap
    if requested > cap:
        raise ApiError(400, f"{param} is {requested}; this server allows at most {cap}.",
                       param=param, code="invalid_value")
    return requested


def _call_schema(tool: Tool) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "properties": {"name": {"const": tool.function.name},
                           "arguments": tool.function.parameters},
            "required": ["name", "arguments"]}


def _forced_schema(request: ChatCompletionRequest) -> str | None:
    """The JSON schema a required tool choice constrains the reply to, or None."""
    tools = request.tools or []
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        chosen = [t for t in tools if t.function.name == choice.function.name]
        if not chosen:
            raise ApiError(400, f"tool_choice names {choice.function.name!r}, which is not "
                           "one of the request's tools.", param="tool_choice")
        return json.dumps(_call_schema(chosen[0]))
    if choice == "required":
        return json.dumps({"anyOf": [_call_schema(t) for t in tools]})
    return None


def _response_schema(request: ChatCompletionRequest) -> str | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return JSON_OBJECT_SCHEMA
    if fmt.json_schema is None or not fmt.json_schema.json_schema:
        raise ApiError(400, "response_format json_schema needs a schema.",
                       param="response_format.json_schema")
    return json.dumps(fmt.json_schema.json_schema)


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _native_message(message: ChatMessage) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role, "content": message.text()}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.function.name, "arguments": _arguments(c.function.arguments)}}
            for c in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def _generic_message(message: ChatMessage) -> dict[str, Any]:
    """A message for a template without tool support (llama-server's generic format)."""
    if message.role == "tool":
        return {"role": "user", "content": json.dumps(
            {"tool_response": {"tool_call_id": message.tool_call_id or "",
                               "content": message.text()}}, ensure_ascii=False)}
    out = _native_message(message)
    calls = out.pop("tool_calls", None)
    if calls:
        body = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                for c in calls]
        out["content"] = json.dumps(body[0] if len(body) == 1 else body, ensure_ascii=False)
    return out


def _tools_note(tools: list[Tool]) -> str:
    listed = json.dumps([t.model_dump(mode="json") for t in tools], ensure_ascii=False)
    return ("You can call these tools: " + listed + "\nTo call a tool, reply with only a JSON "
            'object {"name": <tool name>, "arguments": <its arguments>}.')


def template_knows_tools(source: str) -> bool:
    return "tools" in source and "tool_calls" in source


def chat_generation(request: ChatCompletionRequest, template_source: str, max_tokens: int,
                    ) -> tuple[GenerationRequest, ToolPlan]:
    """The engine request for a chat completion, and how to read tool calls back."""
    tools = request.tools or []
    use_tools = bool(tools) and request.tool_choice != "none"
    forced = _forced_schema(request) if use_tools else None
    schema = forced or _response_schema(request)
    native = template_knows_tools(template_source)
    if native or not any(m.role == "tool" or m.tool_calls for m in request.messages):
        messages = [_native_message(m) for m in request.messages]
    else:
        messages = [_generic_message(m) for m in request.messages]
    template_tools: tuple[dict[str, Any], ...] = ()
    if use_tools and native:
        template_tools = tuple(t.model_dump(mode="json", exclude_none=True) for t in tools)
    elif use_tools:
        note = _tools_note(tools)
        if messages and messages[0]["role"] == "system":
            messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}
        else:
            messages.insert(0, {"role": "system", "content": note})
    sampling = sampling_from(request, max_tokens, logprobs=request.logprobs,
                             top_logprobs=request.top_logprobs or 0, json_schema=schema)
    plan = ToolPlan(tuple(t.function.name for t in tools), parse=use_tools)
    return GenerationRequest(raw_messages=tuple(messages), tools=template_tools,
                             sampling=sampling), plan


def prompt_text(request: GenerationRequest) -> str:
    """The text a prompt is made of (to bound its length before tokenizing)."""
    parts = [request.prompt or ""]
    parts += [str(m.get("content") or "") for m in request.raw_messages]
    parts += [m.content for m in request.messages]
    if request.tools:
        parts.append(json.dumps(list(request.tools)))
    return "".join(parts)
