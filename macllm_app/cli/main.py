"""`macllm`: the parser, the dispatch to each command group, and the exit codes.

Exit codes: 0 ok, 1 user error, 2 usage, 3 engine crashed, 130 cancelled.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Callable, Sequence

from macllm_app import __version__
from macllm_app.core.errors import Cancelled, EngineCrashed, RemoteBug, UserError, describe
from macllm_app.core.types import ENGINES

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_CRASH, EXIT_CANCELLED = 0, 1, 2, 3, 130

Handler = Callable[[argparse.Namespace], int]


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="library id, .gguf file or MLX folder (default: bundled)")
    parser.add_argument("--engine", choices=ENGINES, help="engine to run it on")
    parser.add_argument("--ctx", type=int, default=None, help="context size in tokens")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--gpu-layers", type=int, default=None,
                        help="layers to offload to the GPU (-1: all, 0: none)")
    parser.add_argument("--force", action="store_true",
                        help="load the model even if it will not fit in free memory")


def build_parser() -> argparse.ArgumentParser:
    from macllm_app.cli import bench, chat

    parser = argparse.ArgumentParser(prog="macllm", description="Run local language models.")
    parser.add_argument("--version", action="version", version=f"macllm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p_chat = sub.add_parser("chat", help="chat with a model (one-shot with --prompt)")
    _add_model_options(p_chat)
    p_chat.add_argument("--prompt", help="send this and print the reply, then exit")
    p_chat.add_argument("--system", help="system prompt")
    p_chat.add_argument("--max-tokens", type=int, default=None)
    p_chat.add_argument("--temp", type=float, default=None, help="temperature")
    p_chat.add_argument("--top-p", type=float, default=None)
    p_chat.add_argument("--top-k", type=int, default=None)
    p_chat.add_argument("--min-p", type=float, default=None)
    p_chat.add_argument("--repeat-penalty", type=float, default=None)
    p_chat.add_argument("--seed", type=int, default=None)
    p_chat.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p_chat.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p_chat.set_defaults(handler=chat.run)

    p_bench = sub.add_parser("bench", help="measure prompt and decode speed")
    _add_model_options(p_bench)
    p_bench.add_argument("--tokens", type=int, default=128, help="tokens to generate")
    p_bench.add_argument("--repeat", type=int, default=3, help="runs (median reported)")
    p_bench.add_argument("--json", action="store_true")
    p_bench.set_defaults(handler=bench.run)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Command groups that live in their own modules (models, convert, ...)."""
    from macllm_app.cli import registry

    for register in registry.REGISTRARS:
        register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except UserError as exc:
        print(f"macllm: {exc}", file=sys.stderr)
        return EXIT_USER
    except EngineCrashed as exc:
        print(f"macllm: {exc}", file=sys.stderr)
        return EXIT_CRASH
    except RemoteBug as exc:  # the child logged its traceback; -v shows it here too
        print(f"macllm: {describe(exc)}", file=sys.stderr)
        if args.verbose:
            print(exc.remote_traceback, file=sys.stderr)
        return EXIT_USER
    except (Cancelled, KeyboardInterrupt):
        print("macllm: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        return EXIT_OK
