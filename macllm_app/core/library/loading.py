"""Load a model into an engine host in the form its engine runs.

The chat pane, the CLI and the benchmarks all load through `load_in_host`:

- a GGUF file on MLX runs as its MLX copy, made here first (in a job process,
  with progress and cancel) when there is none, before the host sees it;
- the engine gets the library's memory estimate, from which the MLX engine
  sets Metal's wired-memory limit on a Mac;
- a model that will not fit in the memory available now (or, on a Mac, in the
  GPU's working set) is not loaded unless the caller confirms: `WontFit`
  carries the numbers and what to try instead.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.errors import UserError
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.hardware.fit import FitEstimate, estimate, shape_of
from macllm_app.core.hardware.guardrail import fit_problem
from macllm_app.core.jobs import Job
from macllm_app.core.library.memory_records import estimate_for
from macllm_app.core.library.mlx_copies import COPY_TITLE, ENSURE_COPY_TARGET, existing_mlx_copy
from macllm_app.core.platform import current as current_platform
from macllm_app.core.progress import span
from macllm_app.core.types import LoadConfig, ModelInfo, ProgressCallback, StopCheck

#: The share of a load's progress bar that making an MLX copy takes.
COPY_SHARE = 0.8


class WontFit(UserError):
    """The model needs more memory than is available now (the message says how much)."""

    def __init__(self, message: str, estimate: FitEstimate) -> None:
        super().__init__(message)
        self.estimate = estimate


def check_fit(config: LoadConfig) -> None:
    """Raise `WontFit` if `config`'s model will not fit now (reads files, loads nothing)."""
    path = config.source_path or config.model_path
    estimate = estimate_for(path, config.n_ctx, config.engine)
    uses_gpu = config.engine == "mlx" or config.n_gpu_layers != 0
    limit = current_platform().gpu_memory_limit_bytes() if uses_gpu else None
    problem = fit_problem(estimate, Path(path).name, limit)
    if problem:
        raise WontFit(problem, estimate)


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
                 should_stop: StopCheck | None = None, *, confirmed: bool = False) -> ModelInfo:
    """Load `config` into `host`, preparing it first (see the module docstring);
    `confirmed` loads a model that will not fit all the same."""
    if not confirmed:
        check_fit(config)
    report = progress or _no_progress
    if needs_mlx_copy(config):
        prepared = prepare_load(config, span(report, 0.0, COPY_SHARE), should_stop)
        return host.load(prepared, span(report, COPY_SHARE, 1.0))
    return host.load(prepare_load(config), report)
