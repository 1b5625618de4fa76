"""The collapsible per-conversation panel: engine, system prompt and sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.chat.records import (
    ENGINE_SETTING,
    Conversation,
    engine_choice,
)
from macllm_app.core.settings import SamplingSettings
from macllm_app.core.types import ENGINES, EngineName, engine_named, engine_title
from macllm_app.ui.widgets.schema_form import SchemaForm

SAVE_DELAY_MS = 400
ENGINE_HELP = ("Which engine runs this chat's model. Automatic: MLX for MLX folders, "
               "llama.cpp for GGUF files. Sending reloads the model on the chosen engine.")


class ConversationSettingsPanel(QScrollArea):
    """Edits one conversation's engine, system prompt and sampling; emits `changed`
    (debounced)."""

    changed = Signal(int, str, dict)  # conversation id, system prompt, settings

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
        engine_label = QLabel("Engine:")
        self.engine_box = QComboBox()
        self.engine_box.setObjectName("engineChoice")
        self.engine_box.setToolTip(ENGINE_HELP)
        engine_label.setBuddy(self.engine_box)
        self.engine_box.addItem("Automatic", None)
        for engine in ENGINES:
            self.engine_box.addItem(engine_title(engine), engine)
        self.engine_box.currentIndexChanged.connect(lambda _i: self._schedule_save())
        self.engine_note = QLabel()
        self.engine_note.setObjectName("engineNote")
        self.engine_note.setWordWrap(True)
        self.engine_note.hide()
        self._reasons: dict[str, str] = {}
        for widget in (engine_label, self.engine_box, self.engine_note):
            self._layout.addWidget(widget)
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
        choice = engine_choice(conversation.settings) if conversation is not None else None
        self.engine_box.setCurrentIndex(max(0, self.engine_box.findData(choice)))
        self._show_engine_note()
        values: dict[str, Any] = self.defaults().model_dump()
        if conversation is not None:
            values.update(conversation.settings)
        if self.form is not None:
            self._layout.removeWidget(self.form)
            self.form.deleteLater()
        self.form = SchemaForm(SamplingSettings, values)
        self.form.form_layout.setContentsMargins(0, 8, 0, 0)
        self.form.changed.connect(self._schedule_save)
        self._layout.insertWidget(self._layout.indexOf(self.system_prompt) + 1, self.form)
        self.setEnabled(conversation is not None)
        self._loading = False

    def engine(self) -> EngineName | None:
        """The engine chosen for this chat (None: automatic)."""
        data = self.engine_box.currentData()
        return engine_named(data)

    def set_engines(self, automatic: str | None, reasons: dict[str, str]) -> None:
        """Name the automatic engine; disable engines with a reason they cannot run the model
        (a chosen one stays selected, with a note: Automatic is used meanwhile)."""
        self.engine_box.setItemText(0, f"Automatic ({engine_title(automatic)})"
                                    if automatic else "Automatic")
        self._reasons = {e: r for e, r in reasons.items() if r}
        model = self.engine_box.model()
        assert isinstance(model, QStandardItemModel)
        for row in range(1, self.engine_box.count()):
            item = model.item(row)
            reason = self._reasons.get(str(self.engine_box.itemData(row)), "")
            item.setEnabled(not reason)
            item.setToolTip(reason)
        self._show_engine_note()

    def _show_engine_note(self) -> None:
        reason = self._reasons.get(self.engine() or "", "")
        self.engine_note.setText(f"{reason} Automatic is used." if reason else "")
        self.engine_note.setVisible(bool(reason))

    @Slot()
    def _schedule_save(self) -> None:
        if not self._loading and self.conversation_id is not None:
            self._show_engine_note()
            self._dirty = True
            self._timer.start()

    @Slot()
    def save_now(self) -> None:
        """Save pending edits at once (also called before a reply is generated)."""
        self._timer.stop()
        if not self._dirty or self.conversation_id is None or self.form is None:
            return
        self._dirty = False
        settings = self.form.values()
        if (engine := self.engine()) is not None:
            settings[ENGINE_SETTING] = engine
        self.changed.emit(self.conversation_id, self.system_prompt.toPlainText(), settings)
