"""The Quantize pane's work: check a plan, compute an importance matrix when asked,
quantize, and measure a variant against its source, each as a job with progress in
the pane's strip and Cancel; one at a time.

Plans are checked off the GUI thread (they read headers and free space), so every
refusal arrives as one line before any job starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal, Slot

from macllm_app.core.errors import UserError, describe
from macllm_app.core.jobs import Job
from macllm_app.core.library.conversions import partial_cleanup
from macllm_app.core.quantize.choices import QuantChoice, mlx_plan_options
from macllm_app.ui.panes.quantize.advanced import AdvancedOptions
from macllm_app.ui.tasks import Task
from macllm_app.ui.widgets.job_strip import JobStrip

if TYPE_CHECKING:
    from macllm_app.core.quantize.llamacpp import QuantizeOptions

QUANTIZE_GRACE_S = 2.0  # a cancelled job is killed after this; its staging is removed


@dataclass(frozen=True, slots=True)
class QuantizeRequest:
    source: str
    dest: str
    choice: QuantChoice
    group_size: int = 64
    imatrix: str | None = None          # a file made elsewhere
    compute_imatrix: bool = False       # from the shipped calibration text, first
    allow_requantize: bool = False
    pure: bool = False
    advanced: AdvancedOptions = field(default_factory=AdvancedOptions)

    @property
    def imatrix_dest(self) -> str:
        return f"{self.dest}.imatrix.gguf"


def _options(request: QuantizeRequest, imatrix: str | None) -> QuantizeOptions:
    from macllm_app.core.quantize.llamacpp import QuantizeOptions

    extra = request.advanced
    return QuantizeOptions(threads=extra.threads, output_tensor_type=extra.output_tensor_type,
                           token_embedding_type=extra.token_embedding_type,
                           pure=request.pure or extra.pure, tensor_types=extra.tensor_types,
                           allow_requantize=request.allow_requantize, imatrix=imatrix)


def _plan(request: QuantizeRequest) -> list[tuple[str, tuple[Any, ...], str, str]]:
    """The jobs to run, as (target, args, title, what they write); raises UserError."""
    if request.choice.engine == "mlx":
        from macllm_app.core.quantize.mlx import (
            MLX_QUANTIZE_TARGET,
            MLX_QUANTIZE_TITLE,
            plan_mlx_quantize,
        )

        mlx_plan = plan_mlx_quantize(request.source, request.dest,
                                     **mlx_plan_options(request.choice, request.group_size))
        return [(MLX_QUANTIZE_TARGET, (mlx_plan,), MLX_QUANTIZE_TITLE, request.dest)]
    from macllm_app.core.quantize.llamacpp import (
        PLAN_AND_QUANTIZE_TARGET,
        QUANTIZE_TARGET,
        QUANTIZE_TITLE,
        QuantizeOptions,
        plan_quantize,
    )

    if not request.compute_imatrix:
        options = _options(request, request.imatrix)
        plan = plan_quantize(request.source, request.dest, request.choice.name, options)
        return [(QUANTIZE_TARGET, (plan,), QUANTIZE_TITLE, request.dest)]
    from macllm_app.core.convert.staging import check_dest_file
    from macllm_app.core.quantize.imatrix_compute import IMATRIX_TARGET, IMATRIX_TITLE
    from macllm_app.core.resources import CALIBRATION_TEXT, read_text

    if Path(request.source).is_dir():
        raise UserError("An importance matrix is computed from a GGUF file: export the "
                        "folder to GGUF first, or choose an imatrix file.")
    options = _options(request, request.imatrix_dest)
    plan_quantize(request.source, request.dest, request.choice.name,
                  QuantizeOptions(allow_requantize=request.allow_requantize),
                  imatrix_coming=True)
    check_dest_file(Path(request.imatrix_dest))
    return [(IMATRIX_TARGET, (request.source, read_text(CALIBRATION_TEXT), request.imatrix_dest,
                              None, 0), IMATRIX_TITLE, request.imatrix_dest),
            (PLAN_AND_QUANTIZE_TARGET, (request.source, request.dest, request.choice.name,
                                        options), QUANTIZE_TITLE, request.dest)]


class QuantizeJobs(QObject):
    """Runs one request (or one measurement) at a time."""

    quantized = Signal(dict)  # the new library entry
    measured = Signal(dict)   # the recorded quality row
    failed = Signal(str)
    cancelled = Signal()
    busy_changed = Signal(bool)

    def __init__(self, strip: JobStrip, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.strip = strip
        strip.cancel_requested.connect(self.cancel)
        self._task: Task[Any, Any] | None = None
        self._queue: list[tuple[str, tuple[Any, ...], str, str]] = []

    @property
    def busy(self) -> bool:
        return self._task is not None

    def quantize(self, request: QuantizeRequest) -> None:
        if self.busy:
            return
        self._set_task(Task.call(self, lambda: _plan(request), name="check the quantization")
                       .on_done(self._run_queue)
                       .on_error(self._failed))

    def measure(self, variant: str, base: str, provenance: dict[str, str]) -> None:
        from macllm_app.core.quantize.quality import EVALUATE_TARGET, EVALUATE_TITLE

        if self.busy:
            return
        job = Job(EVALUATE_TARGET, (variant, base, None, True, 0), title=EVALUATE_TITLE)
        self._start_job(job, lambda report: self._record(report, provenance))

    # -- running ------------------------------------------------------------------
    def _set_task(self, task: Task[Any, Any]) -> None:
        self._task = task
        self.busy_changed.emit(True)
        task.start()

    def _run_queue(self, jobs: list[tuple[str, tuple[Any, ...], str, str]]) -> None:
        self._task = None
        self._queue = list(jobs)
        self._next(None)

    def _next(self, _result: object) -> None:
        if not self._queue:
            return
        target, args, title, writes = self._queue.pop(0)
        job = Job(target, args, title=title, cancel_grace_s=QUANTIZE_GRACE_S,
                  after_crash=partial_cleanup(Path(writes)))
        last = not self._queue
        self._start_job(job, self._quantized if last else self._next)

    def _start_job(self, job: Job, done: Callable[[Any], None]) -> None:
        self.strip.start(job.title)

        def finished(result: Any) -> None:
            self.strip.finish()
            self._task = None
            done(result)
            if self._task is None:
                self.busy_changed.emit(False)

        self._set_task(Task.job(self, job)
                       .on_progress(self.strip.set_progress)
                       .on_done(finished)
                       .on_error(self._failed)
                       .on_cancelled(self._cancelled))

    def _quantized(self, entry: dict[str, Any]) -> None:
        self.quantized.emit(entry)

    def _record(self, report: dict[str, Any], provenance: dict[str, str]) -> None:
        from macllm_app.core.quantize.results import record

        self._set_task(Task.call(self, lambda: record(report, provenance), name="save quality")
                       .on_done(self._recorded)
                       .on_error(self._failed))

    def _recorded(self, row: dict[str, Any]) -> None:
        self._task = None
        self.busy_changed.emit(False)
        self.measured.emit(row)

    @Slot()
    def cancel(self) -> None:
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()

    def _failed(self, error: BaseException) -> None:
        self._end()
        self.failed.emit(describe(error))

    def _cancelled(self) -> None:
        self._end()
        self.cancelled.emit()

    def _end(self) -> None:
        self._queue.clear()
        self._task = None
        self.strip.finish()
        self.busy_changed.emit(False)
