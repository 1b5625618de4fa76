"""Where a 512-token prefill's time goes, ours against llama-bench, on one machine.

Usage: prefill_probe.py MODEL THREADS NGL LLAMA_BENCH
Prints median milliseconds of: llama-bench pp512 (its own runs); a raw
llama_decode + synchronize on our engine's context; the same on a context made
with llama-bench's parameters (n_ctx 512, n_batch 2048), with and without a
thread pool; our engine in-process (token ids in, first token out); our engine
host from outside; and how many native log messages a prefill sends to Python.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp.llama_cpp as lc
from common import FILLER, time_stream

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.llamacpp import LlamaCppEngine
from macllm_app.core.engines.llamacpp_native import native_log, tokenize
from macllm_app.core.engines.llamacpp_threadpool import ThreadPool
from macllm_app.core.types import (
    Event,
    GenerationRequest,
    LoadConfig,
    SamplingParams,
    TextDelta,
)

RUNS = 10


def median_ms(run: Callable[[], float]) -> str:
    run()
    return f"{statistics.median(run() for _ in range(RUNS)) * 1000:8.2f} ms"


def first_piece_s(events: Callable[[], Iterable[Event]]) -> Callable[[], float]:
    """A run that times a stream from the call to its first text (its TTFT)."""
    def run() -> float:
        return time_stream(
            lambda: (1 for event in events() if isinstance(event, TextDelta))).ttft_s

    return run


def raw_prefill(ctx: Any, memory: Any, tokens: list[int]) -> Callable[[], float]:
    array = (lc.llama_token * len(tokens))(*tokens)

    def run() -> float:
        lc.llama_memory_clear(memory, False)
        t0 = time.perf_counter()
        lc.llama_decode(ctx, lc.llama_batch_get_one(array, len(tokens)))
        lc.llama_synchronize(ctx)
        return time.perf_counter() - t0

    return run


def bench_like_context(model: Any, threads: int) -> Any:
    cparams = lc.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = 512, 2048, 512
    cparams.n_threads = cparams.n_threads_batch = threads
    return lc.llama_init_from_model(model, cparams)


def main() -> None:
    model_path, threads, ngl, binary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    out = subprocess.run([binary, "-m", model_path, "-t", str(threads), "-ngl", str(ngl),
                          "-p", "512", "-n", "0", "-r", str(RUNS), "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    samples = json.loads(out)[0]["samples_ns"]
    print(f"threads {threads}, ngl {ngl}")
    print(f"  llama-bench pp512 runs: first {samples[0] / 1e6:.2f} ms, "
          f"median {statistics.median(samples) / 1e6:8.2f} ms")

    config = LoadConfig(model_path=model_path, n_ctx=2048, n_threads=threads, n_batch=512,
                        n_gpu_layers=-1 if ngl else 0)
    engine = LlamaCppEngine()
    engine.load(config, lambda f, m: None)
    words = (FILLER * 60).split(" ")
    tokens = tokenize(engine._vocab, " ".join(words), add_special=False)[:512]
    ours = raw_prefill(engine._ctx, engine._memory, tokens)
    print(f"  raw decode, our context:          {median_ms(ours)}")

    ctx = bench_like_context(engine._model, threads)
    memory = lc.llama_get_memory(ctx)
    print(f"  raw decode, llama-bench's params: {median_ms(raw_prefill(ctx, memory, tokens))}")
    pool = ThreadPool.attach(ctx, threads)
    print(f"  same, with a thread pool ({pool is not None}):  "
          f"{median_ms(raw_prefill(ctx, memory, tokens))}")
    if pool is not None:
        pool.free(ctx)
    lc.llama_free(ctx)

    request = GenerationRequest(prompt_tokens=tuple(tokens), reuse_cache=False,
                                sampling=SamplingParams.greedy(max_tokens=1))

    logged = [0]
    original = native_log._on_log

    def counting(level: int, text: bytes | None, user_data: Any) -> None:
        logged[0] += 1
        original(level, text, user_data)

    native_log._callback = lc.llama_log_callback(counting)
    native_log.install()
    in_process = first_piece_s(lambda: engine.stream(request, lambda: False))
    print(f"  engine in-process TTFT:           {median_ms(in_process)}"
          f"   ({logged[0] / (RUNS + 1):.1f} log messages a prefill)")
    engine.unload()

    host = EngineHost()
    host.load(config)
    hosted = first_piece_s(lambda: host.stream(request))
    print(f"  engine host TTFT:                 {median_ms(hosted)}")
    host.shutdown()


if __name__ == "__main__":
    main()
