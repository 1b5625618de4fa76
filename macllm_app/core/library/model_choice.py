"""Which model a command or the app means, and the LoadConfig to run it with.

One precedence everywhere, for the CLI's `--model` and the Preferences'
default model alike:

1. nothing, or "default" (its id in `macllm models list`): the bundled model;
2. a library id (`macllm models list` shows them);
3. a path to a GGUF file or an MLX folder that exists.
"""

from __future__ import annotations

from pathlib import Path

from macllm_app.core.default_model import default_model_path
from macllm_app.core.engines.select import default_engine_for
from macllm_app.core.errors import UserError
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.settings import EngineSettings
from macllm_app.core.types import EngineName, LoadConfig

DEFAULT_ID = "default"


def resolve_model(ref: str | None) -> Path:
    """The model file or folder `ref` names (see the module docstring for the order)."""
    if ref is None or ref == DEFAULT_ID:
        return default_model_path()
    entry = Catalogue().get(ref)
    if entry is not None:
        return Path(entry.path)
    path = Path(ref).expanduser()
    if path.exists():
        return path.resolve()
    raise UserError(f"No model with id or path {ref!r} (see `macllm models list`).")


def load_config_for(group: EngineSettings, ref: str | None = None,
                    engine: EngineName | None = None) -> LoadConfig:
    """How to load `ref` (None: the Preferences' default model) with the engine settings
    of `group`. Without `engine`, the default model runs on the Preferences' engine and
    any other model on its format's engine (llama.cpp for GGUF, MLX for MLX folders)."""
    is_default = ref is None
    path = resolve_model(group.model_path if is_default else ref)
    if engine is None:
        engine = group.engine if is_default else default_engine_for(path)
    return LoadConfig(model_path=str(path), engine=engine, n_ctx=group.n_ctx,
                      n_threads=group.n_threads, n_batch=group.n_batch,
                      n_gpu_layers=group.n_gpu_layers)
