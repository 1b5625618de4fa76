"""Helpers for Library pane tests: open the pane, wait for its listing, answer its dialogs."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget


def open_library(qtbot: Any, window: Any) -> Any:
    pane = window.panes["library"]
    with qtbot.waitSignal(pane.refreshed, timeout=20_000):
        window.show_pane("library")
    return pane


def refresh(qtbot: Any, pane: Any) -> None:
    with qtbot.waitSignal(pane.refreshed, timeout=20_000):
        pane.refresh()


def rows_by_path(pane: Any) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in pane.model.rows()}


def cells(pane: Any, path: str) -> list[str]:
    """The table's cells, as shown, of the model at `path`."""
    proxy = pane.proxy
    for r in range(proxy.rowCount()):
        if proxy.index(r, 0).data(Qt.ItemDataRole.ToolTipRole) == path:
            return [proxy.index(r, c).data() for c in range(proxy.columnCount())]
    raise AssertionError(f"{path} is not in the table")


def click_box_button(qtbot: Any, parent: QWidget, name: str, text: str) -> None:
    """Click the button labelled `text` in the open (non-blocking) message box `name`."""
    qtbot.waitUntil(lambda: parent.findChild(QMessageBox, name) is not None
                    and parent.findChild(QMessageBox, name).isVisible(), timeout=5000)
    box = parent.findChild(QMessageBox, name)
    button = next(b for b in box.buttons() if b.text().replace("&", "") == text)
    box.setObjectName("")  # answered; a later box with the same name is a new one
    button.click()


def answer_next_modal(button: QMessageBox.StandardButton) -> None:
    """Answer the next blocking QMessageBox (question/warning) with `button`."""

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(button).click()
        else:
            QTimer.singleShot(20, answer)

    QTimer.singleShot(0, answer)
