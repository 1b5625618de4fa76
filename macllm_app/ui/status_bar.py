"""Status bar: loaded model, engine, device, live speed, memory pressure, load progress,
and a short-lived Undo button."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar, QWidget

from macllm_app.core.library.mlx_copies import PROGRESS_PREFIX as MLX_COPY_PROGRESS
from macllm_app.core.types import ModelInfo

UNDO_TIMEOUT_MS = 10_000
PRESSURE_TEXT = {"normal": "Memory: normal", "warning": "Memory: under pressure",
                 "critical": "Memory: critical", "unknown": "Memory: –"}


def _label(name: str, text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    return label


class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusBar")
        self.model_label = _label("statusModel", "No model loaded")
        self.engine_label = _label("statusEngine")
        self.device_label = _label("statusDevice")
        self.speed_label = _label("statusSpeed")
        self.memory_label = _label("statusMemory", PRESSURE_TEXT["unknown"])
        self._loading_name = ""
        self.progress = QProgressBar()
        self.progress.setObjectName("loadProgress")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(160)
        self.progress.setMaximumHeight(12)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.undo_button = QPushButton("Undo")
        self.undo_button.setObjectName("undoButton")
        self.undo_button.setFlat(True)
        self.undo_button.hide()
        self._undo: Callable[[], object] | None = None
        self.undo_button.clicked.connect(self._on_undo)
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_TIMEOUT_MS)
        self._undo_timer.timeout.connect(self.hide_undo)
        self.toast_label = _label("toastLabel")
        self.toast_label.hide()
        for widget in (self.toast_label, self.undo_button, self.progress, self.model_label,
                       self.engine_label, self.device_label, self.speed_label, self.memory_label):
            self.addPermanentWidget(widget)

    def set_loading(self, name: str, engine: str = "") -> None:
        self._loading_name = name
        self.model_label.setText(f"Loading {name}…")
        self.engine_label.setText(engine)
        self.device_label.clear()
        self.progress.setValue(0)
        self.progress.setToolTip("")
        self.progress.show()

    @Slot(float, str)
    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        if message:
            self.progress.setToolTip(message)
        if message.startswith(MLX_COPY_PROGRESS):  # the first run of a GGUF model on MLX
            self.model_label.setText(f"Loading {self._loading_name}… making its MLX copy")

    def set_model(self, info: ModelInfo | None, note: str = "No model loaded") -> None:
        self.progress.hide()
        if info is None:
            self.model_label.setText(note)
            self.engine_label.clear()
            self.device_label.clear()
            return
        self.model_label.setText(info.name)
        self.model_label.setToolTip(info.path)
        self.engine_label.setText(info.engine)
        self.device_label.setText(info.device.upper() if len(info.device) <= 4
                                  else info.device)

    @Slot(float)
    def set_speed(self, tokens_per_s: float) -> None:
        self.speed_label.setText(f"{tokens_per_s:.1f} tok/s")

    def clear_speed(self) -> None:
        self.speed_label.clear()

    @Slot(object)
    def set_memory_pressure(self, level: object) -> None:
        self.memory_label.setText(PRESSURE_TEXT.get(str(level), PRESSURE_TEXT["unknown"]))
        self.memory_label.setProperty("level", str(level))

    def show_undo(self, text: str, undo: Callable[[], object]) -> None:
        self._undo = undo
        self.toast_label.setText(text)
        self.toast_label.show()
        self.undo_button.show()
        self._undo_timer.start()

    @Slot()
    def hide_undo(self) -> None:
        self._undo = None
        self.undo_button.hide()
        self.toast_label.hide()

    @Slot()
    def _on_undo(self) -> None:
        undo, self._undo = self._undo, None
        self.hide_undo()
        if undo is not None:
            undo()
