"""Which engine runs a model, and the LoadConfig to start it with."""

from __future__ import annotations

from functools import cache
from importlib.util import find_spec
from pathlib import Path

from macllm_app.core.errors import ModelFileError, UserError
from macllm_app.core.types import ENGINES, EngineName, engine_named

_ENGINE_PACKAGES: dict[EngineName, tuple[str, ...]] = {
    "llama.cpp": ("llama_cpp",),
    "mlx": ("mlx", "mlx_lm"),
}


@cache
def installed_engines() -> tuple[EngineName, ...]:
    """Engines whose packages are installed (found without importing them)."""
    return tuple(e for e in ENGINES if all(find_spec(p) for p in _ENGINE_PACKAGES[e]))


def installed(engines: tuple[str, ...] | list[str]) -> list[str]:
    """The engines of `engines` that this machine can run."""
    return [e for e in engines if e in installed_engines()]


def default_engine_for(path: Path) -> EngineName:
    """llama.cpp for GGUF files, MLX for MLX folders."""
    if path.is_dir():
        return "mlx"
    if path.suffix.lower() == ".gguf" or path.is_file():
        return "llama.cpp"
    raise ModelFileError(f"{path}: no such model file or folder.")


def check_engine(name: str) -> EngineName:
    engine = engine_named(name)
    if engine is not None:
        return engine
    raise UserError(f"Unknown engine {name!r}: choose one of {', '.join(ENGINES)}.")
