"""Engine tests' shared steps: greedy requests, collecting an event stream (in-process
or through the host), cancelling a hosted stream from another thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    LiveStats,
    Message,
    SamplingParams,
    TextDelta,
)


def greedy_request(messages: tuple[Message, ...], max_tokens: int, reuse_cache: bool = True,
                   **sampling_changes: Any) -> GenerationRequest:
    """A chat request with greedy sampling; `sampling_changes` (e.g. stop=...) on top."""
    sampling = replace(SamplingParams.greedy(max_tokens=max_tokens), **sampling_changes)
    return GenerationRequest(messages=messages, sampling=sampling, reuse_cache=reuse_cache)


def collect_events(events: Iterable[Event],
                   live: list[LiveStats] | None = None) -> tuple[str, list[int], GenerationStats]:
    """The text, token ids and stats of a stream, checking its shape: text deltas (and
    live stats, gathered in `live`, that count the tokens so far), then exactly one
    Finished, then nothing."""
    texts: list[str] = []
    ids: list[int] = []
    stats: GenerationStats | None = None
    for event in events:
        assert stats is None, "nothing may follow Finished"
        if isinstance(event, TextDelta):
            assert isinstance(event.text, str)
            texts.append(event.text)
            ids.extend(event.token_ids)
        elif isinstance(event, LiveStats):
            assert 0 < event.generated_tokens <= len(ids) + 1 and event.decode_tps > 0
            if live is not None:
                live.append(event)
        else:
            assert isinstance(event, Finished)
            stats = event.stats
    assert stats is not None
    return "".join(texts), ids, stats


def stream_and_cancel(host: EngineHost, request: GenerationRequest,
                      after_s: float) -> tuple[int, int, GenerationStats]:
    """Stream `request` through `host`, cancelling from another thread `after_s` seconds
    after the first text arrives: (tokens received, tokens received when the cancel was
    sent, the reply's stats)."""
    received = 0
    at_cancel: list[int] = []

    def cancel_soon() -> None:
        time.sleep(after_s)
        at_cancel.append(received)
        host.cancel()

    canceller = threading.Thread(target=cancel_soon)
    stats = None
    for event in host.stream(request):
        if isinstance(event, TextDelta):
            received += len(event.token_ids)
            if not canceller.is_alive() and not at_cancel:
                canceller.start()
        elif isinstance(event, Finished):
            stats = event.stats
    canceller.join()
    assert stats is not None and at_cancel
    return received, at_cancel[0], stats
