"""The OpenAI API's response bodies, from the engine's text, stats and log-probabilities."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from macllm_app.core.server.tool_calls import ParsedCall
from macllm_app.core.types import GenerationStats, TextDelta, TokenLogprob


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def finish_reason(stats: GenerationStats | None, tool_calls: bool = False) -> str:
    if tool_calls:
        return "tool_calls"
    if stats is not None and stats.finish_reason == "length":
        return "length"
    return "stop"


def usage(stats: GenerationStats | None) -> dict[str, Any]:
    prompt = stats.prompt_tokens if stats else 0
    completion = stats.generated_tokens if stats else 0
    body: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion}
    if stats is not None and stats.cached_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": stats.cached_tokens}
    return body


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_logprobs(deltas: Sequence[TextDelta]) -> dict[str, Any]:
    """`choices[].logprobs` of a chat completion: one entry per generated token."""
    content = [{**_token(lp.text, lp.logprob),
                "top_logprobs": [_token(text, value) for text, value in lp.top]}
               for delta in deltas for lp in delta.logprobs]
    return {"content": content}


def completion_logprobs(deltas: Sequence[TextDelta], offset: int = 0) -> dict[str, Any]:
    """`choices[].logprobs` of a text completion (the legacy shape)."""
    items: list[TokenLogprob] = [lp for delta in deltas for lp in delta.logprobs]
    offsets: list[int] = []
    position = offset
    for lp in items:
        offsets.append(position)
        position += len(lp.text)
    return {"tokens": [lp.text for lp in items],
            "token_logprobs": [lp.logprob for lp in items],
            "top_logprobs": [dict(lp.top) for lp in items],
            "text_offset": offsets}


def chat_completion(completion_id: str, model: str, text: str | None,
                    calls: Sequence[ParsedCall], stats: GenerationStats | None,
                    logprobs: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [call.to_openai() for call in calls]
    return {"id": completion_id, "object": "chat.completion", "created": now(), "model": model,
            "system_fingerprint": "macllm",
            "choices": [{"index": 0, "message": message, "logprobs": logprobs,
                         "finish_reason": finish_reason(stats, bool(calls))}],
            "usage": usage(stats)}


def chat_chunk(completion_id: str, model: str, delta: dict[str, Any],
               finish: str | None = None, logprobs: dict[str, Any] | None = None,
               ) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": now(),
            "model": model, "system_fingerprint": "macllm",
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                         "finish_reason": finish}]}


def usage_chunk(completion_id: str, model: str, stats: GenerationStats | None,
                obj: str = "chat.completion.chunk") -> dict[str, Any]:
    return {"id": completion_id, "object": obj, "created": now(), "model": model,
            "choices": [], "usage": usage(stats)}


def text_completion(completion_id: str, model: str, text: str, finish: str | None,
                    logprobs: dict[str, Any] | None, stats: GenerationStats | None,
                    ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id, "object": "text_completion", "created": now(), "model": model,
        "system_fingerprint": "macllm",
        "choices": [{"index": 0, "text": text, "logprobs": logprobs,
                     "finish_reason": finish}]}
    if stats is not None:
        body["usage"] = usage(stats)
    return body
