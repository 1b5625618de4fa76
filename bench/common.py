"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# prose for prompts of a chosen length
FILLER = "The quick brown fox jumps over the lazy dog near the quiet river bank. "


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


def alternate(ours: Callable[[], Iterable[int]], theirs: Callable[[], Iterable[int]],
              runs: int) -> tuple[list[StreamTiming], list[StreamTiming]]:
    """Warm both streams up, then time them alternately `runs` times each."""
    time_stream(ours)
    time_stream(theirs)
    our_runs: list[StreamTiming] = []
    raw_runs: list[StreamTiming] = []
    for _ in range(runs):
        raw_runs.append(time_stream(theirs))
        our_runs.append(time_stream(ours))
    return our_runs, raw_runs


def report_overhead(our_runs: list[StreamTiming], raw_runs: list[StreamTiming]) -> None:
    """Print both sides' median decode speed and TTFT, and the ratios against the
    targets (decode >= 0.97, TTFT <= 1.10)."""
    o_dec, r_dec = median(r.decode_tps for r in our_runs), median(r.decode_tps for r in raw_runs)
    o_ttft, r_ttft = median(r.ttft_s for r in our_runs), median(r.ttft_s for r in raw_runs)
    print(f"  ours: {o_dec:7.1f} tok/s decode, TTFT {o_ttft * 1000:6.1f} ms, "
          f"tokens {our_runs[0].tokens}")
    print(f"  raw : {r_dec:7.1f} tok/s decode, TTFT {r_ttft * 1000:6.1f} ms, "
          f"tokens {raw_runs[0].tokens}")
    print(verdict("decode ratio (ours/raw)", o_dec / r_dec, 0.97, higher_is_better=True))
    print(verdict("TTFT ratio (ours/raw)", o_ttft / r_ttft, 1.10, higher_is_better=False))


def cpu_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy (Linux's /proc/stat; None elsewhere)."""
    try:
        with Path("/proc/stat").open() as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s(children: bool = True) -> float:
    """CPU seconds of this process and, with `children`, its ended children (jobs, tools)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    total = used.ru_utime + used.ru_stime
    if children:
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += ended.ru_utime + ended.ru_stime
    return total
