"""Convert to MLX / Export to GGUF (F16) for the chosen library model.

The actions (shared by the details buttons and the table's context menu) are
enabled only where the conversion applies; otherwise they say why. The work
runs in a job process (it needs mlx, which the GUI never imports), with its
progress and a Cancel button in the pane's job strip; the result is added to
the library.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.errors import describe
from macllm_app.core.jobs import Job
from macllm_app.core.library import conversions as core
from macllm_app.core.units import human_size
from macllm_app.ui.tasks import Task
from macllm_app.ui.widgets.job_strip import JobStrip

BUSY = "Wait for the running conversion to finish, or cancel it."
#: A cancelled conversion is killed after this long (what it staged is then removed),
#: so quitting the app is never held up by a long native call.
CANCEL_GRACE_S = 3.0


def _bind(button: QPushButton, action: QAction) -> None:
    """Let a push button mirror an action (text, enabled, visible, tooltip)."""

    def sync() -> None:
        button.setText(action.text())
        button.setEnabled(action.isEnabled())
        button.setVisible(action.isVisible())
        button.setToolTip(action.toolTip())

    action.changed.connect(sync)
    button.clicked.connect(action.trigger)
    sync()


def mlx_copy_text(info: dict[str, Any]) -> str:
    if info["mlx_copy"]:
        return (f"Ready for the MLX engine ({human_size(info['mlx_copy_bytes'])}) "
                f"at {info['mlx_copy']}")
    return "Made on first use on MLX (converted once, with progress, into the models folder)."


class ConversionActions(QObject):
    """The convert / export actions, their details section, dialogs and job."""

    added = Signal(str)  # the path of a model the library gained
    message = Signal(str)

    def __init__(self, parent: QWidget, strip: JobStrip) -> None:
        super().__init__(parent)
        self._parent = parent
        self.strip = strip
        strip.cancel_requested.connect(self.cancel)
        self.row: dict[str, Any] | None = None
        self.info: dict[str, Any] | None = None
        self.job: Job | None = None
        self._task: Task[Any, None] | None = None
        self.dialog: QMessageBox | None = None
        self.error_box: QMessageBox | None = None

        self.convert_action = QAction("Convert to MLX…", self)
        self.convert_action.setObjectName("convertToMlx")
        self.convert_action.triggered.connect(self.convert_selected)
        self.export_action = QAction("Export to GGUF (F16)…", self)
        self.export_action.setObjectName("exportToGguf")
        self.export_action.triggered.connect(self.export_selected)

        self.section = QWidget()
        self.section.setObjectName("conversionSection")
        self.mlx_copy = QLabel("")
        self.mlx_copy.setObjectName("mlxCopy")
        self.mlx_copy.setWordWrap(True)
        self.convert_button = QPushButton()
        self.convert_button.setObjectName("convertButton")
        _bind(self.convert_button, self.convert_action)
        self.export_button = QPushButton()
        self.export_button.setObjectName("exportButton")
        _bind(self.export_button, self.export_action)
        self.reason = QLabel("")
        self.reason.setObjectName("conversionReason")
        self.reason.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.convert_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self.section)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(self.mlx_copy)
        layout.addLayout(buttons)
        layout.addWidget(self.reason)
        self._update()

    # -- state ------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.job is not None

    def set_row(self, row: dict[str, Any] | None) -> None:
        if row is None or self.row is None or row["path"] != self.row["path"]:
            self.info = None
        self.row = row
        self._update()

    @Slot(object)
    def set_details(self, details: object) -> None:
        if not isinstance(details, dict) or self.row is None:
            return
        if details["metadata"]["path"] == self.row["path"]:
            self.info = details.get("conversion")
            self._update()

    def _update(self) -> None:
        row, info = self.row, self.info
        is_gguf = row is not None and row["format"] == "gguf"
        self.convert_action.setVisible(is_gguf)
        self.export_action.setVisible(row is not None and not is_gguf)
        action = self.convert_action if is_gguf else self.export_action
        other = self.export_action if is_gguf else self.convert_action
        other.setEnabled(False)
        reason = None if info is None else info["to_mlx" if is_gguf else "to_gguf"]
        if self.busy:
            action.setEnabled(False)
            action.setToolTip(BUSY)
        elif row is None or info is None:
            action.setEnabled(False)
            action.setToolTip("")
        else:
            action.setEnabled(reason is None)
            action.setToolTip(reason or (
                "Make an MLX folder of this model and add it to the library" if is_gguf
                else "Write this model as an F16 GGUF file for llama.cpp and add it to the "
                     "library"))
        self.reason.setText(reason or "")
        self.reason.setVisible(bool(reason))
        copy_text = mlx_copy_text(info) if is_gguf and info and reason is None else ""
        self.mlx_copy.setText(f"MLX copy: {copy_text}" if copy_text else "")
        self.mlx_copy.setVisible(bool(copy_text))
        self.section.setVisible(row is not None)

    # -- asking -------------------------------------------------------------------
    def _ask(self, name: str, title: str, text: str, info: str, choose: str,
             go: Callable[[], None], choose_other: Callable[[], None]) -> None:
        """Open a non-blocking question: its first button runs `go`, the `choose`
        button `choose_other` (pick another destination), Cancel nothing."""
        box = QMessageBox(self._parent)
        box.setObjectName(name)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(title)
        box.setText(text)
        box.setInformativeText(info)
        go_button = box.addButton(title.split(" ", 1)[0], QMessageBox.ButtonRole.AcceptRole)
        box.addButton(choose, QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(go_button)
        self.dialog = box

        def chosen(button: Any) -> None:
            self.dialog = None
            role = box.buttonRole(button)
            if role == QMessageBox.ButtonRole.AcceptRole:
                go()
            elif role == QMessageBox.ButtonRole.ActionRole:
                choose_other()

        box.buttonClicked.connect(chosen)
        box.open()

    @Slot()
    def convert_selected(self) -> None:
        row = self.row
        if row is None or self.busy or not self.convert_action.isEnabled():
            return
        src = Path(row["path"])
        dest = core.default_mlx_dest(src)

        def choose_folder() -> None:
            folder = QFileDialog.getExistingDirectory(
                self._parent, "Folder for the MLX model", str(dest.parent))
            if folder:
                self.start_convert(src, core.default_mlx_dest(src, Path(folder)))

        self._ask("convertDialog", "Convert to MLX", f"Convert {row['name']} to MLX?",
                  f"The MLX folder will be {dest}, added to the library.", "Choose Folder…",
                  lambda: self.start_convert(src, dest), choose_folder)

    @Slot()
    def export_selected(self) -> None:
        row = self.row
        if row is None or self.busy or not self.export_action.isEnabled():
            return
        src = Path(row["path"])
        dest = core.default_gguf_dest(src)

        def choose_file() -> None:
            name, _ = QFileDialog.getSaveFileName(
                self._parent, "Export to GGUF", str(dest), "GGUF models (*.gguf)")
            if name:
                self.start_export(src, Path(name))

        self._ask("exportDialog", "Export to GGUF (F16)",
                  f"Export {row['name']} as an F16 GGUF file for llama.cpp?",
                  f"The file will be {dest}, added to the library.", "Choose File…",
                  lambda: self.start_export(src, dest), choose_file)

    # -- running --------------------------------------------------------------------
    def start_convert(self, src: Path, dest: Path) -> None:
        self._start(core.CONVERT_TARGET, core.CONVERT_TITLE, src, dest)

    def start_export(self, src: Path, dest: Path) -> None:
        self._start(core.EXPORT_TARGET, core.EXPORT_TITLE, src, dest)

    def _start(self, target: str, title: str, src: Path, dest: Path) -> None:
        if self.busy:
            return
        self.job = Job(target, (str(src), str(dest)), title=title,
                       cancel_grace_s=CANCEL_GRACE_S, after_crash=core.partial_cleanup(dest))
        self._task = (Task.job(self, self.job)
                      .on_progress(self.strip.set_progress)
                      .on_done(self._finished)
                      .on_error(self._failed)
                      .on_cancelled(self._cancelled))
        self.strip.start(title)
        self._update()
        self._task.start()

    @Slot()
    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _end(self) -> str:
        title = self.strip.title
        self.job, self._task = None, None
        self.strip.finish()
        self._update()
        return title

    def _finished(self, entry: dict[str, Any]) -> None:
        title = self._end()
        self.message.emit(f"{title}: added {entry['name']} to the library")
        self.added.emit(str(entry["path"]))

    def _failed(self, error: BaseException) -> None:
        title = self._end()
        message = describe(error)
        self.message.emit(message)
        box = QMessageBox(QMessageBox.Icon.Warning, f"{title} failed", message,
                          QMessageBox.StandardButton.Ok, self._parent)
        box.setObjectName("conversionError")
        self.error_box = box
        box.open()

    def _cancelled(self) -> None:
        title = self._end()
        self.message.emit(f"{title}: cancelled")
