"""Our engine-host MLX stream vs raw `mlx_lm.stream_generate`: same model, greedy settings.

The model is the MLX copy of the default model (made by the converter if it is
missing). Prints median decode tok/s and TTFT of both (alternating runs) and
the ratios. Targets: decode ratio >= 0.97, TTFT ratio <= 1.10.
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
from macllm_app.core.library.mlx_copies import ensure_mlx_copy
from macllm_app.core.types import GenerationRequest, LoadConfig, SamplingParams, TextDelta

PROMPT = (
    "<|im_start|>user\nWrite a long story about a lighthouse keeper and the sea, "
    "with many details.<|im_end|>\n<|im_start|>assistant\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=None, help="an MLX folder (default: the default "
                        "model's MLX copy)")
    args = parser.parse_args()

    from mlx_lm import load, stream_generate

    folder = Path(args.model) if args.model else ensure_mlx_copy(default_model_path())
    model, tokenizer = load(str(folder))
    host = EngineHost()
    host.load(LoadConfig(model_path=str(folder), engine="mlx", n_ctx=2048))
    sampling = SamplingParams.greedy(max_tokens=args.tokens)
    prompt_ids = tokenizer.encode(PROMPT, add_special_tokens=False)

    def ours() -> Iterator[int]:
        request = GenerationRequest(prompt_tokens=tuple(prompt_ids), sampling=sampling,
                                    reuse_cache=False)
        for event in host.stream(request):
            if isinstance(event, TextDelta) and event.token_ids:
                yield len(event.token_ids)

    def theirs() -> Iterator[int]:
        for _ in stream_generate(model, tokenizer, prompt_ids, max_tokens=args.tokens):
            yield 1

    our_runs, raw_runs = alternate(ours, theirs, args.runs)
    host.shutdown()

    print(f"model {folder.name} (MLX), greedy, {args.tokens} tokens, "
          f"{len(prompt_ids)} prompt tokens, median of {args.runs}")
    report_overhead(our_runs, raw_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
