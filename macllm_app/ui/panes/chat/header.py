"""The bar above the messages: chat title, context-window use, chat settings toggle."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget


class ChatHeader(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatHeader")
        self.title = QLabel("New chat")
        self.title.setObjectName("chatTitle")
        self.context_label = QLabel()
        self.context_label.setObjectName("contextLabel")
        self.context_label.setToolTip("Tokens used by the last reply (prompt + reply) "
                                      "out of the model's context window")
        self.settings_button = QToolButton()
        self.settings_button.setObjectName("toggleSettings")
        self.settings_button.setText("Chat Settings")
        self.settings_button.setCheckable(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(20, 10, 12, 6)
        layout.addWidget(self.title, 1)
        layout.addWidget(self.context_label)
        layout.addWidget(self.settings_button)
