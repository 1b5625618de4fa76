"""Export the open conversation: ask for a file name, let the core write it as a task."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from macllm_app.core.chat.export import export_json, export_markdown, write_export
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.errors import describe
from macllm_app.ui.tasks import Task

ExportKind = Literal["markdown", "json"]
_FORMATS: dict[str, tuple[str, str]] = {"markdown": (".md", "Markdown (*.md)"),
                                         "json": (".json", "JSON (*.json)")}


def suggested_name(title: str, kind: str) -> str:
    safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in title).strip()
    return f"{safe or 'chat'}{_FORMATS[kind][0]}"


class ChatExporter(QObject):
    status_message = Signal(str)

    def __init__(self, store: ChatStore, parent: QWidget) -> None:
        super().__init__(parent)
        self.store = store
        self._dialog_parent = parent

    def export(self, conversation_id: int, kind: str,
               path: str | None = None) -> Task[str, None] | None:
        """Write `conversation_id` as `kind` to `path` (asked for when None)."""
        if path is None:
            title = self.store.get_conversation(conversation_id).title
            path, _ = QFileDialog.getSaveFileName(
                self._dialog_parent, "Export chat",
                str(Path.home() / suggested_name(title, kind)), _FORMATS[kind][1])
            if not path:
                return None
        render = export_markdown if kind == "markdown" else export_json
        store = self.store

        target = path

        def write() -> str:
            write_export(target, render(store, conversation_id))
            return target

        return (Task.call(self, write, name="export chat")
                .on_done(lambda done: self.status_message.emit(f"Exported to {done}"))
                .on_error(lambda error: self.status_message.emit(
                    f"Export failed: {describe(error)}"))
                .start())
