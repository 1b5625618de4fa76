"""What every handler shares: the config, the model pool, and per-request notes for the log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from macllm_app.core.server.config import ServerConfig
from macllm_app.core.server.errors import ApiError, from_validation, parse_json
from macllm_app.core.server.generation import Generation
from macllm_app.core.server.model_pool import Lease, ModelPool
from macllm_app.core.server.prompting import prompt_text
from macllm_app.core.types import GenerationRequest

Body = TypeVar("Body", bound=BaseModel)


@dataclass
class ServerState:
    config: ServerConfig
    pool: ModelPool


@dataclass
class RequestNotes:
    """What a handler learns about its request, for the request log."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    generation: Generation | None = None


STATE = web.AppKey("macllm_server_state", ServerState)
NOTES = web.RequestKey("macllm_notes", RequestNotes)


def state_of(request: web.Request) -> ServerState:
    return request.app[STATE]


def notes_of(request: web.Request) -> RequestNotes:
    notes = request.get(NOTES)
    if notes is None:
        notes = request[NOTES] = RequestNotes()
    return notes


async def read_body(request: web.Request, schema: type[Body]) -> Body:
    """The request's JSON body, validated; 408 for a client too slow to send it."""
    timeout = state_of(request).config.client_timeout_s
    try:
        raw = await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        raise ApiError(408, f"The request body took longer than {timeout:g} s to arrive.",
                       code="request_timeout") from None
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


async def check_prompt(lease: Lease, request: GenerationRequest, cap: int, param: str) -> None:
    """A 400 for a prompt longer than `cap` tokens (tokenized only when it might be)."""
    if request.prompt_tokens is not None:
        count = len(request.prompt_tokens)
    else:
        text = prompt_text(request)
        if len(text.encode("utf-8")) <= cap:  # a token is at least one byte
            return
        count = await lease.count_tokens(text)
    if count > cap:
        raise ApiError(400, f"The prompt has {count} tokens; this server allows at most {cap}.",
                       param=param, code="context_length_exceeded")


def finish_generation(notes: RequestNotes, generation: Generation) -> None:
    stats = generation.stats
    if stats is not None:
        notes.prompt_tokens = stats.prompt_tokens
        notes.completion_tokens = stats.generated_tokens
        notes.finish_reason = stats.finish_reason
