"""A strip showing a running job: what it does, a progress bar, Cancel (or Stop)."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

STEPS = 1000


class JobStrip(QWidget):
    cancel_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("jobStrip")
        self.title = ""
        self.cancelling = "Cancelling"
        self.label = QLabel("")
        self.label.setObjectName("jobMessage")
        self.label.setMinimumWidth(120)
        self.bar = QProgressBar()
        self.bar.setObjectName("jobProgress")
        self.bar.setRange(0, STEPS)
        self.bar.setMaximumWidth(260)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("jobCancel")
        self.cancel_button.clicked.connect(self._cancel)
        self.warning = QLabel("")
        self.warning.setObjectName("jobWarning")
        self.warning.setWordWrap(True)
        self.warning.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.warning, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.hide()

    def warn(self, text: str) -> None:
        """Say something the user should know while the job runs (memory pressure)."""
        self.warning.setText(text)
        self.warning.setVisible(bool(text))

    def start(self, title: str, *, cancel_text: str = "Cancel",
              cancelling: str = "Cancelling", tip: str = "") -> None:
        """Show `title` running; the button reads `cancel_text`, then `cancelling`…"""
        self.warn("")
        self.title = title
        self.cancelling = cancelling
        self.label.setText(f"{title}…")
        self.bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText(cancel_text)
        self.cancel_button.setToolTip(tip)
        self.show()

    @Slot(float, str)
    def set_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(round(min(max(fraction, 0.0), 1.0) * STEPS))
        self.label.setText(f"{self.title}: {message}" if message else self.title)

    @Slot()
    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText(f"{self.cancelling}…")
        self.label.setText(f"{self.title}: {self.cancelling.lower()}…")
        self.cancel_requested.emit()

    def finish(self) -> None:
        self.hide()
        self.title = ""
