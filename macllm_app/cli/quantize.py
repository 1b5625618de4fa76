"""`macllm quantize SRC --type Q4_K_M -o OUT` (llama.cpp) and `macllm quantize SRC
--engine mlx --bits 4 -o DIR` (MLX), with a progress line; Ctrl+C cancels (nothing is
left behind)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.cli.progress_line import ProgressLine
from macllm_app.core.errors import UserError
from macllm_app.core.quantize.mlx_options import MODES, RECIPES
from macllm_app.core.types import ENGINES


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("quantize", help="quantize a model with llama.cpp's or MLX's quantizer")
    p.add_argument("src", metavar="SRC", help="an F32/F16/BF16 GGUF file or an MLX llama folder")
    p.add_argument("--engine", choices=ENGINES, default="llama.cpp",
                   help="llama.cpp writes a GGUF file (--type), MLX a folder (--bits)")
    p.add_argument("--type", metavar="TYPE",
                   help="llama.cpp: Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K, IQ4_XS, ...")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the new GGUF file or MLX folder (must not exist)")
    mlx = p.add_argument_group("MLX")
    mlx.add_argument("--mlx-bits", "--bits", dest="bits", type=int, metavar="BITS",
                     help="quantize for MLX to 2, 3, 4, 5, 6 or 8 bits (implies --engine mlx)")
    mlx.add_argument("--group-size", type=int, default=64, help="32, 64 or 128 (default 64)")
    mlx.add_argument("--mode", choices=MODES, default="affine",
                     help="affine, or a microscaling format: mxfp4 (4 bits, groups of 32), "
                          "nvfp4 (4, 16), mxfp8 (8, 32)")
    mlx.add_argument("--recipe", choices=RECIPES, help="mlx-lm's mixed-precision recipes")
    mlx.add_argument("--dynamic-bpw", type=float, metavar="BPW",
                     help="learn which layers get 2 more bits from the calibration text, "
                          "to this many bits per weight on average")
    p.add_argument("--imatrix", metavar="FILE", help="an importance matrix (imatrix.gguf or .dat)")
    p.add_argument("--calibration", metavar="TEXT",
                   help="compute the importance matrix from this text file first (kept as "
                        "OUT.imatrix.gguf); 'default' uses the calibration text MacLLM ships")
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

    m = sub.add_parser("imatrix", help="compute an importance matrix (llama-imatrix's format)")
    m.add_argument("model", metavar="MODEL", help="a GGUF file (F16 or F32 is best)")
    m.add_argument("--text", required=True, metavar="FILE",
                   help="the calibration text ('default': the one MacLLM ships)")
    m.add_argument("-o", "--output", required=True, metavar="OUT.gguf")
    m.add_argument("--chunks", type=int, default=0, help="use at most this many 512-token chunks")
    m.add_argument("--threads", type=int, default=0)
    m.set_defaults(handler=run_imatrix)


def _calibration_text(spec: str) -> str:
    from macllm_app.core.resources import CALIBRATION_TEXT, read_text

    if spec == "default":
        return read_text(CALIBRATION_TEXT)
    try:
        return Path(spec).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{spec}: cannot read the calibration text ({exc})") from None


def _compute(model: Path, text: str, dest: Path, chunks: int, threads: int) -> dict[str, object]:
    from macllm_app.core.jobs import Job
    from macllm_app.core.library.conversions import partial_cleanup
    from macllm_app.core.quantize.imatrix_compute import IMATRIX_TARGET, IMATRIX_TITLE

    if model.is_dir():
        raise UserError("An importance matrix is computed from a GGUF file: export the "
                        "folder to GGUF first, or give --imatrix.")
    job = Job(IMATRIX_TARGET, (str(model), text, str(dest), chunks or None, threads),
              title=IMATRIX_TITLE, after_crash=partial_cleanup(dest))
    line = ProgressLine()
    try:
        with ctrl_c_stops() as should_stop:
            result: dict[str, object] = job.run(line, should_stop)
    finally:
        line.end()
    return result


def run_imatrix(args: argparse.Namespace) -> int:
    from macllm_app.core.convert.staging import check_dest_file
    from macllm_app.core.library.model_choice import resolve_model

    model, dest = resolve_model(args.model), Path(args.output)
    check_dest_file(dest)
    result = _compute(model, _calibration_text(args.text), dest, args.chunks, args.threads)
    print(f"{dest} ({result['entries']} weights, {result['chunks']} chunks)")
    return 0


def _overrides(specs: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for spec in specs:
        pattern, sep, kind = spec.rpartition("=")
        if not sep or not pattern or not kind:
            raise UserError(f"--tensor-type {spec!r}: write it as PATTERN=TYPE")
        pairs.append((pattern, kind))
    return tuple(pairs)


def _run_job(target: str, plan: object, title: str, dest: Path, grace_s: float,
             as_json: bool) -> int:
    from macllm_app.core.jobs import Job
    from macllm_app.core.library.conversions import partial_cleanup

    job = Job(target, (plan,), title=title, cancel_grace_s=grace_s,
              after_crash=partial_cleanup(dest))
    line = ProgressLine()
    try:
        with ctrl_c_stops() as should_stop:
            entry = job.run(line, should_stop)
    finally:
        line.end()
    print(json.dumps(entry) if as_json else entry["path"])
    return 0


def run_mlx(args: argparse.Namespace) -> int:
    from macllm_app.core.quantize.mlx import (
        MLX_QUANTIZE_TARGET,
        MLX_QUANTIZE_TITLE,
        plan_mlx_quantize,
    )
    from macllm_app.core.units import human_size

    if args.type or args.imatrix or args.calibration:
        raise UserError("--type, --imatrix and --calibration are llama.cpp's; MLX takes "
                        "--bits, --group-size, --mode, --recipe and --dynamic-bpw.")
    bits = args.bits if args.bits is not None else 4
    plan = plan_mlx_quantize(args.src, args.output, bits, args.group_size, args.mode,
                             args.recipe, args.dynamic_bpw)
    print(f"Quantizing for MLX ({plan.label()}): about {human_size(plan.expected_bytes)}",
          file=sys.stderr)
    return _run_job(MLX_QUANTIZE_TARGET, plan, MLX_QUANTIZE_TITLE, Path(plan.dest), 2.0,
                    args.json)


def run(args: argparse.Namespace) -> int:
    if args.engine == "mlx" or args.bits is not None:
        return run_mlx(args)
    if not args.type:
        raise UserError("Give --type (Q4_K_M, Q8_0, ...) for llama.cpp, or --engine mlx.")
    from macllm_app.core.quantize.llamacpp import (
        CANCEL_GRACE_S,
        QUANTIZE_TARGET,
        QUANTIZE_TITLE,
        QuantizeOptions,
        plan_quantize,
    )
    from macllm_app.core.units import human_size

    if args.imatrix and args.calibration:
        raise UserError("Give --imatrix or --calibration, not both.")
    imatrix = args.imatrix
    if args.calibration:
        text = _calibration_text(args.calibration)
        imatrix = f"{args.output}.imatrix.gguf"
        plan_quantize(args.src, args.output, args.type,  # fail before computing anything
                      QuantizeOptions(allow_requantize=args.allow_requantize),
                      imatrix_coming=True)
        _compute(Path(args.src), text, Path(imatrix), 0, args.threads)
    options = QuantizeOptions(
        threads=args.threads, output_tensor_type=args.output_tensor_type,
        token_embedding_type=args.token_embedding_type, pure=args.pure,
        tensor_types=_overrides(args.tensor_type), allow_requantize=args.allow_requantize,
        imatrix=imatrix)
    plan = plan_quantize(args.src, args.output, args.type, options)
    if plan.warning:
        print(f"macllm: {plan.warning}", file=sys.stderr)
    print(f"Quantizing to {plan.type}: about {human_size(plan.expected_bytes)}",
          file=sys.stderr)
    return _run_job(QUANTIZE_TARGET, plan, QUANTIZE_TITLE, Path(plan.dest), CANCEL_GRACE_S,
                    args.json)
