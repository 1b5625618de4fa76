"""`macllm bench`: prompt and decode speed of a model on an engine, as text or JSON."""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, replace

from macllm_app.cli.chat import stream_reply
from macllm_app.cli.model_choice import load_config_from_args, load_from_args
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.types import (
    GenerationRequest,
    GenerationStats,
    Message,
    SamplingParams,
)

BENCH_PROMPT = (
    "Write a detailed, step by step explanation of how a bicycle works, covering the frame, "
    "the wheels, the drivetrain, the brakes and the physics of balance."
)


def run(args: argparse.Namespace) -> int:
    config = load_config_from_args(args)
    sampling = replace(SamplingParams.greedy(max_tokens=args.tokens), ignore_eos=True)
    runs: list[GenerationStats] = []
    with EngineHost() as host:
        info = load_from_args(host, config, args)
        request = GenerationRequest(messages=(Message("user", BENCH_PROMPT),), sampling=sampling,
                                    reuse_cache=False)
        stream_reply(host, request, None)  # warm-up
        for _ in range(max(1, args.repeat)):
            _, stats = stream_reply(host, request, None)
            runs.append(stats)
    result = {
        "model": info.name,
        "path": info.path,
        "engine": config.engine,
        "device": info.device,
        "n_ctx": info.n_ctx,
        "runs": len(runs),
        "prompt_tokens": runs[0].prompt_tokens,
        "generated_tokens": statistics.median(s.generated_tokens for s in runs),
        "prompt_tps": statistics.median(s.prompt_tps for s in runs),
        "decode_tps": statistics.median(s.decode_tps for s in runs),
        "ttft_ms": statistics.median(s.ttft_s for s in runs) * 1000,
        "peak_rss_mb": max(s.peak_rss_bytes for s in runs) / 2**20,
        "engine_peak_mb": max(s.engine_peak_bytes for s in runs) / 2**20,
        "all": [asdict(s) for s in runs],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {result['engine']} ({result['device']})")
        print(f"  prompt: {result['prompt_tokens']} tokens at {result['prompt_tps']:.1f} tok/s")
        print(f"  decode: {result['generated_tokens']} tokens at {result['decode_tps']:.1f} tok/s")
        print(f"  TTFT:   {result['ttft_ms']:.0f} ms   peak RSS {result['peak_rss_mb']:.0f} MB")
    return 0
