"""Memory guardrails: a model that won't fit is loaded only with the user's say, and
rising memory pressure is explained where the user is working (the chat, a job).

The numbers come from the library's estimate (`core.library.loading.check_fit`)
and the hardware monitor's samples; nothing here blocks the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from macllm_app.ui.engine import EngineController
from macllm_app.ui.monitor_feed import MonitorFeed
from macllm_app.ui.panes.chat.pane import ChatPane
from macllm_app.ui.widgets.job_strip import JobStrip

PRESSURE_ADVICE = {
    "warning": ("Memory is under pressure: the system has started compressing and "
                "swapping. A shorter context, a smaller quantization, or unloading the other "
                "model (Monitor pane) frees memory."),
    "critical": ("Memory pressure is critical: replies will slow to a crawl and the system "
                 "may stop apps. Stop the reply, then use a shorter context, a smaller "
                 "quantization, or unload the model (Monitor pane)."),
}
JOB_ADVICE = {
    "warning": "Memory is under pressure: close other apps or unload the model (Monitor pane).",
    "critical": ("Memory pressure is critical: the job may be stopped by the system; cancel "
                 "it or free memory now."),
}


class Guardrails(QObject):
    def __init__(self, window: QWidget, engine: EngineController, feed: MonitorFeed,
                 chat: ChatPane, jobs: Sequence[JobStrip], say: Callable[[str], None]) -> None:
        super().__init__(window)
        self._window = window
        self._engine = engine
        self._chat = chat
        self._jobs = list(jobs)  # every pane's job strip (Library, Quantize, Fine-tune)
        self._say = say
        self.question: QMessageBox | None = None
        engine.fit_refused.connect(self._ask_to_load)
        feed.pressure_rose.connect(self._explain_pressure)

    @Slot(str)
    def _ask_to_load(self, why: str) -> None:
        """A sheet, not a blocking dialog: Load Anyway or Cancel."""
        box = QMessageBox(self._window)
        box.setObjectName("wontFitDialog")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Load a model that won't fit?")
        box.setText("This model probably needs more memory than is free now.")
        box.setInformativeText(f"{why} Loading it anyway may make the whole system very slow.")
        load = box.addButton("Load Anyway", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def chosen(button: object) -> None:
            self.question = None
            if button is load:
                self._engine.load_anyway()
            else:
                self._engine.decline()

        box.buttonClicked.connect(chosen)
        self.question = box
        box.open()

    @Slot(str)
    def _explain_pressure(self, level: str) -> None:
        if self._chat.is_streaming():
            self._chat.view.show_notice(PRESSURE_ADVICE[level])
        for strip in self._jobs:
            if strip.isVisible():
                strip.warn(JOB_ADVICE[level])
        self._say(PRESSURE_ADVICE[level])
