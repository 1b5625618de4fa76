"""The Chat pane: conversation list, message view, composer and chat settings.

The pane lays out and binds: generation belongs to the `ChatController` (its
signals say what to show), the rules of engines and comparisons to
`core.chat`. The store is read and written here only for quick local SQLite
operations. "Run on the other engine" answers the last message again on the
other engine, as a sibling reply compared with the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from macllm_app.core.chat.comparison import compared_reply
from macllm_app.core.chat.engine_choice import NO_REPLY, compare_button, compare_target
from macllm_app.core.chat.records import StoredMessage, engine_choice
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.formats.lora_adapter import adapter_label
from macllm_app.core.settings import Settings
from macllm_app.core.types import EngineName, GenerationStats, LoadConfig
from macllm_app.ui.engine import EngineController
from macllm_app.ui.panes.chat.composer import Composer
from macllm_app.ui.panes.chat.controller import Action, ChatController, Turn, TurnEnd
from macllm_app.ui.panes.chat.conversation_list import ConversationSidebar
from macllm_app.ui.panes.chat.engine_choice import EngineChoice
from macllm_app.ui.panes.chat.exporter import ChatExporter
from macllm_app.ui.panes.chat.formatting import context_text
from macllm_app.ui.panes.chat.header import ChatHeader
from macllm_app.ui.panes.chat.message_view import MessageView
from macllm_app.ui.panes.chat.settings_panel import ConversationSettingsPanel
from macllm_app.ui.tasks import Task

WITHOUT_ADAPTER = "Run without the adapter"
ON_SOURCE = "Run on the source model"

class ChatPane(QWidget):
    status_message = Signal(str)
    streaming_changed = Signal(bool)
    speed_changed = Signal(float)           # live tokens per second, from the engine
    reply_stats = Signal(object)            # GenerationStats of each reply that ends
    token_received = Signal(str)
    title_changed = Signal(str)
    conversation_changed = Signal(object)   # conversation id or None
    conversation_deleted = Signal(int, str)  # id, title (for the Undo toast)
    actions_changed = Signal()              # what the chat's actions can do has changed

    def __init__(self, store: ChatStore, engine: EngineController,
                 settings: Callable[[], Settings], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatPane")
        self.store = store
        self.engine = engine
        self.settings = settings
        self.conversation_id: int | None = None
        self._has_messages = False
        self._title_fresh = True
        self._deleted: list[int] = []
        self._last_reply: StoredMessage | None = None
        self._source: tuple[str, LoadConfig] | None = None  # (quantized model, its source)
        self.engines = EngineChoice(engine, self)
        self.engines.changed.connect(self._update_engine_state)
        self.controller = ChatController(store, engine, self.engines, self)
        self.exporter = ChatExporter(store, self)
        self.exporter.status_message.connect(self.status_message)

        self.sidebar = ConversationSidebar(store)
        self.view = MessageView()
        self.composer = Composer()
        self.settings_panel = ConversationSettingsPanel(lambda: settings().sampling)
        self.settings_panel.hide()
        header = ChatHeader()
        self.title = header.title
        self.context_label = header.context_label
        self.settings_button = header.settings_button
        self.settings_button.toggled.connect(self.settings_panel.setVisible)
        self.dropped_note = QLabel()
        self.dropped_note.setObjectName("droppedNote")
        self.dropped_note.setWordWrap(True)
        self.dropped_note.hide()
        center = QWidget()
        center.setObjectName("chatCenter")
        column = QVBoxLayout(center)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(header)
        column.addWidget(self.view, 1)
        column.addWidget(self.dropped_note)
        column.addWidget(self.composer)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("chatSplitter")
        splitter.addWidget(self.sidebar)
        splitter.addWidget(center)
        splitter.addWidget(self.settings_panel)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 700, 280])
        splitter.setChildrenCollapsible(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self._bind()

    def _bind(self) -> None:
        self.sidebar.conversation_selected.connect(self.open_conversation)
        self.sidebar.hit_activated.connect(self._open_hit)
        self.sidebar.new_requested.connect(self.new_conversation)
        self.sidebar.delete_requested.connect(self.delete_conversation)
        self.composer.submitted.connect(self.send)
        self.composer.edit_submitted.connect(self.edit_and_resend)
        self.composer.stop_requested.connect(self.stop)
        self.composer.regenerate_requested.connect(self.regenerate)
        self.view.branch_requested.connect(self.switch_branch)
        self.view.edit_requested.connect(self.composer.start_edit)
        self.view.compare_requested.connect(self.run_on_other_engine)
        self.settings_panel.changed.connect(self._save_conversation_settings)
        controller = self.controller
        controller.turn_started.connect(self._on_turn_started)
        controller.turn_state.connect(self._on_turn_state)
        controller.reply_grew.connect(self._on_reply_grew)
        controller.turn_ended.connect(self._on_turn_ended)
        controller.speed.connect(self.speed_changed)
        controller.status_message.connect(self.status_message)

    # -- conversations --------------------------------------------------------
    @Slot()
    def new_conversation(self) -> int:
        defaults = self.settings()
        conversation = self.store.create_conversation(
            system_prompt=defaults.chat.system_prompt,
            settings=defaults.sampling.model_dump())
        self.sidebar.refresh(select=conversation.id)
        self.open_conversation(conversation.id)
        self.composer.edit.setFocus()
        return conversation.id

    @Slot(int)
    def open_conversation(self, conversation_id: int | None,
                          message_id: int | None = None) -> None:
        if conversation_id is not None:
            try:
                self.store.get_conversation(conversation_id)
            except KeyError:
                conversation_id = None
        changed = conversation_id != self.conversation_id
        self.conversation_id = conversation_id
        if changed:
            self.composer.cancel_edit()
            self.sidebar.refresh(select=conversation_id)
            self.conversation_changed.emit(conversation_id)
        self.refresh_messages()
        if message_id is not None:
            self.view.reveal(message_id)

    @Slot(int, object)
    def _open_hit(self, conversation_id: int, message_id: object) -> None:
        self.open_conversation(conversation_id,
                               message_id if isinstance(message_id, int) else None)

    def refresh_messages(self) -> None:
        """Show the open conversation as stored (and the reply streaming in it, if any)."""
        conversation_id = self.conversation_id
        conversation = (self.store.get_conversation(conversation_id)
                        if conversation_id is not None else None)
        path = self.store.active_path(conversation_id) if conversation_id is not None else []
        turn = self._turn_here()
        if turn is not None:  # the reply in progress is shown live, not as stored so far
            path = [m for m in path if m.status != "streaming"]
        self.view.set_messages(conversation_id, path, self._siblings, self._compared)
        self._show_title(conversation.title if conversation else "New chat")
        if self.settings_panel.conversation_id != conversation_id:
            self.settings_panel.show_conversation(conversation)
        self._show_path_state(path)
        if turn is not None:
            user_text = turn.user_text
            if path and path[-1].role == "user" and path[-1].content == user_text:
                user_text = None  # already committed by the session
            self.view.begin_stream(user_text, turn.reply)

    def _show_path_state(self, path: list[StoredMessage]) -> None:
        """The header, composer and engine state for the messages on screen."""
        self._last_reply = path[-1] if path and path[-1].role == "assistant" else None
        stats = next((m.stats for m in reversed(path) if m.stats), None)
        label, note = context_text(stats)
        self.context_label.setText(label)
        self.dropped_note.setText(note)
        self.dropped_note.setVisible(bool(note))
        self._has_messages = bool(path)
        self.composer.set_can_regenerate(self.can_regenerate())
        self._update_engine_state()

    def _show_title(self, title: str | None = None) -> None:
        if title is None and self.conversation_id is not None:
            title = self.store.get_conversation(self.conversation_id).title
            self.sidebar.refresh(select=self.conversation_id)
        title = title or "New chat"
        if title != self.title.text():
            self.title.setText(title)
            self.title_changed.emit(title)

    def _siblings(self, message: StoredMessage) -> tuple[int, list[int]] | None:
        siblings = self.store.siblings(message.id)
        if len(siblings) < 2:
            return None
        ids = [m.id for m in siblings]
        return ids.index(message.id), ids

    def _compared(self, message: StoredMessage) -> StoredMessage | None:
        return compared_reply(self.store, message)

    @Slot(int)
    def switch_branch(self, message_id: int) -> None:
        if self.is_streaming():
            return
        self.store.switch_branch(message_id)
        self.refresh_messages()

    @Slot(int)
    def delete_conversation(self, conversation_id: int) -> None:
        turn = self.controller.turn
        if turn is not None and turn.conversation_id == conversation_id:
            self.status_message.emit("Stop the reply before deleting this chat.")
            return
        title = self.store.get_conversation(conversation_id).title
        self.store.delete_conversation(conversation_id)
        self._deleted.append(conversation_id)
        self.sidebar.refresh(select=self.conversation_id)
        if conversation_id == self.conversation_id:
            remaining = self.store.list_conversations()
            self.open_conversation(remaining[0].id if remaining else None)
        self.conversation_deleted.emit(conversation_id, title)

    def can_undo_delete(self) -> bool:
        return bool(self._deleted)

    @Slot()
    def undo_delete(self) -> int | None:
        if not self._deleted:
            return None
        conversation_id = self._deleted.pop()
        self.store.restore_conversation(conversation_id)
        self.sidebar.refresh(select=conversation_id)
        self.open_conversation(conversation_id)
        self.status_message.emit("Chat restored.")
        return conversation_id

    @Slot(int, str, dict)
    def _save_conversation_settings(self, conversation_id: int, system_prompt: str,
                                    settings: dict[str, object]) -> None:
        self.store.update_conversation(conversation_id, system_prompt=system_prompt,
                                       settings=settings)

    # -- engines ------------------------------------------------------------------
    def compare_target(self) -> tuple[EngineName | None, str]:
        """The engine "Run on the other engine" would use now, or None and why not."""
        if self.conversation_id is None:
            return None, NO_REPLY
        if self.is_streaming():
            return None, "Wait for the reply to finish."
        settings = self.store.get_conversation(self.conversation_id).settings
        chosen = engine_choice(settings) or self.engines.automatic()
        return compare_target(self._last_reply, chosen, self.engines.known())

    def set_source_model(self, variant: str, source: LoadConfig) -> None:
        """Offer "Run on the source model" under replies of `variant` (a quantized model,
        loaded as the app's model) with `source`, the model it was quantized from."""
        self._source = (variant, source)
        self._update_engine_state()

    def _instead(self) -> tuple[LoadConfig, str, str] | None:
        """What the compare button runs instead of the app's model, with its text and
        tooltip: the base model without its adapter, or a quantized model's source (when
        the last reply was written by the adapter or the quantized model); None when it
        runs the other engine."""
        config = self.engine.base_config()
        last = self._last_reply
        stats = GenerationStats.from_dict(last.stats) if last is not None else None
        if config is None or stats is None:
            return None
        if config.adapter_path:
            if stats.model.endswith(f" + {adapter_label(config.adapter_path)}"):
                return (replace(config, adapter_path=None), WITHOUT_ADAPTER,
                        "Send the last message to the base model without the adapter, as a "
                        "new version of this reply, and compare the two replies.")
            return None
        shown = Path(config.source_path or config.model_path)
        name = shown.stem if shown.suffix.lower() == ".gguf" else shown.name
        if self._source is not None and self._source[0] == config.model_path \
                and stats.model == name:
            return (self._source[1], ON_SOURCE,
                    f"Send the last message to {Path(self._source[1].model_path).name}, the "
                    "model this one was quantized from, and compare the two replies.")
        return None

    def compares_instead(self) -> bool:
        """Whether the compare button runs another model rather than the other engine."""
        return self._instead() is not None

    def compare_action(self) -> tuple[str, bool, str]:
        """The compare button's text, enabled state and tooltip."""
        instead = self._instead()
        if instead is not None:
            return instead[1], not self.is_streaming(), instead[2]
        return compare_button(*self.compare_target())

    @Slot()
    def _update_engine_state(self) -> None:
        """Enable the engines that run the model, and the last reply's compare button."""
        engines = self.engines.known()
        self.settings_panel.set_engines(self.engines.automatic(),
                                        engines.reasons() if engines else {})
        self.view.set_compare_action(
            self.compare_action() if self._last_reply is not None else None)
        self.actions_changed.emit()

    @Slot()
    def run_on_other_engine(self) -> None:
        """Answer the last message again on the other engine (or on the base model without
        its adapter, or on a quantized model's source: see `_instead`), beside the last
        reply; the new reply shows both replies' stats. The chat's engine choice and model
        stay as they were."""
        instead = self._instead()
        if instead is not None and self._last_reply is not None:
            if not self.is_streaming():
                self._generate("regenerate", compare_with=self._last_reply.id,
                               instead=instead[0])
            return
        target, reason = self.compare_target()
        if target is None or self._last_reply is None:
            if reason:
                self.status_message.emit(reason)
            return
        self._generate("regenerate", engine=target, compare_with=self._last_reply.id)

    # -- generation -----------------------------------------------------------
    def can_regenerate(self) -> bool:
        return self._has_messages and not self.is_streaming()

    def is_streaming(self) -> bool:
        return self.controller.is_busy()

    def _turn_here(self) -> Turn | None:
        turn = self.controller.turn
        return turn if turn is not None and turn.conversation_id == self.conversation_id \
            else None

    @Slot(str)
    def send(self, text: str) -> None:
        if self.is_streaming() or not text.strip():
            return
        if self.conversation_id is None:
            self.new_conversation()
        self._generate("send", text=text)

    @Slot()
    def regenerate(self) -> None:
        if (not self.is_streaming() and self.conversation_id is not None
                and self.store.active_path(self.conversation_id)):
            self._generate("regenerate")

    @Slot(int, str)
    def edit_and_resend(self, message_id: int, text: str) -> None:
        if not self.is_streaming() and self.conversation_id is not None:
            self._generate("edit", text=text, message_id=message_id)

    @Slot()
    def stop(self) -> None:
        self.controller.stop()

    def _generate(self, action: Action, text: str = "", message_id: int | None = None, *,
                  engine: EngineName | None = None, compare_with: int | None = None,
                  instead: LoadConfig | None = None) -> None:
        assert self.conversation_id is not None
        self.settings_panel.save_now()
        self.controller.start(self.conversation_id, action, text, message_id, engine=engine,
                              compare_with=compare_with, instead=instead)

    def _on_turn_started(self, turn: Turn) -> None:
        self._title_fresh = False
        self._hide_replaced(turn)
        self.view.begin_stream(turn.user_text, turn.reply)
        self.composer.set_streaming(True)
        self.composer.set_can_regenerate(False)
        self.streaming_changed.emit(True)
        self._update_engine_state()

    def _hide_replaced(self, turn: Turn) -> None:
        """While a new branch streams, hide what it replaces (kept in the store)."""
        if turn.action == "send":
            return
        path = self.store.active_path(turn.conversation_id)
        if turn.action == "edit":
            ids = [m.id for m in path]
            path = path[:ids.index(turn.message_id)] if turn.message_id in ids else path
        elif path and path[-1].role == "assistant":
            path = path[:-1]
        self.view.set_messages(turn.conversation_id, path, self._siblings)

    def _on_turn_state(self, turn: Turn, text: str) -> None:
        if turn is self._turn_here() and self.view.streaming is not None:
            self.view.streaming.set_stats_line(text)

    def _on_reply_grew(self, turn: Turn, text: str) -> None:
        if turn is self._turn_here():
            self.view.reply_grew()
            if not self._title_fresh:
                self._title_fresh = True
                self._show_title()  # the store has named the chat from its first message
        self.token_received.emit(text)

    def _on_turn_ended(self, end: TurnEnd) -> None:
        stats = GenerationStats.from_dict(end.stored[-1].stats) if end.stored else None
        if stats is not None:
            self.reply_stats.emit(stats)
        self.composer.set_streaming(False)
        self.sidebar.refresh(select=self.conversation_id)
        if end.turn.conversation_id == self.conversation_id:
            if end.stored and end.stored[-1].role == "assistant":
                self.view.finish_stream(end.stored)  # the stored reply replaces the streamed one
                self._show_path_state(self.view.messages())
            else:
                self.refresh_messages()  # nothing new was stored: show the chat as it was
            if not self._title_fresh:
                self._show_title()
        if end.notice:
            self.view.show_notice(end.notice)
            self.status_message.emit(end.notice)
        elif end.status:
            self.status_message.emit(end.status)
        if end.restore_text and not self.composer.text():
            self.composer.edit.setPlainText(end.restore_text)  # nothing was saved; keep the words
        self.streaming_changed.emit(False)

    # -- export -----------------------------------------------------------------
    def export(self, kind: str, path: str | None = None) -> Task[str, None] | None:
        """Export the open chat (asking for a file name unless `path` is given)."""
        if self.conversation_id is None:
            return None
        return self.exporter.export(self.conversation_id, kind, path)
