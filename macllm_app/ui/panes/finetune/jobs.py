"""The Fine-tune pane's work: a training run (start, resume, stop) and what is done with
a run afterwards (fuse, export to GGUF, export a llama.cpp adapter), each a job with its
progress in a strip.

A run is planned off the GUI thread first (`plan_training` / `plan_resume` read the
datasets and record the run), so a refusal is one line before any job starts. Stop is
the job's cancel: the training job saves the adapter of its last step and returns the
run, stopped, as a normal result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from macllm_app.core.errors import describe
from macllm_app.core.finetune.memory import FitVerdict
from macllm_app.core.finetune.plan import TrainPlan
from macllm_app.core.finetune.runs import Run, RunStore
from macllm_app.core.jobs import Job
from macllm_app.ui.panes.finetune.checks import Inputs
from macllm_app.ui.tasks import Task
from macllm_app.ui.widgets.job_strip import JobStrip

#: A cancelled fuse or export is killed after this; what it staged is removed.
ACTION_GRACE_S = 3.0
ACTION_KINDS = ("fused", "gguf", "adapter")  # fuse.default_output's kinds


def plan_start(inputs: Inputs, available_bytes: int, force: bool) -> tuple[TrainPlan, Run] | str:
    """The recorded run Start begins, or the memory verdict's line when it will not fit
    (and `force` is off)."""
    from macllm_app.core.finetune.plan import plan_training, preflight

    verdict: FitVerdict = preflight(inputs.base, inputs.train_file, inputs.valid_file,
                                    inputs.config, available_bytes).verdict
    if not verdict.fits and not force:
        return verdict.message
    store = RunStore()
    plan = plan_training(inputs.base, inputs.train_file, inputs.valid_file, inputs.config,
                         available_bytes, force=True, store=store)
    return plan, store.get(plan.run_id)


def plan_continue(run_id: str) -> tuple[TrainPlan, Run]:
    from macllm_app.core.finetune.plan import plan_resume

    store = RunStore()
    plan = plan_resume(run_id, store)
    return plan, store.get(run_id)


class TrainingJobs(QObject):
    """One training run at a time; what it reports arrives as `step`s."""

    started = Signal(object)      # the Run, as recorded before training
    step = Signal(dict)           # a reported step ("train", "valid") or a "note"
    ended = Signal(dict)          # the run, finished or stopped
    refused = Signal(str)         # it will not fit: the verdict's line
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, strip: JobStrip, available_bytes: Callable[[], int],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.strip = strip
        self.available_bytes = available_bytes
        strip.cancel_requested.connect(self.stop)
        self._task: Task[Any, Any] | None = None
        self.run: Run | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None

    def start(self, inputs: Inputs, *, force: bool = False) -> None:
        if self.busy:
            return
        available = self.available_bytes
        self._set_task(Task.call(self, lambda: plan_start(inputs, available(), force),
                                 name="plan the fine-tune")
                       .on_done(self._planned).on_error(self._failed))

    def resume(self, run_id: str) -> None:
        if self.busy:
            return
        self._set_task(Task.call(self, lambda: plan_continue(run_id), name="plan the resume")
                       .on_done(self._planned).on_error(self._failed))

    @Slot()
    def stop(self) -> None:
        """Stop at the end of the current step, saving the adapter."""
        if self._task is not None:
            self._task.cancel()

    def _set_task(self, task: Task[Any, Any]) -> None:
        self._task = task
        self.busy_changed.emit(True)
        task.start()

    def _planned(self, planned: tuple[TrainPlan, Run] | str) -> None:
        from macllm_app.core.finetune.train import STOP_GRACE_S, TRAIN_TARGET, TRAIN_TITLE

        if isinstance(planned, str):
            self._end()
            self.refused.emit(planned)
            return
        plan, self.run = planned
        job = Job(TRAIN_TARGET, (plan,), title=TRAIN_TITLE, cancel_grace_s=STOP_GRACE_S)
        self.strip.start(job.title, cancel_text="Stop", cancelling="Stopping",
                         tip="Stop after this step, saving the adapter")
        self.started.emit(self.run)
        self._set_task(Task.job(self, job)
                       .on_progress(self.strip.set_progress)
                       .on_yield(self._event)
                       .on_done(self._done)
                       .on_error(self._failed)
                       .on_cancelled(self._cancelled))

    def _event(self, value: Any) -> None:
        if isinstance(value, dict):
            self.step.emit(value)

    def _done(self, run: dict[str, Any]) -> None:
        self._end()
        self.ended.emit(run)

    def _failed(self, error: BaseException) -> None:
        self._end()
        self.failed.emit(describe(error))

    def _cancelled(self) -> None:
        self._end()
        self.failed.emit("Stopped before the first step: there is no adapter to keep.")

    def _end(self) -> None:
        self._task = None
        self.strip.finish()
        self.busy_changed.emit(False)


def _unique(path: Path) -> Path:
    stem, n = path, 2
    while path.exists():
        path = stem.with_name(f"{stem.stem}-{n}{stem.suffix}")
        n += 1
    return path


def action_job(run_id: str, kind: str) -> Job:
    """The job making `kind` ("fused", "gguf", "adapter") of run `run_id`, written beside
    the library's models under a name no file has yet."""
    from macllm_app.core.finetune.fuse import (
        EXPORT_ADAPTER_TARGET,
        EXPORT_GGUF_TARGET,
        FUSE_TARGET,
        FUSE_TITLE,
        default_output,
    )
    from macllm_app.core.library.conversions import partial_cleanup

    dest = _unique(default_output(RunStore().find(run_id), kind))
    target, title = {"fused": (FUSE_TARGET, FUSE_TITLE),
                     "gguf": (EXPORT_GGUF_TARGET, "Exporting the fine-tuned model to GGUF"),
                     "adapter": (EXPORT_ADAPTER_TARGET, "Exporting the llama.cpp adapter")}[kind]
    return Job(target, (run_id, str(dest), None), title=title, cancel_grace_s=ACTION_GRACE_S,
               after_crash=partial_cleanup(dest))


class RunActions(QObject):
    """Fuse / export one run at a time, with progress and Cancel in `strip`."""

    added = Signal(dict)      # a library entry (fused or exported model)
    wrote = Signal(str)       # a file outside the library (a llama.cpp adapter)
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, strip: JobStrip, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.strip = strip
        strip.cancel_requested.connect(self.cancel)
        self._task: Task[Any, Any] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None

    def make(self, run_id: str, kind: str) -> None:
        if self.busy:
            return
        self._set_task(Task.call(self, lambda: action_job(run_id, kind), name="plan the export")
                       .on_done(lambda job: self._run(job, kind))
                       .on_error(self._failed))

    @Slot()
    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _set_task(self, task: Task[Any, Any]) -> None:
        self._task = task
        self.busy_changed.emit(True)
        task.start()

    def _run(self, job: Job, kind: str) -> None:
        self.strip.start(job.title)
        self._set_task(Task.job(self, job)
                       .on_progress(self.strip.set_progress)
                       .on_done(lambda result: self._done(result, kind))
                       .on_error(self._failed)
                       .on_cancelled(lambda: self._end_with("Cancelled; nothing was written.")))

    def _done(self, result: Any, kind: str) -> None:
        self._end()
        if kind == "adapter":
            self.wrote.emit(str(result))
        else:
            self.added.emit(dict(result))

    def _failed(self, error: BaseException) -> None:
        self._end_with(describe(error))

    def _end_with(self, message: str) -> None:
        self._end()
        self.failed.emit(message)

    def _end(self) -> None:
        self._task = None
        self.strip.finish()
        self.busy_changed.emit(False)
