"""The input box: Enter sends, Shift+Enter starts a new line; Stop while streaming."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

MAX_LINES = 8


class PromptEdit(QPlainTextEdit):
    """Grows with its text up to MAX_LINES; Enter emits `submitted`."""

    submitted = Signal()
    escaped = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("promptEdit")
        self.setPlaceholderText("Message MacLLM…")
        self.setToolTip("Enter sends; Shift+Enter starts a new line")
        self.setTabChangesFocus(True)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escaped.emit()
        super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    @Slot()
    def _fit(self) -> None:
        self.ensurePolished()  # the style sheet sets the font, border and padding
        line = self.fontMetrics().lineSpacing()
        wanted = max(1, int(self.document().size().height()))
        lines = min(MAX_LINES, wanted)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if wanted > MAX_LINES
                                        else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        chrome = int(self.document().documentMargin() * 2) + 2 * self.frameWidth()
        self.setFixedHeight(lines * line + chrome + 2)


class Composer(QFrame):
    """Prompt box plus Send/Stop and Regenerate; also hosts "editing message" mode."""

    submitted = Signal(str)
    edit_submitted = Signal(int, str)
    stop_requested = Signal()
    regenerate_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self.editing_id: int | None = None
        self.streaming = False

        self.edit_banner = QWidget()
        banner = QHBoxLayout(self.edit_banner)
        banner.setContentsMargins(4, 0, 4, 0)
        self.edit_label = QLabel("Editing a message — Enter resends it as a new branch")
        self.edit_label.setObjectName("editBanner")
        cancel_edit = QToolButton()
        cancel_edit.setText("Cancel")
        cancel_edit.setAutoRaise(True)
        cancel_edit.clicked.connect(self.cancel_edit)
        banner.addWidget(self.edit_label, 1)
        banner.addWidget(cancel_edit)
        self.edit_banner.hide()

        self.edit = PromptEdit()
        self.edit.submitted.connect(self._submit)
        self.edit.escaped.connect(self._on_escape)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self._send_or_stop)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setObjectName("regenerateButton")
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        self.regenerate_button.setEnabled(False)

        row = QHBoxLayout()
        row.setSpacing(8)
        row.addWidget(self.edit, 1, Qt.AlignmentFlag.AlignTop)
        buttons = QVBoxLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.regenerate_button)
        buttons.addStretch(1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 8, 16, 12)
        layout.setSpacing(4)
        layout.addWidget(self.edit_banner)
        layout.addLayout(row)

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_streaming(self, streaming: bool) -> None:
        self.streaming = streaming
        self.send_button.setText("Stop" if streaming else "Send")
        self.send_button.setProperty("stop", streaming)
        self.send_button.style().unpolish(self.send_button)
        self.send_button.style().polish(self.send_button)

    def set_can_regenerate(self, enabled: bool) -> None:
        self.regenerate_button.setEnabled(enabled)

    def start_edit(self, message_id: int, text: str) -> None:
        self.editing_id = message_id
        self.edit.setPlainText(text)
        self.edit_banner.show()
        self.edit.setFocus()
        self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)

    @Slot()
    def cancel_edit(self) -> None:
        if self.editing_id is not None:
            self.editing_id = None
            self.edit.clear()
        self.edit_banner.hide()

    @Slot()
    def _send_or_stop(self) -> None:
        if self.streaming:
            self.stop_requested.emit()
        else:
            self._submit()

    @Slot()
    def _submit(self) -> None:
        text = self.text().strip()
        if not text or self.streaming:
            return
        self.edit.clear()
        if self.editing_id is not None:
            message_id, self.editing_id = self.editing_id, None
            self.edit_banner.hide()
            self.edit_submitted.emit(message_id, text)
        else:
            self.submitted.emit(text)

    @Slot()
    def _on_escape(self) -> None:
        if self.editing_id is not None:
            self.cancel_edit()
