"""Load a model into an engine host in the form its engine runs.

The chat pane, the CLI and the benchmarks all load through `load_in_host`:

- a GGUF file on MLX runs as its MLX copy, made here first (in a job process,
  with progress and cancel) when there is none, before the host sees it;
- the engine gets the library's memory estimate, from which the MLX engine
  sets Metal's wired-memory limit on a Mac.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.hardware.fit import estimate, shape_of
from macllm_app.core.jobs import Job
from macllm_app.core.library.mlx_copies import COPY_TITLE, ENSURE_COPY_TARGET, existing_mlx_copy
from macllm_app.core.progress import span
from macllm_app.core.types import LoadConfig, ModelInfo, ProgressCallback, StopCheck

#: The share of a load's progress bar that making an MLX copy takes.
COPY_SHARE = 0.8


def _no_progress(_fraction: float, _message: str) -> None:
    pass


def needs_mlx_copy(config: LoadConfig) -> bool:
    """True when `config` runs a GGUF file on MLX and its copy has not been made yet."""
    path = Path(config.model_path)
    return config.engine == "mlx" and path.is_file() and existing_mlx_copy(path) is None


def prepare_load(config: LoadConfig, progress: ProgressCallback | None = None,
                 should_stop: StopCheck | None = None) -> LoadConfig:
    """The config the engine host loads for `config` (the user's choice of model).

    Raises:
        Cancelled: `should_stop` turned True while the MLX copy was being made.
        JobFailed / UserError: the copy could not be made, or the model is unusable.
    """
    if config.engine != "mlx":
        return config
    path = Path(config.model_path)
    prepared = config
    if path.is_file():
        copy = existing_mlx_copy(path)
        if copy is None:
            job = Job(ENSURE_COPY_TARGET, (str(path),), title=COPY_TITLE)
            copy = Path(job.run(progress or _no_progress, should_stop))
        prepared = replace(config, model_path=str(copy), source_path=str(path))
    meta = inspect_model(Path(prepared.model_path))
    n_ctx = min(config.n_ctx, meta.context_length or config.n_ctx)
    fit = estimate(shape_of(meta), n_ctx, engine="mlx")
    return replace(prepared, expected_bytes=fit.worst_case_bytes - fit.overhead_bytes)


def load_in_host(host: EngineHost, config: LoadConfig,
                 progress: ProgressCallback | None = None,
                 should_stop: StopCheck | None = None) -> ModelInfo:
    """Load `config` into `host`, preparing it first (see the module docstring)."""
    report = progress or _no_progress
    if needs_mlx_copy(config):
        prepared = prepare_load(config, span(report, 0.0, COPY_SHARE), should_stop)
        return host.load(prepared, span(report, COPY_SHARE, 1.0))
    return host.load(prepare_load(config), report)
