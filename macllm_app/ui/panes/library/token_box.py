"""The Hugging Face token: stored only in the OS keychain (via set_hf_token), never shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from macllm_app.core.errors import describe
from macllm_app.ui.tasks import Task


class TokenBox(QWidget):
    def __init__(self) -> None:
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Hugging Face token"))
        self.edit = QLineEdit()
        self.edit.setObjectName("hfToken")
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("hf_… (for gated models; kept in the keychain)")
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(self.save)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove)
        self.status = QLabel("")
        self.status.setObjectName("hfTokenStatus")
        self.status.setWordWrap(True)
        for w in (self.edit, self.save_button, self.remove_button):
            w.setEnabled(False)
        row.addWidget(self.edit, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.remove_button)
        row.addWidget(self.status, 1)
        self._asked = False

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._asked:  # the keychain is first asked when the box is seen
            self._asked = True
            self.refresh()

    def _run(self, change: Callable[[], None] | None = None) -> None:
        """Make `change` to the keychain (if any), then show what it holds."""
        from macllm_app.core.library import commands

        def call() -> dict[str, Any]:
            if change is not None:
                change()
            return commands.hf_token_status()

        (Task.call(self, call, key="token", name="Hub token")
         .on_done(self._show)
         .on_error(lambda error: self.status.setText(describe(error)))
         .start())

    @Slot()
    def refresh(self) -> None:
        self._run()

    @Slot()
    def save(self) -> None:
        from macllm_app.core.library.commands import set_hf_token

        token = self.edit.text()
        self.edit.clear()
        self._run(lambda: set_hf_token(token))

    @Slot()
    def remove(self) -> None:
        from macllm_app.core.library.commands import delete_hf_token

        self._run(delete_hf_token)

    def _show(self, status: dict[str, Any]) -> None:
        secure = bool(status["secure_keychain"])
        self.edit.setEnabled(secure)
        self.save_button.setEnabled(secure)
        self.remove_button.setEnabled(secure and bool(status["token_stored"]))
        if not secure:
            self.status.setText(status["message"])
        else:
            self.status.setText("A token is stored in the keychain." if status["token_stored"]
                                else "No token stored.")
