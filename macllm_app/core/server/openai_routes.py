"""The OpenAI-compatible endpoints: models, chat and text completions, embeddings, health."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from macllm_app.core.server import responses_openai as shape
from macllm_app.core.server.errors import ApiError
from macllm_app.core.server.generation import Generation
from macllm_app.core.server.model_pool import Lease
from macllm_app.core.server.prompting import (
    ToolPlan,
    chat_generation,
    reply_tokens,
    sampling_from,
)
from macllm_app.core.server.schemas_openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)
from macllm_app.core.server.state import (
    RequestNotes,
    check_prompt,
    finish_generation,
    notes_of,
    read_body,
    state_of,
)
from macllm_app.core.server.streaming import ClientGone, EventStream
from macllm_app.core.server.tool_calls import ParsedCall, parse_tool_calls
from macllm_app.core.types import GenerationRequest, TextDelta

routes = web.RouteTableDef()


@routes.get("/health")
@routes.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    loaded = state_of(request).pool.loaded
    return web.json_response({"status": "ok", "model": loaded.id if loaded else None})


def _model_object(model_id: str, name: str, loaded: bool, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "macllm",
            "name": name, "loaded": loaded}


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    pool = state_of(request).pool
    models = await asyncio.to_thread(pool.directory.models)
    loaded = pool.loaded
    created = shape.now()
    data = [_model_object(m.id, m.name, loaded is not None and loaded.id == m.id, created)
            for m in models]
    return web.json_response({"object": "list", "data": data})


@routes.get("/v1/models/{model_id:.+}")
async def get_model(request: web.Request) -> web.Response:
    pool = state_of(request).pool
    model = await pool.resolve(request.match_info["model_id"])
    loaded = pool.loaded
    return web.json_response(_model_object(model.id, model.name,
                                           loaded is not None and loaded.id == model.id,
                                           shape.now()))


async def _collect(lease: Lease, generation: Generation) -> tuple[str, list[TextDelta]]:
    try:
        return await generation.collect()
    except Exception as exc:
        raise lease.pool.failed(exc) from None


def _read_calls(text: str, plan: ToolPlan) -> tuple[str | None, list[ParsedCall]]:
    if not plan.parse:
        return text, []
    content, calls = parse_tool_calls(text, plan.names)
    return (content or None) if calls else content, calls


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    config = state.config
    body = await read_body(request, ChatCompletionRequest)
    limit_param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    max_tokens = reply_tokens(body.reply_limit(), config.max_tokens_cap, limit_param)
    notes = notes_of(request)
    async with state.pool.lease(body.model) as lease:
        notes.model = lease.model.id
        gen_request, plan = chat_generation(body, lease.template, max_tokens)
        await check_prompt(lease, gen_request, config.max_prompt_tokens, "messages")
        generation = lease.generate(gen_request)
        notes.generation = generation
        if body.stream:
            return await _stream_chat(request, body, lease, generation, plan, notes)
        text, deltas = await _collect(lease, generation)
        finish_generation(notes, generation)
        content, calls = _read_calls(text, plan)
        logprobs = shape.chat_logprobs(deltas) if body.logprobs else None
        return web.json_response(shape.chat_completion(
            shape.new_id("chatcmpl"), lease.model.id, content, calls, generation.stats,
            logprobs))


async def _stream_chat(request: web.Request, body: ChatCompletionRequest, lease: Lease,
                       generation: Generation, plan: ToolPlan,
                       notes: RequestNotes) -> web.StreamResponse:
    stream = EventStream(request, sse=True, timeout_s=state_of(request).config.client_timeout_s)
    cid, model = shape.new_id("chatcmpl"), lease.model.id
    held: list[TextDelta] = []  # with tools, the reply is read whole before it is sent

    async def opening() -> None:
        if not stream.started:
            await stream.send(shape.chat_chunk(cid, model, {"role": "assistant", "content": ""}))

    try:
        try:
            async for delta in generation.deltas():
                if plan.parse:
                    held.append(delta)
                    continue
                await opening()
                logprobs = shape.chat_logprobs([delta]) if body.logprobs else None
                await stream.send(shape.chat_chunk(cid, model, {"content": delta.text},
                                                   logprobs=logprobs))
        except ClientGone:
            raise
        except Exception as exc:
            error = lease.pool.failed(exc)
            if not stream.started:
                raise error from None
            await stream.send(error.body())
            return await stream.done()
        await opening()
        calls: list[ParsedCall] = []
        if plan.parse:
            content, calls = _read_calls("".join(d.text for d in held), plan)
            if calls:
                tool_calls = [call.to_openai(index=i) for i, call in enumerate(calls)]
                await stream.send(shape.chat_chunk(cid, model, {"tool_calls": tool_calls}))
            if content:
                await stream.send(shape.chat_chunk(
                    cid, model, {"content": content},
                    logprobs=shape.chat_logprobs(held) if body.logprobs else None))
        finish_generation(notes, generation)
        await stream.send(shape.chat_chunk(cid, model, {},
                                           shape.finish_reason(generation.stats, bool(calls))))
        if body.include_usage:
            await stream.send(shape.usage_chunk(cid, model, generation.stats))
        return await stream.done()
    except ClientGone:
        generation.cancel()
        return stream.response


def _completion_request(body: CompletionRequest, max_tokens: int) -> GenerationRequest:
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], list | str):
        if len(prompt) != 1:
            raise ApiError(400, "Send one prompt per request.", param="prompt")
        prompt = prompt[0]
    sampling = sampling_from(body, max_tokens, logprobs=body.logprobs is not None,
                             top_logprobs=body.logprobs or 0)
    if isinstance(prompt, str):
        return GenerationRequest(prompt=prompt, sampling=sampling)
    ids = [int(i) for i in prompt if isinstance(i, int)]
    if not ids:
        raise ApiError(400, "The prompt is empty.", param="prompt")
    return GenerationRequest(prompt_tokens=tuple(ids), sampling=sampling)


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    config = state.config
    body = await read_body(request, CompletionRequest)
    max_tokens = reply_tokens(body.max_tokens, config.max_tokens_cap)
    gen_request = _completion_request(body, max_tokens)
    notes = notes_of(request)
    async with state.pool.lease(body.model) as lease:
        notes.model = lease.model.id
        await check_prompt(lease, gen_request, config.max_prompt_tokens, "prompt")
        generation = lease.generate(gen_request)
        notes.generation = generation
        cid, model = shape.new_id("cmpl"), lease.model.id
        want_logprobs = body.logprobs is not None
        if not body.stream:
            text, deltas = await _collect(lease, generation)
            finish_generation(notes, generation)
            return web.json_response(shape.text_completion(
                cid, model, text, shape.finish_reason(generation.stats),
                shape.completion_logprobs(deltas) if want_logprobs else None,
                generation.stats))
        stream = EventStream(request, sse=True, timeout_s=config.client_timeout_s)
        offset = 0
        try:
            async for delta in generation.deltas():
                logprobs = shape.completion_logprobs([delta], offset) if want_logprobs else None
                offset += len(delta.text)
                await stream.send(shape.text_completion(cid, model, delta.text, None,
                                                        logprobs, None))
        except ClientGone:
            generation.cancel()
            return stream.response
        except Exception as exc:
            error = lease.pool.failed(exc)
            if not stream.started:
                raise error from None
            await stream.send(error.body())
            return await stream.done()
        finish_generation(notes, generation)
        try:
            await stream.send(shape.text_completion(
                cid, model, "", shape.finish_reason(generation.stats), None, None))
            if body.include_usage:
                await stream.send(shape.usage_chunk(cid, model, generation.stats,
                                                    "text_completion"))
            return await stream.done()
        except ClientGone:
            return stream.response


def _as_base64(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_body(request, EmbeddingRequest)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "input must be a string or a list of strings (token ids are not "
                       "supported).", param="input")
    strings = [str(t) for t in texts]
    notes = notes_of(request)
    cap = state.config.max_prompt_tokens
    async with state.pool.lease(body.model) as lease:
        notes.model = lease.model.id
        counts = [await lease.count_tokens(t) for t in strings]
        for i, count in enumerate(counts):
            if count > cap:
                raise ApiError(400, f"input[{i}] has {count} tokens; this server allows at "
                               f"most {cap}.", param="input", code="context_length_exceeded")
        vectors = await lease.embed(strings)
    notes.prompt_tokens = sum(counts)
    data = [{"object": "embedding", "index": i,
             "embedding": _as_base64(v) if body.encoding_format == "base64" else v}
            for i, v in enumerate(vectors)]
    return web.json_response({"object": "list", "data": data, "model": lease.model.id,
                              "usage": {"prompt_tokens": sum(counts),
                                        "total_tokens": sum(counts)}})
