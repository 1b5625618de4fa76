"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamTiming:
    ttft_s: float
    decode_tps: float
    tokens: int


def time_stream(start: Callable[[], Iterable[int]]) -> StreamTiming:
    """Time a stream from the outside. `start()` returns an iterable of token counts
    per arriving piece; TTFT runs from the call to the first piece, decode speed
    over the tokens after the first piece."""
    t0 = time.perf_counter()
    first_at = last_at = 0.0
    tokens = first_tokens = 0
    for count in start():
        now = time.perf_counter()
        if tokens == 0:
            first_at, first_tokens = now, count
        tokens += count
        last_at = now
    decode_time = last_at - first_at
    decode_tokens = tokens - first_tokens
    return StreamTiming(
        ttft_s=first_at - t0,
        decode_tps=decode_tokens / decode_time if decode_time > 0 else 0.0,
        tokens=tokens,
    )


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def verdict(name: str, value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return f"{name}: {value:.3f} (target {sign} {target}) {'PASS' if ok else 'MISS'}"
