"""Which engine runs a model, and the LoadConfig to start it with."""

from __future__ import annotations

from pathlib import Path

from macllm_app.core.engines.types import EngineName
from macllm_app.core.errors import ModelFileError, UserError

ENGINES: tuple[EngineName, ...] = ("llama.cpp", "mlx")
#: Engines this build can run; a model's metadata may name others its format suits.
INSTALLED_ENGINES: tuple[EngineName, ...] = ("llama.cpp",)


def installed(engines: tuple[str, ...] | list[str]) -> list[str]:
    """The engines of `engines` that this build can run."""
    return [e for e in engines if e in INSTALLED_ENGINES]


def default_engine_for(path: Path) -> EngineName:
    """llama.cpp for GGUF files, MLX for MLX folders."""
    if path.is_dir():
        return "mlx"
    if path.suffix.lower() == ".gguf" or path.is_file():
        return "llama.cpp"
    raise ModelFileError(f"{path}: no such model file or folder.")


def check_engine(name: str) -> EngineName:
    for engine in ENGINES:
        if engine == name:
            return engine
    raise UserError(f"Unknown engine {name!r}: choose one of {', '.join(ENGINES)}.")
