"""Turn `--model/--engine/--ctx/...` options into a LoadConfig (see library.model_choice)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from macllm_app.core import settings as settings_mod
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.select import check_engine
from macllm_app.core.errors import UserError
from macllm_app.core.library.loading import WontFit, load_in_host
from macllm_app.core.library.model_choice import load_config_for
from macllm_app.core.types import LoadConfig, ModelInfo, StopCheck


def load_config_from_args(args: argparse.Namespace) -> LoadConfig:
    """The model `--model` names (without it, the Preferences' default model) with the
    Preferences' engine settings, then the command line's own overrides."""
    engine = check_engine(args.engine) if args.engine else None
    config = load_config_for(settings_mod.load().engine, args.model, engine)
    overrides: dict[str, int] = {}
    if args.ctx is not None:
        overrides["n_ctx"] = args.ctx
    if args.threads is not None:
        overrides["n_threads"] = args.threads
    if args.gpu_layers is not None:
        overrides["n_gpu_layers"] = args.gpu_layers
    return replace(config, **overrides)  # type: ignore[arg-type]


def load_from_args(host: EngineHost, config: LoadConfig, args: argparse.Namespace,
                   should_stop: StopCheck | None = None) -> ModelInfo:
    """Load as the app does; a model that won't fit needs `--force`."""
    try:
        return load_in_host(host, config, should_stop=should_stop, confirmed=args.force)
    except WontFit as exc:
        raise UserError(f"{exc} Pass --force to load it anyway.") from None
