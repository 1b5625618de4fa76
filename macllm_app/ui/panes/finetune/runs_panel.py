"""The pane's right half: the loss chart and the numbers of the run shown (live while it
trains), the history of runs, and what can be done with the selected one: chat with it,
fuse it, export it to GGUF or as a llama.cpp adapter (jobs, with progress in a strip),
or resume it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from macllm_app.core.errors import describe
from macllm_app.core.finetune.runs import Run, RunStore, StepRecord
from macllm_app.ui.panes.finetune.jobs import RunActions
from macllm_app.ui.panes.finetune.loss_chart import LossChart
from macllm_app.ui.panes.finetune.numbers import RunNumbers
from macllm_app.ui.panes.finetune.runs_view import RunsTable
from macllm_app.ui.tasks import Task
from macllm_app.ui.widgets.job_strip import JobStrip

RESUMABLE = ("stopped", "killed")
HAS_ADAPTER = ("finished", "stopped")


def runs_after_marking_dead() -> list[Run]:
    """Every run, once runs left "running" by a process that is gone are marked killed."""
    import psutil

    store = RunStore()
    alive = {run.pid for run in store.all_runs()
             if run.state == "running" and run.pid and psutil.pid_exists(run.pid)}
    store.mark_dead_runs(alive)
    return store.all_runs()


def _button(text: str, name: str, slot: Callable[[], None], tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button


class RunsPanel(QWidget):
    chat_requested = Signal(str, str)   # the base model, the run's adapter folder
    resume_requested = Signal(str)      # a run id
    added = Signal(dict)                # a library entry made from a run
    message = Signal(str)               # one line for the pane
    history_shown = Signal()
    steps_shown = Signal(str)           # a run's recorded steps are in the chart

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.live_run: str | None = None      # the run training now
        self.training = False                 # a run is being planned or trained
        self.live_estimate: int | None = None
        self.chart = LossChart()
        self.numbers = RunNumbers()
        self.runs = RunsTable()
        self.runs.run_selected.connect(self._run_selected)
        self.chat_button = _button("Chat with it", "finetuneChat", self._chat,
                                   "Load the base model with this run's adapter on MLX")
        self.fuse_button = _button("Fuse", "finetuneFuse", lambda: self._make("fused"),
                                   "The base with the adapter fused in (float16), added to "
                                   "the library")
        self.gguf_button = _button("Export GGUF", "finetuneExportGguf",
                                   lambda: self._make("gguf"),
                                   "The fused model as an F16 GGUF file, added to the library")
        self.adapter_button = _button("Export llama.cpp adapter", "finetuneExportAdapter",
                                      lambda: self._make("adapter"),
                                      "The LoRA adapter as a GGUF file llama.cpp applies")
        self.resume_button = _button("Resume", "finetuneResume", self._resume,
                                     "Go on from the run's last checkpoint")
        self.strip = JobStrip()
        self.jobs = RunActions(self.strip, self)
        self.jobs.added.connect(self.added)
        self.jobs.wrote.connect(lambda path: self.message.emit(
            f"Wrote the llama.cpp adapter {path}."))
        self.jobs.failed.connect(self.message)
        self.jobs.busy_changed.connect(self._update)

        use, make = QHBoxLayout(), QHBoxLayout()
        for row, buttons in ((use, (self.chat_button, self.resume_button)),
                             (make, (self.fuse_button, self.gguf_button, self.adapter_button))):
            for button in buttons:
                row.addWidget(button)
            row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.chart, 2)
        layout.addWidget(self.numbers)
        layout.addWidget(QLabel("<b>Runs</b>"))
        layout.addWidget(self.runs, 1)
        layout.addLayout(use)
        layout.addLayout(make)
        layout.addWidget(self.strip)
        self._update()
        (Task.call(self, runs_after_marking_dead, key="history", name="list fine-tune runs")
         .on_done(self._show_history)
         .on_error(lambda error: self.message.emit(describe(error)))
         .start())

    # -- the live run ------------------------------------------------------------------------
    def set_training(self, busy: bool) -> None:
        self.training = busy
        self._update()

    def start_live(self, run: Run) -> None:
        """`run` starts training: its steps will arrive through `add_event`."""
        self.live_run, self.live_estimate = run.id, run.estimate_bytes
        self.chart.show_run(run.id)
        self.numbers.clear()
        self.refresh(select=run.id)

    def add_event(self, event: dict[str, Any]) -> None:
        if event.get("run_id") == self.live_run and event.get("kind") == "train":
            self.runs.runs.show_step(str(self.live_run), int(event["step"]))
        self.chart.add(event)
        if event.get("run_id") == self.chart.run_id:
            self.numbers.show_event(event, self.live_estimate)

    def end_live(self, select: str | None = None) -> None:
        self.live_run = None
        self.refresh(select=select)

    # -- the history ---------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        (Task.call(self, lambda: RunStore().all_runs(), key="history",
                   name="list fine-tune runs")
         .on_done(lambda runs: self._show_history(runs, select))
         .on_error(lambda error: self.message.emit(describe(error)))
         .start())

    def _show_history(self, runs: list[Run], select: str | None = None) -> None:
        self.runs.show_runs(runs, select)
        self.history_shown.emit()

    def _run_selected(self, run: Run | None) -> None:
        self._update()
        if run is None:
            return
        (Task.call(self, lambda: RunStore().steps(run.id), key="steps", name="read run steps")
         .on_done(lambda records: self._show_steps(run, records))
         .on_error(lambda error: self.message.emit(describe(error)))
         .start())

    def _show_steps(self, run: Run, records: list[StepRecord]) -> None:
        self.chart.show_run(run.id, records)
        if run.id != self.live_run:
            self.numbers.show_run(run, records)
        self.steps_shown.emit(run.id)

    @Slot()
    def _update(self) -> None:
        run = self.runs.selected()
        ready = run is not None and run.state in HAS_ADAPTER and run.id != self.live_run
        self.chat_button.setEnabled(ready)
        for button in (self.fuse_button, self.gguf_button, self.adapter_button):
            button.setEnabled(ready and not self.jobs.busy)
        self.resume_button.setEnabled(run is not None and run.state in RESUMABLE
                                      and not self.training)

    # -- actions ---------------------------------------------------------------------------------
    @Slot()
    def _chat(self) -> None:
        run = self.runs.selected()
        if run is not None:
            self.chat_requested.emit(run.base_model, str(run.adapter_dir))

    def _make(self, kind: str) -> None:
        run = self.runs.selected()
        if run is not None:
            self.message.emit("")
            self.jobs.make(run.id, kind)

    @Slot()
    def _resume(self) -> None:
        run = self.runs.selected()
        if run is not None:
            self.resume_requested.emit(run.id)
