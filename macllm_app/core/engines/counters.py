"""Timing and counts of one generation, shared by every engine's token loop."""

from __future__ import annotations

from macllm_app.core.platform.memory import peak_rss_bytes
from macllm_app.core.types import FinishReason, GenerationStats, LiveStats

#: How often an engine reports its speed while it generates (`LiveStats` events).
LIVE_STATS_INTERVAL_S = 0.25


class GenerationCounters:
    """Filled in by an engine while it generates; `stats()` turns them into the reply's stats.

    Times are `time.perf_counter()` readings: `started` when the request arrived,
    `prompt_started`/`prompt_done` around the prompt's evaluation, `first`/`last`
    when the first and the latest token came out.
    """

    __slots__ = ("finish", "first", "generated", "last", "prompt_done", "prompt_started",
                 "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.first = self.last = self.prompt_started = self.prompt_done = started
        self.generated = 0
        self.finish: FinishReason = "length"

    def decode_tps(self) -> float:
        span = self.last - self.first
        return (self.generated - 1) / span if self.generated > 1 and span > 0 else 0.0

    def live(self) -> LiveStats:
        """The speed so far, for a `LiveStats` event."""
        return LiveStats(generated_tokens=self.generated, decode_tps=self.decode_tps(),
                         ttft_s=self.first - self.started)

    def stats(self, *, prompt_tokens: int, cached_tokens: int, n_ctx: int, dropped: int,
              engine: str, model: str, engine_peak_bytes: int = 0) -> GenerationStats:
        prompt_s = self.prompt_done - self.prompt_started
        evaluated = prompt_tokens - cached_tokens
        return GenerationStats(
            prompt_tokens=prompt_tokens,
            cached_tokens=cached_tokens,
            generated_tokens=self.generated,
            ttft_s=(self.first - self.started) if self.generated else 0.0,
            prompt_tps=evaluated / prompt_s if prompt_s > 0 else 0.0,
            decode_tps=self.decode_tps(),
            peak_rss_bytes=peak_rss_bytes(),
            engine_peak_bytes=engine_peak_bytes,
            finish_reason=self.finish,
            n_ctx=n_ctx,
            dropped_messages=dropped,
            engine=engine,
            model=model,
        )
