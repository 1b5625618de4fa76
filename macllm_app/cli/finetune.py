"""`macllm finetune`: train (LoRA, DoRA, QLoRA, full) with a progress line and, with
`--json`, one JSON object per reported step; and `list`, `show`, `check`, `resume`,
`fuse` and `export` for runs. Ctrl+C stops a run with its adapter saved (exit 130)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.cli.progress_line import ProgressLine
from macllm_app.core.errors import UserError
from macllm_app.core.finetune.config import METHODS, OPTIMIZERS, PRESETS, TrainConfig

EXIT_STOPPED = 130
#: CLI option -> TrainConfig field, for the options that override a preset.
_FIELDS = {"method": "method", "rank": "rank", "scale": "scale", "dropout": "dropout",
           "layers": "num_layers", "learning_rate": "learning_rate",
           "warmup": "warmup_steps", "min_learning_rate": "min_learning_rate",
           "optimizer": "optimizer", "batch_size": "batch_size",
           "grad_accumulation": "grad_accumulation", "iters": "iters", "epochs": "epochs",
           "max_seq_length": "max_seq_length", "seed": "seed",
           "steps_per_eval": "steps_per_eval", "val_batches": "val_batches",
           "save_every": "save_every"}
_SWITCHES = {"cosine": "cosine_decay", "grad_checkpoint": "grad_checkpoint",
             "mask_prompt": "mask_prompt"}


def _training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="M", help="base model: a library id, a GGUF file or an "
                                                 "MLX folder (a GGUF trains through its MLX copy)")
    p.add_argument("--data", metavar="train.jsonl", help="training records (JSONL)")
    p.add_argument("--valid", metavar="valid.jsonl",
                   help="validation records (default: a tenth of --data, split off)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from these settings")
    p.add_argument("--method", choices=METHODS, help="default lora")
    p.add_argument("--rank", type=int)
    p.add_argument("--scale", type=float, help="LoRA scale (mlx-lm's; default 20)")
    p.add_argument("--dropout", type=float)
    p.add_argument("--layers", type=int, help="train the last N layers (-1: all)")
    p.add_argument("--learning-rate", "--lr", type=float)
    p.add_argument("--warmup", type=int, help="warm-up steps")
    p.add_argument("--cosine", action="store_true", default=None, help="cosine decay")
    p.add_argument("--min-learning-rate", type=float, help="the rate cosine decay ends at")
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--grad-accumulation", type=int)
    p.add_argument("--iters", type=int)
    p.add_argument("--epochs", type=float, help="passes over the data (instead of --iters)")
    p.add_argument("--max-seq-length", type=int)
    p.add_argument("--grad-checkpoint", action="store_true", default=None)
    p.add_argument("--mask-prompt", action="store_true", default=None,
                   help="learn only the replies, not the prompts")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps-per-eval", type=int)
    p.add_argument("--val-batches", type=int)
    p.add_argument("--save-every", type=int, help="checkpoint every N steps")
    p.add_argument("--force", action="store_true",
                   help="start even when the memory estimate says it will not fit")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per step on stdout, then the run")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model with MLX (LoRA, DoRA, QLoRA, full)")
    _training_options(p)
    p.set_defaults(handler=run_train)
    actions = p.add_subparsers(dest="action", metavar="{list,show,check,resume,fuse,export}")
    listing = actions.add_parser("list", help="the runs, newest first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="one run: settings, state, loss")
    show.add_argument("run", metavar="RUN", help="a run id (or its start, or 'last')")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)
    check = actions.add_parser("check", help="the dataset as training will see it")
    _training_options(check)
    check.set_defaults(handler=run_check)
    resume = actions.add_parser("resume", help="continue a stopped or killed run")
    resume.add_argument("run", metavar="RUN")
    resume.add_argument("--more", type=int, default=0, help="train N steps beyond its plan")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(handler=run_resume)
    fuse = actions.add_parser("fuse", help="fuse a run into a float16 MLX model")
    fuse.add_argument("run", metavar="RUN")
    fuse.add_argument("-o", "--output", metavar="DIR", help="the new folder (must not exist)")
    fuse.add_argument("--json", action="store_true")
    fuse.set_defaults(handler=run_fuse)
    export = actions.add_parser("export", help="a run as GGUF or as a llama.cpp adapter")
    export.add_argument("run", metavar="RUN")
    kind = export.add_mutually_exclusive_group(required=True)
    kind.add_argument("--gguf", action="store_true", help="the fused model, F16 GGUF")
    kind.add_argument("--llama-adapter", action="store_true",
                      help="the LoRA adapter as a llama.cpp adapter GGUF")
    export.add_argument("-o", "--output", metavar="OUT.gguf")
    export.add_argument("--json", action="store_true")
    export.set_defaults(handler=run_export)


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The preset (or the defaults) with every option given on the command line."""
    config = PRESETS[args.preset] if args.preset else TrainConfig()
    changes: dict[str, Any] = {field: getattr(args, option)
                               for option, field in _FIELDS.items()
                               if getattr(args, option) is not None}
    changes.update({field: True for option, field in _SWITCHES.items()
                    if getattr(args, option)})
    config = replace(config, **changes)
    config.check()
    return config


def _inputs(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    from macllm_app.core.library.model_choice import resolve_model

    if not args.model or not args.data:
        raise UserError("Give the base model (--model) and the training data (--data).")
    return resolve_model(args.model), Path(args.data), Path(args.valid) if args.valid else None


def run_train(args: argparse.Namespace) -> int:
    from macllm_app.core.finetune.plan import plan_training
    from macllm_app.core.platform.memory import available_ram_bytes

    base, data, valid = _inputs(args)
    config = config_from(args)
    plan = plan_training(base, data, valid, config, available_ram_bytes(), force=args.force)
    print(f"Run {plan.run_id}: {config.method} on {base.name}, {plan.total_steps} steps",
          file=sys.stderr)
    return _train(plan, args.json)


def run_resume(args: argparse.Namespace) -> int:
    from macllm_app.core.finetune.plan import plan_resume

    plan = plan_resume(args.run, extra_steps=args.more)
    print(f"Resuming run {plan.run_id} to step {plan.total_steps}", file=sys.stderr)
    return _train(plan, args.json)


def _train(plan: Any, as_json: bool) -> int:
    from macllm_app.core.finetune.train import STOP_GRACE_S, TRAIN_TARGET, TRAIN_TITLE
    from macllm_app.core.jobs import Job

    def on_event(event: dict[str, Any]) -> None:
        if event.get("kind") == "note":
            print(f"macllm: {event['text']}", file=sys.stderr, flush=True)
        elif as_json:
            print(json.dumps(event), flush=True)

    job = Job(TRAIN_TARGET, (plan,), title=TRAIN_TITLE, cancel_grace_s=STOP_GRACE_S)
    line = ProgressLine()
    try:
        with ctrl_c_stops() as should_stop:
            run: dict[str, Any] = job.run(line, should_stop, on_event)
    finally:
        line.end()
    if as_json:
        print(json.dumps({"kind": "run", **run}))
    else:
        print(f"{run['state']}: {run['message']}; adapter in {run['adapter_dir']}")
    return EXIT_STOPPED if run["state"] == "stopped" else 0


def run_check(args: argparse.Namespace) -> int:
    from macllm_app.core.finetune.plan import preflight
    from macllm_app.core.finetune.preview import PREVIEW_TARGET, PREVIEW_TITLE
    from macllm_app.core.jobs import Job
    from macllm_app.core.platform.memory import available_ram_bytes

    base, data, valid = _inputs(args)
    config = config_from(args)
    checked = preflight(base, data, valid, config, available_ram_bytes())
    line = ProgressLine()
    try:
        summary: dict[str, Any] = Job(PREVIEW_TARGET, (str(base), str(data),
                                                       str(valid) if valid else None,
                                                       config.to_dict()),
                                      title=PREVIEW_TITLE).run(line)
    finally:
        line.end()
    summary["memory"] = {"estimate_bytes": checked.memory.total, "fits": checked.verdict.fits,
                         "verdict": checked.verdict.message}
    summary["total_steps"] = checked.total_steps
    if args.json:
        print(json.dumps(summary))
        return 1 if summary["blocking"] else 0
    print(f"{summary['name']}: {summary['samples']} records ({summary['format']}), "
          f"{summary['total_tokens']} tokens, lengths {summary['min_length']}-"
          f"{summary['max_length']} (median {summary['median_length']:.0f}); "
          f"validation {summary['valid_samples']} records")
    print(f"{checked.total_steps} steps. {checked.verdict.message}")
    for text in summary["blocking"]:
        print(f"blocks training: {text}")
    for text in summary["warnings"]:
        print(f"warning: {text}")
    return 1 if summary["blocking"] else 0


def run_list(args: argparse.Namespace) -> int:
    from macllm_app.core.finetune.runs import RunStore

    runs = RunStore().all_runs()
    if args.json:
        print(json.dumps([run.to_dict() for run in runs]))
        return 0
    if not runs:
        print("No fine-tune runs yet.")
    for run in runs:
        print(f"{run.id}  {run.state:<8} {run.method:<5} step {run.step}/{run.total_steps}  "
              f"{Path(run.base_model).name}  {Path(run.train_file).name}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from macllm_app.core.finetune.runs import RunStore
    from macllm_app.core.units import human_size

    store = RunStore()
    run = store.find(args.run)
    steps = store.steps(run.id)
    if args.json:
        print(json.dumps({**run.to_dict(), "steps": [s.__dict__ for s in steps]}))
        return 0
    train = [s for s in steps if s.kind == "train" and s.loss is not None]
    valid = [s for s in steps if s.kind == "valid" and s.loss is not None]
    print(f"{run.id}: {run.state} at step {run.step} of {run.total_steps}"
          + (f" ({run.message})" if run.message else ""))
    print(f"base {run.base_model}; data {run.train_file}; method {run.method}")
    if train:
        print(f"train loss {train[0].loss:.3f} -> {train[-1].loss:.3f}"
              + (f"; validation loss {valid[-1].loss:.3f}" if valid else ""))
    print(f"{run.duration_s:.0f} s, peak memory {human_size(run.peak_memory_bytes)} "
          f"(estimated {human_size(run.estimate_bytes)}); adapter {run.adapter_dir}")
    return 0


def _result_job(target: str, run_id: str, dest: Path, title: str) -> Any:
    from macllm_app.core.jobs import Job
    from macllm_app.core.library.conversions import partial_cleanup

    job = Job(target, (run_id, str(dest), None), title=title,
              after_crash=partial_cleanup(dest))
    line = ProgressLine()
    try:
        with ctrl_c_stops() as should_stop:
            return job.run(line, should_stop)
    finally:
        line.end()


def run_fuse(args: argparse.Namespace) -> int:
    from macllm_app.core.finetune.fuse import FUSE_TARGET, FUSE_TITLE, default_output
    from macllm_app.core.finetune.runs import RunStore

    run = RunStore().find(args.run)
    dest = Path(args.output) if args.output else default_output(run, "fused")
    entry = _result_job(FUSE_TARGET, run.id, dest, FUSE_TITLE)
    print(json.dumps(entry) if args.json else entry["path"])
    return 0


def run_export(args: argparse.Namespace) -> int:
    from macllm_app.core.finetune.fuse import (
        EXPORT_ADAPTER_TARGET,
        EXPORT_GGUF_TARGET,
        default_output,
    )
    from macllm_app.core.finetune.runs import RunStore

    run = RunStore().find(args.run)
    if args.gguf:
        dest = Path(args.output) if args.output else default_output(run, "gguf")
        entry = _result_job(EXPORT_GGUF_TARGET, run.id, dest, "Exporting to GGUF")
        print(json.dumps(entry) if args.json else entry["path"])
        return 0
    dest = Path(args.output) if args.output else default_output(run, "adapter")
    path = _result_job(EXPORT_ADAPTER_TARGET, run.id, dest, "Exporting the adapter")
    print(json.dumps({"path": path}) if args.json else path)
    return 0
