"""`macllm quantize SRC --type Q4_K_M -o OUT`: llama.cpp quantization, with a progress
line; Ctrl+C cancels (nothing is left behind)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.cli.progress_line import ProgressLine
from macllm_app.core.errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("quantize", help="quantize a model with llama.cpp's quantizer")
    p.add_argument("src", metavar="SRC", help="an F32/F16/BF16 GGUF file or an MLX llama folder")
    p.add_argument("--type", required=True, metavar="TYPE",
                   help="Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K, IQ4_XS, ... (see --list)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.gguf",
                   help="the new GGUF file (must not exist)")
    p.add_argument("--imatrix", metavar="FILE", help="an importance matrix (imatrix.gguf or .dat)")
    p.add_argument("--threads", type=int, default=0, help="threads (default: llama.cpp's choice)")
    p.add_argument("--output-tensor-type", metavar="TYPE", help="type for output.weight")
    p.add_argument("--token-embedding-type", metavar="TYPE", help="type for token_embd.weight")
    p.add_argument("--tensor-type", action="append", default=[], metavar="PATTERN=TYPE",
                   help="type for tensors whose name matches PATTERN (repeatable)")
    p.add_argument("--pure", action="store_true", help="one type for every tensor, no mixes")
    p.add_argument("--allow-requantize", action="store_true",
                   help="quantize a file that is already quantized (loses more quality)")
    p.add_argument("--json", action="store_true", help="print the new library entry as JSON")
    p.set_defaults(handler=run)


def _overrides(specs: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for spec in specs:
        pattern, sep, kind = spec.rpartition("=")
        if not sep or not pattern or not kind:
            raise UserError(f"--tensor-type {spec!r}: write it as PATTERN=TYPE")
        pairs.append((pattern, kind))
    return tuple(pairs)


def run(args: argparse.Namespace) -> int:
    from macllm_app.core.jobs import Job
    from macllm_app.core.library.conversions import partial_cleanup
    from macllm_app.core.quantize.llamacpp import (
        CANCEL_GRACE_S,
        QUANTIZE_TARGET,
        QUANTIZE_TITLE,
        QuantizeOptions,
        plan_quantize,
    )
    from macllm_app.core.units import human_size

    options = QuantizeOptions(
        threads=args.threads, output_tensor_type=args.output_tensor_type,
        token_embedding_type=args.token_embedding_type, pure=args.pure,
        tensor_types=_overrides(args.tensor_type), allow_requantize=args.allow_requantize,
        imatrix=args.imatrix)
    plan = plan_quantize(args.src, args.output, args.type, options)
    if plan.warning:
        print(f"macllm: {plan.warning}", file=sys.stderr)
    print(f"Quantizing to {plan.type}: about {human_size(plan.expected_bytes)}",
          file=sys.stderr)
    job = Job(QUANTIZE_TARGET, (plan,), title=QUANTIZE_TITLE, cancel_grace_s=CANCEL_GRACE_S,
              after_crash=partial_cleanup(Path(plan.dest)))
    line = ProgressLine()
    try:
        with ctrl_c_stops() as should_stop:
            entry = job.run(line, should_stop)
    finally:
        line.end()
    print(json.dumps(entry) if args.json else entry["path"])
    return 0
