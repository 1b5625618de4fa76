"""`macllm models ...`: list, inspect, import, search, pull and fit library models."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.core.errors import Cancelled
from macllm_app.core.types import ENGINES
from macllm_app.core.units import human_size


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_models = sub.add_parser("models", help="the model library and the Hugging Face Hub")
    msub = p_models.add_subparsers(dest="models_command", required=True)

    p = msub.add_parser("list", help="models in the library (and other apps' stores)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--ctx", type=int, default=4096, help="context size for the fit column")
    p.set_defaults(handler=run_list)

    p = msub.add_parser("inspect", help="validate a model and show its metadata (no load)")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_inspect)

    p = msub.add_parser("import", help="add GGUF files or MLX folders to the library")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--copy", action="store_true",
                   help="copy into MacLLM's models folder (default: link in place)")
    p.set_defaults(handler=run_import)

    p = msub.add_parser("search", help="search the Hugging Face Hub")
    p.add_argument("query")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--gguf", action="store_const", const="gguf", dest="fmt")
    fmt.add_argument("--mlx", action="store_const", const="mlx", dest="fmt")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_search)

    p = msub.add_parser("pull", help="download a model (Ctrl+C pauses; run again to resume)")
    p.add_argument("repo")
    p.add_argument("--file", help="the GGUF file to download")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_pull)

    p = msub.add_parser("fit", help="will a model fit in memory at this context length?")
    p.add_argument("model", nargs="?", default=None,
                   help="library id or path (default: the bundled model)")
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--engine", choices=ENGINES, default="llama.cpp")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_fit)


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=1))


def run_list(args: argparse.Namespace) -> int:
    from macllm_app.core.library.listing import library_rows

    rows = library_rows(args.ctx)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("No models yet (import one with `macllm models import PATH`).")
    for r in rows:
        print(f"{r['id']:<36} {r['format']:<5} {r['quantization'] or '?':<8} "
              f"{human_size(r['size_bytes']):>10}  {r['fit']:<8} {r['source_label']:<10} "
              f"{r['path']}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from macllm_app.core.library.commands import inspect

    meta = inspect(args.path)
    if args.json:
        _print_json(meta)
        return 0
    for key in ("name", "format", "architecture", "quantization", "n_params", "context_length",
                "n_layers", "embedding_length", "n_heads", "n_kv_heads", "vocab_size",
                "has_chat_template", "engines"):
        value = meta.get(key)
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<18} {value}")
    print(f"{'size':<18} {human_size(meta['size_bytes'])}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from macllm_app.core.library.commands import import_models

    results = import_models(args.paths, "copy" if args.copy else "link")
    failed = 0
    for r in results:
        if "error" in r:
            failed += 1
            print(f"macllm: {r['error']}", file=sys.stderr)
        else:
            print(f"{r['id']}  {r['path']}")
    return 1 if failed else 0


def run_search(args: argparse.Namespace) -> int:
    from macllm_app.core.library.commands import search

    found = search(args.query, args.fmt, args.limit)
    if args.json:
        _print_json(found)
        return 0
    for m in found:
        print(f"{m['id']:<60} {m['downloads']:>10,} downloads  {', '.join(m['formats'])}")
    return 0


def _progress(p: dict[str, Any]) -> None:
    total = p.get("total")
    pct = f"{100 * p['done'] / total:5.1f}%" if total else "     "
    eta = f"ETA {p['eta_s']:.0f} s" if p.get("eta_s") is not None else ""
    print(f"\r{p['file']}: {pct} {human_size(p['done'])} of {human_size(total)} "
          f"{p['speed_bps'] / 2**20:.1f} MB/s {eta}   ", end="", file=sys.stderr, flush=True)


def run_pull(args: argparse.Namespace) -> int:
    from macllm_app.core.library.commands import pull

    try:
        with ctrl_c_stops() as should_stop:
            entry = pull(args.repo, args.file, progress=_progress, should_stop=should_stop)
    except Cancelled:
        print("\nmacllm: download paused; run the same command again to resume.",
              file=sys.stderr)
        return 130
    print(file=sys.stderr)
    if args.json:
        _print_json(entry)
    else:
        print(f"{entry['id']}  {entry['path']}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from macllm_app.core.library.commands import fit

    est = fit(args.model, args.ctx, args.engine)
    if args.json:
        _print_json(est)
        return 0
    verdict = {"fits": "Fits", "tight": "Tight", "wont_fit": "Won't fit"}[est["verdict"]]
    print(f"{verdict} at {args.ctx} tokens on {args.engine}: about "
          f"{human_size(est['expected_bytes'])} expected "
          f"(worst case {human_size(est['worst_case_bytes'])}), "
          f"{human_size(est['available_ram_bytes'])} available "
          f"of {human_size(est['total_ram_bytes'])}.")
    if est.get("recommended_quant") and est["verdict"] != "fits":
        print(f"Try a smaller quantization: {est['recommended_quant']}.")
    for note in est.get("notes", []):
        print(f"Note: {note}")
    return 0
