"""What the pane knows before Start, found off the GUI thread: the preflight (base model,
datasets, parameters, the memory each method needs and whether it fits) and the dataset
preview (a job: it loads the model's tokenizer).

The form can change faster than either runs: a check starts a moment after the last
edit, and the task API drops the results of a check the user has moved on from. A
preview runs again only when what it depends on changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from macllm_app.core.errors import describe
from macllm_app.core.finetune.config import METHODS, Method, TrainConfig, with_method
from macllm_app.core.finetune.memory import FitVerdict, MemoryEstimate, fit_verdict
from macllm_app.core.finetune.plan import Preflight, preflight
from macllm_app.core.jobs import Job
from macllm_app.core.units import human_size
from macllm_app.ui.tasks import Task

#: How long after the last edit the preflight runs.
SETTLE_MS = 150
#: A superseded preview's job is killed after this (it only reads).
PREVIEW_GRACE_S = 2.0


@dataclass(frozen=True)
class Inputs:
    """What the user chose: the run that Start would begin."""

    base: str
    train_file: str
    valid_file: str | None
    config: TrainConfig

    def preview_key(self) -> tuple[Any, ...]:
        """The settings the dataset preview depends on."""
        c = self.config
        return (self.base, self.train_file, self.valid_file, c.max_seq_length, c.batch_size,
                c.mask_prompt, c.seed)


def _stamp(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    info = Path(path).stat()
    return info.st_mtime_ns, info.st_size


@dataclass(frozen=True)
class Check:
    """The preflight of `inputs`, and each method's estimate under the same settings."""

    inputs: Inputs
    preflight: Preflight
    methods: dict[Method, tuple[MemoryEstimate, FitVerdict]] = field(default_factory=dict)
    stamps: tuple[Any, ...] = ()  # the datasets' modification times and sizes

    def preview_key(self) -> tuple[Any, ...]:
        """What the preview depends on: the settings and the datasets' contents."""
        return (*self.inputs.preview_key(), *self.stamps)

    def method_lines(self) -> dict[Method, str]:
        return {m: f"{human_size(e.total)}, {'fits' if v.fits else 'does not fit'}"
                for m, (e, v) in self.methods.items()}


def check_inputs(inputs: Inputs, available_bytes: int) -> Check:
    """The preflight (raises a UserError in one line) and every method's estimate."""
    checked = preflight(inputs.base, inputs.train_file, inputs.valid_file, inputs.config,
                        available_bytes)
    methods: dict[Method, tuple[MemoryEstimate, FitVerdict]] = {}
    for method in METHODS:
        need = checked.estimate_for(with_method(inputs.config, method))
        methods[method] = (need, fit_verdict(need, available_bytes))
    return Check(inputs, checked, methods,
                 (_stamp(inputs.train_file), _stamp(inputs.valid_file)))


class FormChecks(QObject):
    """Runs the preflight after each edit and the preview when its inputs change."""

    checked = Signal(object)          # Check
    check_failed = Signal(str)        # one line
    preview_started = Signal()
    previewed = Signal(dict)          # the PREVIEW job's result
    preview_failed = Signal(str)

    def __init__(self, available_bytes: Callable[[], int],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available_bytes = available_bytes
        self.inputs: Inputs | None = None
        self.current: Check | None = None       # the check of `inputs`, once known
        self.error: str | None = None           # or why it failed
        self.preview: dict[str, Any] | None = None
        self._preview_key: tuple[Any, ...] | None = None  # of `preview` or the one coming
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._run)

    def request(self, inputs: Inputs | None) -> None:
        """Check `inputs` (None: nothing to check yet) a moment from now."""
        self.inputs, self.current, self.error = inputs, None, None
        if inputs is None:
            self._timer.stop()
            return
        self._timer.start()

    def is_current(self) -> bool:
        return self.current is not None and self.current.inputs == self.inputs

    def preview_blocking(self) -> list[str]:
        """The preview's blocking lines, when it is the preview of the current check."""
        if (self.preview is None or self.current is None or not self.is_current()
                or self._preview_key != self.current.preview_key()):
            return []
        return list(self.preview.get("blocking", []))

    def _run(self) -> None:
        inputs = self.inputs
        if inputs is None:
            return
        available = self.available_bytes
        (Task.call(self, lambda: check_inputs(inputs, available()), key="preflight",
                   name="check the fine-tune")
         .on_done(self._checked)
         .on_error(lambda error: self._failed(inputs, describe(error)))
         .start())

    def _checked(self, check: Check) -> None:
        if check.inputs != self.inputs:
            return
        self.current = check
        self.checked.emit(check)
        if check.preview_key() != self._preview_key:
            self._start_preview(check)

    def _failed(self, inputs: Inputs, message: str) -> None:
        if inputs == self.inputs:
            self.error = message
            self.check_failed.emit(message)

    def _start_preview(self, check: Check) -> None:
        from macllm_app.core.finetune.preview import PREVIEW_TARGET, PREVIEW_TITLE

        inputs, key = check.inputs, check.preview_key()
        self._preview_key, self.preview = key, None
        job = Job(PREVIEW_TARGET, (inputs.base, inputs.train_file, inputs.valid_file,
                                   inputs.config.to_dict()),
                  title=PREVIEW_TITLE, cancel_grace_s=PREVIEW_GRACE_S)
        self.preview_started.emit()
        (Task.job(self, job, key="preview")
         .on_done(lambda result: self._previewed(key, result))
         .on_error(lambda error: self._preview_error(key, describe(error)))
         .start())

    def _previewed(self, key: tuple[Any, ...], result: dict[str, Any]) -> None:
        if key == self._preview_key:
            self.preview = result
            self.previewed.emit(result)

    def _preview_error(self, key: tuple[Any, ...], message: str) -> None:
        if key == self._preview_key:
            self._preview_key = None  # try again on the next check
            self.preview_failed.emit(message)
