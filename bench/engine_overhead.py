"""Our engine-host stream vs raw llama_cpp.Llama: same model, threads, greedy settings.

Prints median decode tok/s and TTFT of both (alternating runs) and the ratios.
Targets: decode ratio >= 0.97, TTFT ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import alternate, report_overhead

from macllm_app.core.default_model import default_model_path
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.types import (
    GenerationRequest,
    LoadConfig,
    SamplingParams,
    TextDelta,
)

PROMPT = (
    "<|im_start|>user\nWrite a long story about a lighthouse keeper and the sea, "
    "with many details.<|im_end|>\n<|im_start|>assistant\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    import llama_cpp

    model = args.model or str(default_model_path())
    raw = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=args.threads,
                          n_threads_batch=args.threads, n_batch=512, verbose=False,
                          flash_attn=True)  # llama.cpp's default, which our engine keeps
    host = EngineHost()
    host.load(LoadConfig(model_path=model, n_ctx=2048, n_threads=args.threads, n_batch=512))
    sampling = SamplingParams.greedy(max_tokens=args.tokens)

    def ours() -> Iterator[int]:
        request = GenerationRequest(prompt=PROMPT, sampling=sampling, reuse_cache=False)
        for event in host.stream(request):
            if isinstance(event, TextDelta):
                yield len(event.token_ids)

    def theirs() -> Iterator[int]:
        raw.reset()
        for _ in raw.create_completion(PROMPT, max_tokens=args.tokens, temperature=0.0,
                                       top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                                       stream=True):
            yield 1

    our_runs, raw_runs = alternate(ours, theirs, args.runs)
    host.shutdown()

    print(f"model {Path(model).name}, {args.threads} threads, greedy, {args.tokens} tokens, "
          f"median of {args.runs}")
    report_overhead(our_runs, raw_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
