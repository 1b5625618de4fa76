"""The collapsible per-conversation panel: system prompt and sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QScrollArea, QVBoxLayout, QWidget

from macllm_app.core.chat.records import Conversation
from macllm_app.core.settings import SamplingSettings
from macllm_app.ui.widgets.schema_form import SchemaForm

SAVE_DELAY_MS = 400


class ConversationSettingsPanel(QScrollArea):
    """Edits one conversation's system prompt and sampling; emits `changed` (debounced)."""

    changed = Signal(int, str, dict)  # conversation id, system prompt, sampling settings

    def __init__(self, defaults: Callable[[], SamplingSettings],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("conversationSettings")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(260)
        self.defaults = defaults
        self.conversation_id: int | None = None
        self._inner = QWidget()
        self._layout = QVBoxLayout(self._inner)
        self._layout.setContentsMargins(12, 12, 12, 12)
        title = QLabel("Chat settings")
        title.setObjectName("panelTitle")
        self._layout.addWidget(title)
        self._layout.addWidget(QLabel("System prompt:"))
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setObjectName("systemPrompt")
        self.system_prompt.setFixedHeight(110)
        self.system_prompt.textChanged.connect(self._schedule_save)
        self._layout.addWidget(self.system_prompt)
        self.form: SchemaForm | None = None
        self._layout.addStretch(1)
        self.setWidget(self._inner)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        self._loading = False
        self._dirty = False

    def show_conversation(self, conversation: Conversation | None) -> None:
        self.save_now()
        self._loading = True
        self.conversation_id = conversation.id if conversation is not None else None
        self.system_prompt.setPlainText(conversation.system_prompt if conversation else "")
        values: dict[str, Any] = self.defaults().model_dump()
        if conversation is not None:
            values.update(conversation.settings)
        if self.form is not None:
            self._layout.removeWidget(self.form)
            self.form.deleteLater()
        self.form = SchemaForm(SamplingSettings, values)
        self.form.form_layout.setContentsMargins(0, 8, 0, 0)
        self.form.changed.connect(self._schedule_save)
        self._layout.insertWidget(3, self.form)
        self.setEnabled(conversation is not None)
        self._loading = False

    @Slot()
    def _schedule_save(self) -> None:
        if not self._loading and self.conversation_id is not None:
            self._dirty = True
            self._timer.start()

    @Slot()
    def save_now(self) -> None:
        """Save pending edits at once (also called before a reply is generated)."""
        self._timer.stop()
        if not self._dirty or self.conversation_id is None or self.form is None:
            return
        self._dirty = False
        self.changed.emit(self.conversation_id, self.system_prompt.toPlainText(),
                          self.form.values())
