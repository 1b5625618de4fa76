"""The Ollama-compatible endpoints: /api/chat, /api/generate, /api/tags, /api/show,
/api/ps, /api/version. Replies stream as JSON lines unless `"stream": false`.

There is deliberately no model management here: no pull, push, create, copy or
delete endpoint (they answer 404), and a `model` is only ever a library name.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from macllm_app.core.server.errors import from_validation
from macllm_app.core.server.generation import Generation
from macllm_app.core.server.model_pool import Lease
from macllm_app.core.server.models import ServedModel
from macllm_app.core.server.prompting import (
    JSON_OBJECT_SCHEMA,
    chat_generation,
    reply_tokens,
    sampling_from,
)
from macllm_app.core.server.schemas_ollama import (
    Generating,
    OllamaChatRequest,
    OllamaGenerateRequest,
    OllamaShowRequest,
    Options,
)
from macllm_app.core.server.schemas_openai import ChatCompletionRequest
from macllm_app.core.server.state import (
    RequestNotes,
    check_prompt,
    finish_generation,
    notes_of,
    read_body,
    state_of,
)
from macllm_app.core.server.streaming import ClientGone, EventStream
from macllm_app.core.server.tool_calls import parse_tool_calls
from macllm_app.core.types import GenerationRequest, GenerationStats, Message

#: The Ollama API version we answer as (clients check it before using newer fields).
OLLAMA_VERSION = "0.9.0"
NS = 1_000_000_000

routes = web.RouteTableDef()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@routes.get("/")
async def root(_request: web.Request) -> web.Response:
    return web.Response(text="Ollama is running")


@routes.get("/api/version")
async def version(_request: web.Request) -> web.Response:
    return web.json_response({"version": OLLAMA_VERSION})


def _details(model: ServedModel) -> dict[str, Any]:
    row = model.row
    n_params = int(row.get("n_params") or 0)
    return {"parent_model": "", "format": row.get("format", ""),
            "family": row.get("architecture", ""),
            "families": [row.get("architecture", "")],
            "parameter_size": f"{n_params / 1e6:.0f}M" if n_params < 1e9
            else f"{n_params / 1e9:.1f}B",
            "quantization_level": row.get("quantization") or ""}


def _tag(model: ServedModel) -> dict[str, Any]:
    return {"name": model.id, "model": model.id, "modified_at": _now(),
            "size": int(model.row.get("size_bytes") or 0), "digest": "",
            "details": _details(model)}


@routes.get("/api/tags")
async def tags(request: web.Request) -> web.Response:
    models = await asyncio.to_thread(state_of(request).pool.directory.models)
    return web.json_response({"models": [_tag(m) for m in models]})


@routes.get("/api/ps")
async def running(request: web.Request) -> web.Response:
    loaded = state_of(request).pool.loaded
    models = [{**_tag(loaded), "size_vram": 0, "expires_at": ""}] if loaded else []
    return web.json_response({"models": models})


@routes.post("/api/show")
async def show(request: web.Request) -> web.Response:
    body = await read_body(request, OllamaShowRequest)
    model = await state_of(request).pool.resolve(body.model or body.name)
    row = model.row
    capabilities = ["completion"] + (["embedding"] if model.engine == "llama.cpp" else [])
    return web.json_response({
        "modelfile": "", "parameters": "", "template": "", "license": "",
        "details": _details(model), "capabilities": capabilities,
        "model_info": {"general.architecture": row.get("architecture", ""),
                       "general.parameter_count": row.get("n_params", 0),
                       "general.name": model.name,
                       "context_length": row.get("context_length", 0)},
        "modified_at": _now()})


def _schema(fmt: str | dict[str, Any] | None) -> str | None:
    if fmt == "json":
        return JSON_OBJECT_SCHEMA
    if isinstance(fmt, dict):
        return json.dumps(fmt)
    return None


def _reply_tokens(options: Options, cap: int) -> int:
    limit = options.num_predict
    return reply_tokens(None if limit is None or limit < 0 else limit, cap,
                        "options.num_predict")


def _sampling_fields(body: Generating) -> dict[str, Any]:
    return {k: v for k, v in body.options.model_dump().items()
            if k != "num_predict" and v is not None}


def _as_openai(body: OllamaChatRequest) -> ChatCompletionRequest:
    messages: list[dict[str, Any]] = []
    for m in body.messages:
        message: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function",
                 "function": {"name": c.function.name,
                              "arguments": json.dumps(c.function.arguments)}}
                for i, c in enumerate(m.tool_calls)]
        if m.role == "tool" and m.tool_name:
            message["name"] = m.tool_name
        messages.append(message)
    fields: dict[str, Any] = {"messages": messages, **_sampling_fields(body)}
    if body.tools:
        fields["tools"] = body.tools
    schema = _schema(body.format)
    if schema is not None:
        fields["response_format"] = {"type": "json_schema",
                                     "json_schema": {"schema": json.loads(schema)}}
    try:
        return ChatCompletionRequest.model_validate(fields)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _final(model: str, stats: GenerationStats | None) -> dict[str, Any]:
    stats = stats or GenerationStats()
    eval_s = stats.generated_tokens / stats.decode_tps if stats.decode_tps else 0.0
    return {"model": model, "created_at": _now(), "done": True,
            "done_reason": "length" if stats.finish_reason == "length" else "stop",
            "total_duration": int((stats.ttft_s + eval_s) * NS), "load_duration": 0,
            "prompt_eval_count": stats.prompt_tokens,
            "prompt_eval_duration": int(stats.ttft_s * NS),
            "eval_count": stats.generated_tokens, "eval_duration": int(eval_s * NS)}


async def _reply(request: web.Request, lease: Lease, generation: Generation, stream: bool,
                 notes: RequestNotes, *, chat: bool, tool_names: tuple[str, ...]
                 ) -> web.StreamResponse:
    model = lease.model.id

    def piece(text: str) -> dict[str, Any]:
        if chat:
            return {"model": model, "created_at": _now(),
                    "message": {"role": "assistant", "content": text}, "done": False}
        return {"model": model, "created_at": _now(), "response": text, "done": False}

    def last(text: str) -> dict[str, Any]:
        final = _final(model, generation.stats)
        if not chat:
            return {**final, "response": text}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_names:
            content, calls = parse_tool_calls(text, tool_names)
            if calls:
                message = {"role": "assistant", "content": content, "tool_calls": [
                    {"function": {"name": c.name, "arguments": json.loads(c.arguments)}}
                    for c in calls]}
        return {**final, "message": message}

    if not stream:
        try:
            text, _deltas = await generation.collect()
        except Exception as exc:
            raise lease.pool.failed(exc) from None
        finish_generation(notes, generation)
        return web.json_response(last(text))
    out = EventStream(request, sse=False, timeout_s=state_of(request).config.client_timeout_s)
    held: list[str] = []
    try:
        try:
            async for delta in generation.deltas():
                if tool_names:
                    held.append(delta.text)
                else:
                    await out.send(piece(delta.text))
        except ClientGone:
            raise
        except Exception as exc:
            error = lease.pool.failed(exc)
            if not out.started:
                raise error from None
            await out.send({"error": error.message})
            return await out.done()
        finish_generation(notes, generation)
        await out.send(last("".join(held)))
        return await out.done()
    except ClientGone:
        generation.cancel()
        return out.response


@routes.post("/api/chat")
async def chat(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    config = state.config
    body = await read_body(request, OllamaChatRequest)
    max_tokens = _reply_tokens(body.options, config.max_tokens_cap)
    openai_body = _as_openai(body)
    notes = notes_of(request)
    async with state.pool.lease(body.model) as lease:
        notes.model = lease.model.id
        if not body.messages:  # Ollama's way to load a model
            return web.json_response({"model": lease.model.id, "created_at": _now(),
                                      "message": {"role": "assistant", "content": ""},
                                      "done": True, "done_reason": "load"})
        gen_request, plan = chat_generation(openai_body, lease.template, max_tokens)
        await check_prompt(lease, gen_request, config.max_prompt_tokens, "messages")
        generation = lease.generate(gen_request)
        notes.generation = generation
        return await _reply(request, lease, generation, body.stream, notes, chat=True,
                            tool_names=plan.names if plan.parse else ())


@routes.post("/api/generate")
async def generate(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    config = state.config
    body = await read_body(request, OllamaGenerateRequest)
    max_tokens = _reply_tokens(body.options, config.max_tokens_cap)
    fields = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "-"}], **_sampling_fields(body)})
    sampling = sampling_from(fields, max_tokens, json_schema=_schema(body.format))
    if body.raw:
        gen_request = GenerationRequest(prompt=body.prompt, sampling=sampling)
    else:
        system = [Message("system", body.system)] if body.system else []
        gen_request = GenerationRequest(messages=(*system, Message("user", body.prompt)),
                                        sampling=sampling)
    notes = notes_of(request)
    async with state.pool.lease(body.model) as lease:
        notes.model = lease.model.id
        if not body.prompt:  # Ollama's way to load a model
            return web.json_response({"model": lease.model.id, "created_at": _now(),
                                      "response": "", "done": True, "done_reason": "load"})
        await check_prompt(lease, gen_request, config.max_prompt_tokens, "prompt")
        generation = lease.generate(gen_request)
        notes.generation = generation
        return await _reply(request, lease, generation, body.stream, notes, chat=False,
                            tool_names=())
