"""One Hub download at a time: progress (bytes, speed, ETA), Pause (keeps the partial), Cancel."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from macllm_app.core.errors import describe
from macllm_app.core.units import human_size
from macllm_app.ui.tasks import Task, TaskContext

STEPS = 1000


def progress_text(p: dict[str, Any]) -> str:
    total = p.get("total")
    text = f"{human_size(p['done'])} of {human_size(total)}" if total else human_size(p["done"])
    text += f" · {human_size(int(p.get('speed_bps') or 0))}/s"
    if p.get("eta_s") is not None:
        text += f" · ETA {p['eta_s']:.0f} s"
    return text


def download(repo_id: str, filename: str | None, ctx: TaskContext[None]) -> dict[str, Any]:
    """Pull a repo file into the library (a task); a cancel pauses it (the partial stays)."""
    from macllm_app.core.library.commands import pull

    def report(p: dict[str, Any]) -> None:
        total = p.get("total") or 0
        ctx.progress(p["done"] / total if total else 0.0, progress_text(p))

    return pull(repo_id, filename, progress=report, should_stop=ctx.should_stop)


class DownloadBar(QWidget):
    downloaded = Signal(object)  # the new library entry (dict)
    message = Signal(str)
    stopped = Signal()  # paused or cancelled

    def __init__(self) -> None:
        super().__init__()
        self.task: Task[dict[str, Any], None] | None = None
        self._target: tuple[str, str | None] | None = None
        self._discard_when_stopped = False
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setObjectName("downloadProgress")
        self.bar.setRange(0, STEPS)
        self.bar.setValue(0)
        self.label = QLabel("")
        self.label.setObjectName("downloadStatus")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseDownload")
        self.pause_button.clicked.connect(self.pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelDownload")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.bar, 1)
        row.addWidget(self.label, 1)
        row.addWidget(self.pause_button)
        row.addWidget(self.cancel_button)
        self._set_running(False)
        self.setVisible(False)

    def is_running(self) -> bool:
        return self.task is not None

    def start(self, repo_id: str, filename: str | None) -> None:
        """Download (or resume a paused download of) this file."""
        if self.task is not None:
            return
        self._target = (repo_id, filename)
        self._discard_when_stopped = False
        self.task = (Task.context(self, lambda ctx: download(repo_id, filename, ctx),
                                  name="download")
                     .on_progress(self._on_progress)
                     .on_done(self._on_finished)
                     .on_error(self._on_failed)
                     .on_cancelled(self._on_stopped))
        self.bar.setValue(0)
        self.label.setText(f"Starting {filename or repo_id}…")
        self.setVisible(True)
        self._set_running(True)
        self.task.start()

    @Slot()
    def pause(self) -> None:
        if self.task is not None:
            self.task.cancel()

    @Slot()
    def cancel(self) -> None:
        """Stop and remove the partial file (a paused download can be cancelled too)."""
        if self.task is not None:
            self._discard_when_stopped = True
            self.task.cancel()
        elif self._target is not None:
            self._discard()

    def _set_running(self, running: bool) -> None:
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running or self._target is not None)

    def _on_progress(self, fraction: float, text: str) -> None:
        self.bar.setValue(round(fraction * STEPS))
        self.label.setText(text)

    def _on_finished(self, entry: dict[str, Any]) -> None:
        self.task = None
        self._target = None
        self.bar.setValue(STEPS)
        self.label.setText("Downloaded")
        self._set_running(False)
        self.message.emit(f"Downloaded {entry['name']}")
        self.downloaded.emit(entry)

    def _on_failed(self, error: BaseException) -> None:
        self.task = None
        message = describe(error)
        self.label.setText(message)
        self._set_running(False)
        self.message.emit(message)

    def _on_stopped(self) -> None:
        self.task = None
        if self._discard_when_stopped:
            self._discard()
            return
        self.label.setText("Paused: Download again to resume")
        self._set_running(False)
        self.stopped.emit()

    def _discard(self) -> None:
        from macllm_app.core.library.commands import discard_pull

        assert self._target is not None
        repo_id, filename = self._target
        self._target = None
        self._set_running(False)
        self.bar.setValue(0)
        self.label.setText("Cancelled")
        if filename is not None:
            (Task.call(self, lambda: discard_pull(repo_id, filename), name="discard download")
             .on_done(lambda _none: self.stopped.emit())
             .on_error(lambda error: self.message.emit(describe(error)))
             .start())


class PausedDownloads(QWidget):
    """Downloads paused earlier, in this run or a previous one, with a Resume button."""

    def __init__(self, downloads: DownloadBar) -> None:
        super().__init__()
        self._downloads = downloads
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Paused downloads"))
        self.choice = QComboBox()
        self.choice.setObjectName("pausedDownloads")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("resumeDownload")
        self.resume_button.clicked.connect(self.resume)
        row.addWidget(self.choice, 1)
        row.addWidget(self.resume_button)
        self.setVisible(False)

    @Slot()
    def refresh(self) -> None:
        from macllm_app.core.library.listing import paused_downloads

        Task.call(self, paused_downloads, key="paused").on_done(self._show).start()

    def _show(self, paused: list[dict[str, Any]]) -> None:
        self.choice.clear()
        for p in paused:
            name = f"{p['repo_id']}/{p['file']}" if p["file"] else p["repo_id"]
            done = f"{human_size(p['done'])} of {human_size(p['total'])}"
            self.choice.addItem(f"{name} ({done})", (p["repo_id"], p["file"]))
        self.setVisible(bool(paused))

    @Slot()
    def resume(self) -> None:
        target = self.choice.currentData()
        if target and not self._downloads.is_running():
            self._downloads.start(*target)
