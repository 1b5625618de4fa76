"""Greedy requests for engine tests, and collecting an engine's event stream
(in-process or through the host)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from macllm_app.core.engines.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    Message,
    SamplingParams,
    TextDelta,
)


def greedy_request(messages: tuple[Message, ...], max_tokens: int, reuse_cache: bool = True,
                   **sampling_changes: Any) -> GenerationRequest:
    """A chat request with greedy sampling; `sampling_changes` (e.g. stop=...) on top."""
    sampling = replace(SamplingParams.greedy(max_tokens=max_tokens), **sampling_changes)
    return GenerationRequest(messages=messages, sampling=sampling, reuse_cache=reuse_cache)


def collect_events(events: Iterable[Event]) -> tuple[str, list[int], GenerationStats]:
    """The text, token ids and stats of a stream, checking its shape: text deltas,
    then exactly one Finished, then nothing."""
    texts: list[str] = []
    ids: list[int] = []
    stats: GenerationStats | None = None
    for event in events:
        assert stats is None, "nothing may follow Finished"
        if isinstance(event, TextDelta):
            assert isinstance(event.text, str)
            texts.append(event.text)
            ids.extend(event.token_ids)
        else:
            assert isinstance(event, Finished)
            stats = event.stats
    assert stats is not None
    return "".join(texts), ids, stats
