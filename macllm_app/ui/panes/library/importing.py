"""Import from drops and "Open With": local paths only, Link-or-Copy asked, run as a task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QMimeData, QObject, QUrl, Signal
from PySide6.QtGui import QDropEvent, QFileOpenEvent
from PySide6.QtWidgets import QMessageBox, QWidget

from macllm_app.core.errors import describe
from macllm_app.ui.tasks import Task


def local_paths(urls: list[QUrl]) -> list[str]:
    return [url.toLocalFile() for url in urls if url.isLocalFile() and url.toLocalFile()]


def mime_paths(mime: QMimeData) -> list[str]:
    """The local files in a drop; empty when anything else (web links, text) is dropped."""
    if not mime.hasUrls():
        return []
    urls = mime.urls()
    paths = local_paths(urls)
    return paths if len(paths) == len(urls) else []


def accept_file_drop(event: QDropEvent) -> list[str]:
    """Accept a drag or drop of local files (returning their paths); ignore anything else.
    A QDragEnterEvent is a QDropEvent too."""
    paths = mime_paths(event.mimeData())
    if paths:
        event.acceptProposedAction()
    else:
        event.ignore()
    return paths


class FileOpenFilter(QObject):
    """Routes the macOS FileOpen event (Dock drop, Finder "Open With") to `open_paths`."""

    def __init__(self, open_paths: Callable[[list[str]], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._open_paths = open_paths

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            paths = local_paths([event.url()]) or ([event.file()] if event.file() else [])
            if paths:
                self._open_paths(paths)
                return True
        return super().eventFilter(watched, event)


class Importer(QObject):
    """Asks Link in place vs Copy (a sheet, not a blocking dialog), then imports as a task.

    `done` carries the list of per-path results from core.library.commands.import_models.
    """

    done = Signal(object)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._parent = parent
        self.dialog: QMessageBox | None = None

    def ask(self, paths: list[str]) -> None:
        if not paths:
            return
        box = QMessageBox(self._parent)
        box.setObjectName("importModeDialog")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Import models")
        names = ", ".join(p.rsplit("/", 1)[-1] for p in paths[:5])
        more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
        box.setText(f"Import {names}{more}?")
        box.setInformativeText("Link in place keeps the files where they are. Copy puts a copy "
                               "in MacLLM's models folder.")
        link = box.addButton("Link in Place", QMessageBox.ButtonRole.AcceptRole)
        copy = box.addButton("Copy", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(link)

        def chosen(button: Any) -> None:
            self.dialog = None
            if button is link:
                self.run(paths, "link")
            elif button is copy:
                self.run(paths, "copy")

        box.buttonClicked.connect(chosen)
        self.dialog = box
        box.open()

    def run(self, paths: list[str], mode: str) -> None:
        from macllm_app.core.library.commands import import_models

        (Task.call(self, lambda: import_models(paths, mode), name="import models")
         .on_done(self.done.emit)
         .on_error(lambda error: self.done.emit([{"path": "", "error": describe(error)}]))
         .start())
