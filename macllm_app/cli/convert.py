"""`macllm convert ...`: GGUF to MLX folder, MLX folder to F16 GGUF."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.cli.progress_line import ProgressLine
from macllm_app.core.types import StopCheck


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_convert = sub.add_parser("convert", help="convert a model between GGUF and MLX")
    csub = p_convert.add_subparsers(dest="convert_command", required=True)

    p = csub.add_parser("gguf-to-mlx", help="a llama GGUF file to a new MLX folder")
    p.add_argument("src", metavar="SRC", help="the .gguf file")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="the MLX folder to create (must not exist, or be empty)")
    p.set_defaults(handler=run_gguf_to_mlx)

    p = csub.add_parser("mlx-to-gguf", help="an MLX llama folder to a new F16 GGUF file")
    p.add_argument("src", metavar="SRC", help="the MLX model folder")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the .gguf file to create (must not exist)")
    p.set_defaults(handler=run_mlx_to_gguf)


def _convert(convert: Callable[[Path, Path, ProgressLine, StopCheck], Path],
             args: argparse.Namespace) -> int:
    """Run a conversion with a progress line on stderr; Ctrl+C cancels it."""
    line = ProgressLine()
    try:
        with ctrl_c_stops() as should_stop:
            dest = convert(Path(args.src), Path(args.output), line, should_stop)
    finally:
        line.end()
    print(dest)
    return 0


def run_gguf_to_mlx(args: argparse.Namespace) -> int:
    from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx

    return _convert(convert_gguf_to_mlx, args)


def run_mlx_to_gguf(args: argparse.Namespace) -> int:
    from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf

    return _convert(export_mlx_to_gguf, args)
