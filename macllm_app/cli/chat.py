"""`macllm chat`: one-shot with --prompt (streams to stdout), otherwise a REPL."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from typing import TextIO

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.cli.model_choice import load_config_from_args, load_from_args
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.types import (
    Finished,
    GenerationRequest,
    GenerationStats,
    Message,
    SamplingParams,
    TextDelta,
)

REPL_HELP = (
    "Type a message. /reset clears the history, /exit or Ctrl+D quits, Ctrl+C stops a reply."
)


def sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    sampling = SamplingParams()
    fields = {
        "max_tokens": args.max_tokens, "temperature": args.temp, "top_p": args.top_p,
        "top_k": args.top_k, "min_p": args.min_p, "repeat_penalty": args.repeat_penalty,
        "seed": args.seed,
    }
    sampling = replace(sampling, **{k: v for k, v in fields.items() if v is not None})
    if args.stop:
        sampling = replace(sampling, stop=tuple(args.stop))
    return sampling


def stream_reply(host: EngineHost, request: GenerationRequest,
                 out: TextIO | None) -> tuple[str, GenerationStats]:
    """Generate one reply, writing each piece to `out` as it arrives. Ctrl+C stops the
    reply: the engine ends it within a token, with its real stats (finish "cancelled")."""
    pieces: list[str] = []
    stats = GenerationStats()
    with ctrl_c_stops(host.cancel):
        for event in host.stream(request):
            if isinstance(event, TextDelta):
                pieces.append(event.text)
                if out is not None:
                    out.write(event.text)
                    out.flush()
            elif isinstance(event, Finished):
                stats = event.stats
    return "".join(pieces), stats


def run(args: argparse.Namespace) -> int:
    config = load_config_from_args(args)
    sampling = sampling_from_args(args)
    system = [Message("system", args.system)] if args.system else []
    with EngineHost() as host:
        with ctrl_c_stops() as should_stop:
            load_from_args(host, config, args, should_stop)
        if args.prompt is not None:
            return _one_shot(host, system, args.prompt, sampling, as_json=args.json)
        return _repl(host, system, sampling)


def _one_shot(host: EngineHost, system: list[Message], prompt: str,
              sampling: SamplingParams, *, as_json: bool) -> int:
    request = GenerationRequest(messages=(*system, Message("user", prompt)), sampling=sampling)
    text, stats = stream_reply(host, request, None if as_json else sys.stdout)
    if as_json:
        model = host.model
        print(json.dumps({
            "text": text,
            "model": model.name if model else "",
            "engine": stats.engine,
            "stats": asdict(stats),
        }))
    else:
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 130 if stats.finish_reason == "cancelled" else 0


def _repl(host: EngineHost, system: list[Message], sampling: SamplingParams) -> int:
    model = host.model
    print(f"{model.name if model else 'model'} on {host.config.engine if host.config else ''}. "
          f"{REPL_HELP}", file=sys.stderr)
    history: list[Message] = list(system)
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit", "/bye"):
            return 0
        if text == "/reset":
            history = list(system)
            print("(history cleared)", file=sys.stderr)
            continue
        history.append(Message("user", text))
        request = GenerationRequest(messages=tuple(history), sampling=sampling)
        reply, stats = stream_reply(host, request, sys.stdout)
        print()
        if stats.finish_reason == "cancelled":
            print("(stopped)", file=sys.stderr)
        if reply:
            history.append(Message("assistant", reply))
        print(f"[{stats.generated_tokens} tokens, {stats.decode_tps:.1f} tok/s, "
              f"TTFT {stats.ttft_s * 1000:.0f} ms]", file=sys.stderr)
