"""The Fine-tune pane: choose a base model (from the library, a drop, or the Library's
"Fine-tune…") and a JSONL dataset, a preset and a method (each listed with the memory
it needs and whether it fits), see the dataset as training will (the preview); start,
follow the loss and the speed live, stop (the adapter is kept) and resume. The history
lists every run with its recorded curve; a finished or stopped run can be chatted with,
fused, exported to GGUF or exported as a llama.cpp adapter, and what is made joins the
library (`runs_panel`).

Everything that reads a file or the runs database runs off the GUI thread (`checks`,
`jobs`, and the task API); every problem is one line in the pane.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.errors import UserError, describe
from macllm_app.core.finetune.runs import Run
from macllm_app.core.platform.memory import available_ram_bytes
from macllm_app.ui.panes.finetune.checks import Check, FormChecks, Inputs
from macllm_app.ui.panes.finetune.form import TrainForm
from macllm_app.ui.panes.finetune.jobs import TrainingJobs
from macllm_app.ui.panes.finetune.preview_view import BLOCKING_STYLE, DatasetPreview
from macllm_app.ui.panes.finetune.runs_panel import RunsPanel
from macllm_app.ui.panes.finetune.sources import SourcesBox
from macllm_app.ui.tasks import Task
from macllm_app.ui.widgets.job_strip import JobStrip


class FineTunePane(QWidget):
    chat_requested = Signal(str, str)   # the base model, the run's adapter folder
    added = Signal(str)                 # a model the library gained
    status_message = Signal(str)

    def __init__(self, available_bytes: Callable[[], int] = available_ram_bytes) -> None:
        super().__init__()
        self.setObjectName("finetunePane")
        self.setAcceptDrops(True)
        #: The memory a run may use (read off the GUI thread, before each check and start).
        self.available_bytes = available_bytes
        self._listed_once = False

        self.sources = SourcesBox()
        self.sources.changed.connect(self._inputs_changed)
        self.form = TrainForm()
        self.form.changed.connect(self._inputs_changed)
        self.memory = QLabel("")
        self.memory.setObjectName("finetuneMemory")
        self.memory.setWordWrap(True)
        self.problem = QLabel("")
        self.problem.setObjectName("finetuneProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(BLOCKING_STYLE)
        self.preview = DatasetPreview()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("finetuneStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(lambda _checked=False: self.start())
        self.start_anyway = QPushButton("Start anyway")
        self.start_anyway.setObjectName("finetuneStartAnyway")
        self.start_anyway.setToolTip("Start although the estimate says it will not fit")
        self.start_anyway.clicked.connect(lambda _checked=False: self.start(force=True))
        self.start_anyway.hide()
        self.train_strip = JobStrip()
        self.result = QLabel("")
        self.result.setObjectName("finetuneResult")
        self.result.setWordWrap(True)

        self.checks = FormChecks(self._available, self)
        self.checks.checked.connect(self._checked)
        self.checks.check_failed.connect(self._check_failed)
        self.checks.preview_started.connect(lambda: self.preview.show_message(
            "Reading the dataset with the model's tokenizer…"))
        self.checks.previewed.connect(self._previewed)
        self.checks.preview_failed.connect(self.preview.show_message)
        self.panel = RunsPanel()
        self.panel.chat_requested.connect(self.chat_requested)
        self.panel.resume_requested.connect(self.resume)
        self.panel.added.connect(self._added)
        self.panel.message.connect(self._say)
        self.training = TrainingJobs(self.train_strip, self._available, self)
        self.training.started.connect(self.panel.start_live)
        self.training.step.connect(self._event)
        self.training.ended.connect(self._ended)
        self.training.refused.connect(self._refused)
        self.training.failed.connect(self._failed)
        self.training.busy_changed.connect(self.panel.set_training)
        self.training.busy_changed.connect(self._update)
        self._lay_out()
        self._show_lines()
        self._update()

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.start_anyway)
        buttons.addStretch(1)
        setup = QWidget()
        left = QVBoxLayout(setup)
        for widget in (self.sources, self.form, self.memory, self.problem, self.preview):
            left.addWidget(widget)
        left.addLayout(buttons)
        left.addWidget(self.train_strip)
        left.addWidget(self.result)
        left.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(setup)
        scroll.setMinimumWidth(setup.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width() + 4)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.panel)
        split.setStretchFactor(0, 0)  # the form keeps its width; the chart takes the rest
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(QLabel("<h2>Fine-tune</h2>"))
        layout.addWidget(split, 1)

    # -- the choice ---------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._listed_once:
            self._listed_once = True
            self.refresh_models()

    @Slot()
    def refresh_models(self) -> None:
        from macllm_app.core.library.commands import list_models

        (Task.call(self, lambda: list_models(scan_stores=False), key="models",
                   name="list models")
         .on_done(self.sources.show_models)
         .on_error(lambda error: self._say(describe(error)))
         .start())

    def set_base(self, path: str) -> None:
        """Fine-tune `path` next (from the list, a drop or the Library's action)."""
        self.sources.set_base(path)

    def set_data(self, train_file: str, valid_file: str | None = None) -> None:
        self.sources.set_train_file(train_file)
        self.sources.set_valid_file(valid_file)

    def inputs(self) -> Inputs | None:
        """What Start would run (None until a base and a dataset are chosen); raises
        ConfigError on a parameter that is not a number."""
        base, train = self.sources.base, self.sources.train_file
        if base is None or train is None:
            return None
        return Inputs(base, train, self.sources.valid_file, self.form.config())

    @Slot()
    def _inputs_changed(self) -> None:
        self.start_anyway.hide()
        self.problem.setText("")
        try:
            inputs = self.inputs()
        except UserError as exc:
            inputs = None
            self.problem.setText(describe(exc))
        self.memory.setText("Checking…" if inputs is not None else "")
        self.checks.request(inputs)
        self._show_lines()
        self._update()

    def _checked(self, check: Check) -> None:
        self.memory.setText(check.preflight.verdict.message)
        self.form.show_estimates(check.method_lines())
        self._show_lines()
        self._update()

    def _check_failed(self, message: str) -> None:
        self.memory.setText("")
        self.form.show_estimates({})
        self.problem.setText(message)
        self._show_lines()
        self._update()

    def _show_lines(self) -> None:
        for label in (self.memory, self.problem):
            label.setVisible(bool(label.text()))

    def _previewed(self, result: dict[str, Any]) -> None:
        self.preview.show_summary(result)
        self._update()

    @Slot()
    def _update(self) -> None:
        training = self.training.busy
        self.start_button.setEnabled(self.checks.is_current() and not training
                                     and not self.checks.preview_blocking())
        self.start_anyway.setEnabled(not training)

    # -- training -------------------------------------------------------------------------
    def start(self, force: bool = False) -> None:
        """Start the checked run; one that will not fit is refused with the verdict's
        line, and `force` (Start anyway) starts it all the same."""
        check = self.checks.current
        if check is None or not self.checks.is_current() or self.training.busy:
            return
        self._say("")
        self.start_anyway.hide()
        self.training.start(check.inputs, force=force)

    @Slot(str)
    def resume(self, run_id: str) -> None:
        if not self.training.busy:
            self._say("")
            self.training.resume(run_id)

    @Slot()
    def stop(self) -> None:
        """Stop the running run after its current step (its adapter is saved)."""
        self.training.stop()

    def _refused(self, message: str) -> None:
        self._say(message)
        self.start_anyway.show()

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("kind") == "note":
            self._say(str(event.get("text", "")))
        else:
            self.panel.add_event(event)

    def _ended(self, run: dict[str, Any]) -> None:
        self._say(f"Run {run['id']}: {run['message']}.")
        self.panel.end_live(select=str(run["id"]))

    def _failed(self, message: str) -> None:
        self._say(message)
        self.panel.end_live()

    def _added(self, entry: dict[str, Any]) -> None:
        self._say(f"Added {entry['name']} to the library.")
        self.added.emit(str(entry["path"]))
        self.refresh_models()

    def _available(self) -> int:
        return self.available_bytes()  # looked up each time: a test may replace it

    @property
    def live_run(self) -> Run | None:
        return self.training.run if self.training.busy else None

    # -- drops and messages --------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths and self.sources.accept_paths(paths):
            event.acceptProposedAction()

    def _say(self, text: str) -> None:
        self.result.setText(text)
        if text:
            self.status_message.emit(text)
