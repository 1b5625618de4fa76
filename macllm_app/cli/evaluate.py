"""`macllm eval MODEL [--base MODEL] [--quick] [--json]`: perplexity, and against a base
its KL divergence and same-top share, as llama-perplexity measures them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.cli.progress_line import ProgressLine


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", help="measure a model's quality (PPL, and KLD against a base)")
    p.add_argument("model", metavar="MODEL", help="library id, GGUF file or MLX folder")
    p.add_argument("--base", metavar="MODEL", help="the model it was made from")
    p.add_argument("--quick", action="store_true", help="two chunks of 512 tokens")
    p.add_argument("--text", metavar="FILE", help="evaluate on this text instead")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from macllm_app.core.errors import UserError
    from macllm_app.core.jobs import Job
    from macllm_app.core.library.model_choice import resolve_model
    from macllm_app.core.quantize.quality import EVALUATE_TARGET, EVALUATE_TITLE
    from macllm_app.core.quantize.results import record
    from macllm_app.core.units import human_size

    model = resolve_model(args.model)
    base = resolve_model(args.base) if args.base else None
    text = None
    if args.text:
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{args.text}: cannot read the text ({exc})") from None
    job = Job(EVALUATE_TARGET, (str(model), str(base) if base else None, text, args.quick,
                                args.threads), title=EVALUATE_TITLE)
    line = ProgressLine()
    try:
        with ctrl_c_stops() as should_stop:
            report = job.run(line, should_stop)
    finally:
        line.end()
    row = record(report, {"text": args.text or "resources/texts/evaluation.txt"})
    if args.json:
        print(json.dumps(row))
        return 0
    print(f"{model.name}: PPL {row['ppl']:.4f} over {row['tokens_scored']} tokens "
          f"({row['chunks']} chunks)")
    if base is not None:
        print(f"  against {base.name} (PPL {row['base_ppl']:.4f}): ΔPPL {row['delta_ppl']:+.4f}, "
              f"KLD mean {row['kld_mean']:.5f}, 99% {row['kld_p99']:.5f}, "
              f"same top {100 * row['same_top']:.1f} %")
    print(f"  decode {row['decode_tps']:.1f} tok/s, prefill {row['prefill_tps']:.1f} tok/s, "
          f"loaded {human_size(row['memory_bytes'])}")
    return 0
