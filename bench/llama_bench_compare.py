"""Our engine host vs llama.cpp's own `llama-bench`, same llama.cpp source and model.

Builds `llama-bench` from the llama-cpp-python source distribution we depend on
into a cache folder outside the repository (once), then alternates llama-bench
runs and our engine-host runs and prints decode (tg) and prefill (pp) ratios.
Targets: decode >= 0.95, prefill >= 0.95 (CPU); decode >= 0.90 on a GPU.

Our side is timed from outside, as the chat benchmark times it: decode tok/s over
the tokens after the first arriving piece; prefill tok/s = prompt tokens / TTFT.
Both sides do the same work: token ids in (`prompt_tokens`; `--text-prompt` sends
text instead, adding our tokenization, about 2 µs a token, to the TTFT), and the
decode run starts from a one-token prompt, because llama-bench's tg128 starts from
an empty context (each token of depth makes attention, and so decode, slower: 20
tokens of depth cost llama-bench itself about 2.5 %).

Each round runs llama-bench (`-r 3`, after its own warm-up) and our host (one
untimed run, then 3 timed runs, of each kind) one after the other, in an order
that alternates from round to round, and takes each side's median run. (One
llama-bench run, `-r 1`, is not enough: its first timed run is often slower than
the rest, on an H100 18.5 ms against a median of 8.6 ms for pp512.) The dev
machine's speed drifts by more than the margin being measured, so the verdict is
the median of the rounds' ratios, printed with their spread and the ratio of the
overall medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import FILLER, time_stream, verdict
from llama_tools import build_llama_tool

from macllm_app.core.default_model import default_model_path
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.types import (
    Finished,
    GenerationRequest,
    LoadConfig,
    SamplingParams,
    TextDelta,
)

DECODE_PROMPT = "Count"  # one token: decode starts at depth 0, as llama-bench's tg does


def build_llama_bench(jobs: int) -> Path:
    return build_llama_tool("llama-bench", jobs)


def run_llama_bench(binary: Path, model: str, threads: int, ngl: int, n_prompt: int,
                    n_gen: int, reps: int) -> tuple[float, float]:
    """Median tok/s of llama-bench's runs (after its own warm-up): (pp, tg)."""
    out = subprocess.run([str(binary), "-m", model, "-t", str(threads), "-ngl", str(ngl),
                          "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    results = json.loads(out)
    pp = next(r["samples_ts"] for r in results if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r["samples_ts"] for r in results if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return float(statistics.median(pp)), float(statistics.median(tg))


def prompt_of(host: EngineHost, n_tokens: int) -> str:
    text = FILLER * (n_tokens // 8)
    while host.count_tokens(text) < n_tokens:
        text += FILLER
    words = text.split(" ")
    while host.count_tokens(" ".join(words)) > n_tokens:
        words.pop()
    return " ".join(words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--llama-bench", type=Path, default=None, help="prebuilt binary")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ngl", type=int, default=0, help="GPU layers (99: all)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3,
                        help="runs of each side per round (llama-bench -r); medians")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--text-prompt", action="store_true",
                        help="send prompts as text (includes tokenization in the TTFT)")
    args = parser.parse_args()
    model = args.model or str(default_model_path())
    binary = args.llama_bench or build_llama_bench(args.jobs)

    host = EngineHost()
    info = host.load(LoadConfig(model_path=model, n_ctx=2048, n_threads=args.threads,
                                n_batch=512, n_gpu_layers=-1 if args.ngl else 0))
    long_prompt = prompt_of(host, 512)
    n_prompt = host.count_tokens(long_prompt)

    def pieces(request: GenerationRequest) -> Iterator[int]:
        for event in host.stream(request):
            if isinstance(event, TextDelta):
                yield len(event.token_ids)

    def request(prompt: str, sampling: SamplingParams) -> GenerationRequest:
        if args.text_prompt:
            return GenerationRequest(prompt=prompt, reuse_cache=False, sampling=sampling)
        return GenerationRequest(prompt_tokens=tuple(host.tokenize(prompt)), reuse_cache=False,
                                 sampling=sampling)

    if host.count_tokens(DECODE_PROMPT) != 1:
        raise SystemExit(f"{DECODE_PROMPT!r} is not one token for this model")
    decode_request = request(DECODE_PROMPT,
                             replace(SamplingParams.greedy(max_tokens=129), ignore_eos=True))
    prefill_request = request(long_prompt, SamplingParams.greedy(max_tokens=1))

    def decode_run() -> float:
        return time_stream(lambda: pieces(decode_request)).decode_tps

    engine_prompt_tps: list[float] = []

    def prefill_pieces() -> Iterator[int]:
        for event in host.stream(prefill_request):
            if isinstance(event, TextDelta):
                yield len(event.token_ids)
            elif isinstance(event, Finished):
                engine_prompt_tps.append(event.stats.prompt_tps)

    def prefill_run() -> float:
        return n_prompt / time_stream(prefill_pieces).ttft_s

    decode_run()
    prefill_run()

    sides: dict[str, tuple[list[float], list[float]]] = {"decode": ([], []),
                                                          "prefill": ([], [])}

    def run_ours() -> tuple[float, float]:
        # one untimed run of each kind first, as llama-bench warms up before its runs
        prefill_run()
        pp = statistics.median(prefill_run() for _ in range(args.reps))
        decode_run()
        return pp, statistics.median(decode_run() for _ in range(args.reps))

    def run_theirs() -> tuple[float, float]:
        return run_llama_bench(binary, model, args.threads, args.ngl, 512, 128, args.reps)

    for round_no in range(1, args.rounds + 1):
        if round_no % 2:  # the order alternates, so neither side always runs first
            (r_pp, r_tg), (o_pp, o_tg) = run_theirs(), run_ours()
        else:
            (o_pp, o_tg), (r_pp, r_tg) = run_ours(), run_theirs()
        line = f"  round {round_no:2d}:"
        for name, o, r in (("decode", o_tg, r_tg), ("prefill", o_pp, r_pp)):
            sides[name][0].append(o)
            sides[name][1].append(r)
            line += f"   {name} {o:8.1f} / {r:8.1f} = {o / r:.3f}"
        print(line, flush=True)
    host.shutdown()

    print(f"model {Path(model).name} on {info.device}, {args.threads} threads, ngl {args.ngl}, "
          f"prompts as {'text' if args.text_prompt else 'token ids'}, {args.rounds} rounds "
          f"(decode: tg128 from an empty context; prefill: pp{n_prompt})")
    print(f"  the engine's own prompt timer: {statistics.median(engine_prompt_tps):.1f} tok/s")
    target = 0.90 if args.ngl else 0.95
    for name, (our_tps, ref_tps) in sides.items():
        ratios = sorted(o / r for o, r in zip(our_tps, ref_tps, strict=True))
        o_med, r_med = statistics.median(our_tps), statistics.median(ref_tps)
        print(f"  {name}: ours {o_med:8.1f} tok/s, llama-bench {r_med:8.1f} tok/s; "
              f"ratio per round {ratios[0]:.3f} .. {ratios[-1]:.3f}, "
              f"ratio of the medians {o_med / r_med:.3f}")
        print(verdict(f"{name} ratio (ours/llama-bench, median of rounds)",
                      statistics.median(ratios), target if name == "decode" else 0.95,
                      higher_is_better=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
