"""Where the time goes: raw llama_decode vs our engine in-process vs the engine host,
for a 512-token prefill (TTFT) and for 128 greedy decode steps."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp.llama_cpp as lc
from common import FILLER

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.llamacpp import LlamaCppEngine
from macllm_app.core.engines.llamacpp_native import tokenize
from macllm_app.core.types import GenerationRequest, LoadConfig, SamplingParams, TextDelta


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.2f} ms"


def main() -> None:
    model, threads = sys.argv[1], int(sys.argv[2])
    config = LoadConfig(model_path=model, n_ctx=2048, n_threads=threads, n_batch=512)
    engine = LlamaCppEngine()
    engine.load(config, lambda f, m: None)
    words = (FILLER * 40).split(" ")
    while len(tokenize(engine._vocab, " ".join(words), add_special=False)) > 512:
        words = words[:-4]
    prompt = " ".join(words)
    tokens = tokenize(engine._vocab, prompt, add_special=False)
    request = GenerationRequest(prompt=prompt, reuse_cache=False,
                                sampling=SamplingParams.greedy(max_tokens=1))
    raw, tok, inproc = [], [], []
    for _ in range(8):
        t0 = time.perf_counter()
        tokenize(engine._vocab, prompt, add_special=False)
        tok.append(time.perf_counter() - t0)
        lc.llama_memory_clear(engine._memory, False)
        engine._cached.clear()
        array = (lc.llama_token * len(tokens))(*tokens)
        t0 = time.perf_counter()
        lc.llama_decode(engine._ctx, lc.llama_batch_get_one(array, len(tokens)))
        lc.llama_synchronize(engine._ctx)
        raw.append(time.perf_counter() - t0)
        lc.llama_memory_clear(engine._memory, False)
        engine._cached.clear()
        t0 = time.perf_counter()
        events = engine.stream(request, lambda: False)
        next(events)
        inproc.append(time.perf_counter() - t0)
        for _ in events:
            pass
    n = len(tokenize(engine._vocab, prompt, add_special=False))
    decode_raw, decode_inproc = [], []
    steps = 128
    ids_request = GenerationRequest(prompt_tokens=tuple(tokens[:16]), reuse_cache=False,
                                    sampling=SamplingParams.greedy(max_tokens=steps + 1))
    one = (lc.llama_token * 1)()
    for _ in range(5):
        lc.llama_memory_clear(engine._memory, False)
        engine._cached.clear()
        start = (lc.llama_token * 16)(*tokens[:16])
        lc.llama_decode(engine._ctx, lc.llama_batch_get_one(start, 16))
        lc.llama_synchronize(engine._ctx)
        t0 = time.perf_counter()
        for i in range(steps):
            one[0] = (tokens[i % len(tokens)])
            lc.llama_decode(engine._ctx, lc.llama_batch_get_one(one, 1))
            lc.llama_synchronize(engine._ctx)
        decode_raw.append(steps / (time.perf_counter() - t0))
        lc.llama_memory_clear(engine._memory, False)
        engine._cached.clear()
        stamps = [time.perf_counter() for _ in engine.stream(ids_request, lambda: False)]
        decode_inproc.append((len(stamps) - 3) / (stamps[-2] - stamps[0]))
    engine.unload()
    host = EngineHost()
    host.load(config)
    hosted, decode_hosted = [], []
    for _ in range(5):
        arrivals = []
        for event in host.stream(ids_request):
            if isinstance(event, TextDelta):
                arrivals.append((time.perf_counter(), len(event.token_ids)))
        tokens_after_first = sum(count for _, count in arrivals[1:])
        decode_hosted.append(tokens_after_first / (arrivals[-1][0] - arrivals[0][0]))
    for _ in range(8):
        t0 = time.perf_counter()
        stream = host.stream(request)
        next(stream)
        hosted.append(time.perf_counter() - t0)
        for _ in stream:
            pass
    host.shutdown()
    print(f"prompt {n} tokens")
    print(f"  tokenize:                 {ms(tok)}")
    print(f"  raw llama_decode+sync:    {ms(raw)}")
    print(f"  engine in-process TTFT:   {ms(inproc)}")
    print(f"  engine host TTFT:         {ms(hosted)}")
    print(f"decode, {steps} steps (tok/s, median)")
    print(f"  raw llama_decode+sync:    {statistics.median(decode_raw):8.1f}")
    print(f"  engine in-process:        {statistics.median(decode_inproc):8.1f}")
    print(f"  engine host:              {statistics.median(decode_hosted):8.1f}")


if __name__ == "__main__":
    main()
