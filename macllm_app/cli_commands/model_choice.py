"""Turn `--model/--engine/--ctx/...` options into a LoadConfig."""

from __future__ import annotations

import argparse
from pathlib import Path

from macllm_app.core.default_model import default_model_path
from macllm_app.core.engines.select import check_engine, default_engine_for
from macllm_app.core.engines.types import LoadConfig


def resolve_model_path(spec: str | None) -> Path:
    """A path, a library id, or None (or "default", its id in `models list`) for the bundled
    default model."""
    if spec is None or (spec == "default" and not Path(spec).exists()):
        return default_model_path()
    path = Path(spec).expanduser()
    if path.exists():
        return path.resolve()
    from macllm_app.core.library.commands import resolve_model

    return Path(resolve_model(spec))


def load_config_from_args(args: argparse.Namespace) -> LoadConfig:
    path = resolve_model_path(args.model)
    engine = check_engine(args.engine) if args.engine else default_engine_for(path)
    overrides: dict[str, int] = {}
    if args.ctx is not None:
        overrides["n_ctx"] = args.ctx
    if args.threads is not None:
        overrides["n_threads"] = args.threads
    if args.gpu_layers is not None:
        overrides["n_gpu_layers"] = args.gpu_layers
    return LoadConfig(model_path=str(path), engine=engine, **overrides)  # type: ignore[arg-type]
