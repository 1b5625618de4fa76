"""The Chat pane: conversation list, message view, composer and chat settings.

All generation goes through a GenerationWorker; the store is only read and
written here for quick local SQLite operations. Each conversation may choose
its engine (settings panel); a reply is generated after the model is loaded
on that engine. "Run on the other engine" answers the last message again on
the other engine, as a sibling reply compared with the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.chat.records import ENGINE_CHOICES, StoredMessage, engine_choice
from macllm_app.core.chat.session import ChatSession
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.types import EngineName, GenerationStats
from macllm_app.core.errors import EngineCrashed
from macllm_app.core.settings import Settings
from macllm_app.ui.engine import EngineController
from macllm_app.ui.panes.chat.comparison import compared_reply
from macllm_app.ui.panes.chat.composer import Composer
from macllm_app.ui.panes.chat.conversation_list import ConversationSidebar
from macllm_app.ui.panes.chat.engine_choice import (
    EngineChoice,
    compare_button,
    compare_target,
    engine_title,
)
from macllm_app.ui.panes.chat.exporter import ChatExporter
from macllm_app.ui.panes.chat.formatting import context_text
from macllm_app.ui.panes.chat.header import ChatHeader
from macllm_app.ui.panes.chat.message_view import MessageView
from macllm_app.ui.panes.chat.settings_panel import ConversationSettingsPanel
from macllm_app.ui.workers import FunctionWorker, GenerationAction, GenerationWorker

log = logging.getLogger("macllm.ui.chat")

SPEED_INTERVAL_S = 0.25


class ChatPane(QWidget):
    status_message = Signal(str)
    streaming_changed = Signal(bool)
    speed_changed = Signal(float)           # live tokens per second
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
        self.worker: GenerationWorker | None = None
        self._waiting_for_model: object | None = None
        self._has_messages = False
        self._title_fresh = True
        self._stream_user_text: str | None = None
        self._stream_text: list[str] = []
        self._stream_conversation: int | None = None
        self._first_token_at: float | None = None
        self._first_token_count = 0
        self._speed_shown_at = 0.0
        self._deleted: list[int] = []
        self._last_reply: StoredMessage | None = None
        self.engines = EngineChoice(engine, self)
        self.engines.changed.connect(self._update_engine_state)
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
        conversation_id = self.conversation_id
        conversation = (self.store.get_conversation(conversation_id)
                        if conversation_id is not None else None)
        path = self.store.active_path(conversation_id) if conversation_id is not None else []
        streaming_here = self._is_streaming_here()
        if streaming_here:  # the reply in progress is shown live, not as stored so far
            path = [m for m in path if m.status != "streaming"]
        self.view.set_messages(conversation_id, path, self._siblings, self._compared)
        self._last_reply = path[-1] if path and path[-1].role == "assistant" else None
        self._show_title(conversation.title if conversation else "New chat")
        if self.settings_panel.conversation_id != conversation_id:
            self.settings_panel.show_conversation(conversation)
        self._show_context(path)
        self._has_messages = bool(path)
        self.composer.set_can_regenerate(self.can_regenerate())
        self._update_engine_state()
        if streaming_here:
            user_text = self._stream_user_text
            if path and path[-1].role == "user" and path[-1].content == user_text:
                user_text = None  # already committed by the session
            self.view.begin_stream(user_text)
            self.view.append_delta("".join(self._stream_text))

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

    def _show_context(self, path: list[StoredMessage]) -> None:
        stats = next((m.stats for m in reversed(path) if m.stats), None)
        label, note = context_text(stats)
        self.context_label.setText(label)
        self.dropped_note.setText(note)
        self.dropped_note.setVisible(bool(note))

    @Slot(int)
    def switch_branch(self, message_id: int) -> None:
        if self.is_streaming():
            return
        self.store.switch_branch(message_id)
        self.refresh_messages()

    @Slot(int)
    def delete_conversation(self, conversation_id: int) -> None:
        if self.is_streaming() and self._stream_conversation == conversation_id:
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
            return None, "There is no reply to run again yet."
        if self.is_streaming():
            return None, "Wait for the reply to finish."
        settings = self.store.get_conversation(self.conversation_id).settings
        chosen = engine_choice(settings) or self.engines.automatic()
        return compare_target(self._last_reply, chosen, self.engines.known())

    @Slot()
    def _update_engine_state(self) -> None:
        """Enable the engines that run the model, and the last reply's compare button."""
        engines = self.engines.known()
        reasons: dict[str, str] = (
            {e: engines.why_not(e) for e in ENGINE_CHOICES} if engines else {})
        self.settings_panel.set_engines(self.engines.automatic(), reasons)
        self.view.set_compare_action(
            compare_button(*self.compare_target()) if self._last_reply is not None else None)
        self.actions_changed.emit()

    @Slot()
    def run_on_other_engine(self) -> None:
        """Answer the last message again on the other engine, beside the last reply; the
        new reply shows both replies' stats. The chat's engine choice stays as it was."""
        target, reason = self.compare_target()
        if target is None or self._last_reply is None:
            if reason:
                self.status_message.emit(reason)
            return
        self._generate("regenerate", engine=target, compare_with=self._last_reply.id)

    def _show_stream_state(self, text: str) -> None:
        if self._is_streaming_here() and self.view.streaming is not None:
            self.view.streaming.set_stats_line(text)

    # -- generation -----------------------------------------------------------
    def can_regenerate(self) -> bool:
        return self._has_messages and not self.is_streaming()

    def is_streaming(self) -> bool:
        return self.worker is not None or self._waiting_for_model is not None

    def _is_streaming_here(self) -> bool:
        return self.is_streaming() and self._stream_conversation == self.conversation_id

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
        if self.worker is not None:
            self.worker.cancel()
            self.status_message.emit("Stopping…")
        elif self._waiting_for_model is not None:
            self._waiting_for_model = None
            self._finish_generation(status="Cancelled before the model was ready.")

    def _generate(self, action: GenerationAction, text: str = "",
                  message_id: int | None = None, *, engine: EngineName | None = None,
                  compare_with: int | None = None) -> None:
        """Generate on `engine`, or else on the engine the conversation chose."""
        assert self.conversation_id is not None
        self.settings_panel.save_now()
        conversation_id = self.conversation_id
        choice = engine or engine_choice(self.store.get_conversation(conversation_id).settings)
        self._stream_conversation = conversation_id
        self._title_fresh = False
        ticket = object()
        self._waiting_for_model = ticket  # a second send is refused while the model loads
        self._stream_user_text = text if action != "regenerate" else None
        self._stream_text = []
        self._hide_replaced(action, message_id)
        self.view.begin_stream(self._stream_user_text)
        self.composer.set_streaming(True)
        self.composer.set_can_regenerate(False)
        self.streaming_changed.emit(True)
        self._update_engine_state()

        def ready(host: EngineHost) -> None:
            if self._waiting_for_model is not ticket:
                return  # stopped while the model was loading
            self._waiting_for_model = None
            self._show_stream_state("generating…")
            worker = GenerationWorker(
                host, lambda: ChatSession(self.store, host, conversation_id,
                                          compare_with=compare_with),
                action, text, message_id)
            worker.token.connect(self._on_token)
            worker.finished.connect(self._on_generation_finished)
            worker.cancelled.connect(self._on_generation_cancelled)
            worker.failed.connect(self._on_generation_failed)
            self.worker = worker
            self._first_token_at = None
            worker.start()

        def failed(message: str) -> None:
            if self._waiting_for_model is ticket:
                self._waiting_for_model = None
                self._finish_generation(f"The model could not be loaded: {message}")
                if action == "send" and not self.composer.text():
                    self.composer.edit.setPlainText(text)  # nothing was saved; keep the words

        def start(resolved: EngineName | None, note: str) -> None:
            if self._waiting_for_model is not ticket:
                return  # stopped meanwhile
            if note:
                self.status_message.emit(note)
            self.engine.when_ready(ready, failed, resolved)
            if self._waiting_for_model is ticket and self.engine.is_loading():
                title = engine_title(resolved or self.engines.automatic())
                self._show_stream_state(f"loading the model on {title}…")

        self.engines.resolve(choice, start)

    def _hide_replaced(self, action: GenerationAction, message_id: int | None) -> None:
        """While a new branch streams, hide what it replaces (kept in the store)."""
        if action == "send" or self.conversation_id is None:
            return
        path = self.store.active_path(self.conversation_id)
        if action == "edit":
            ids = [m.id for m in path]
            path = path[:ids.index(message_id)] if message_id in ids else path
        elif path and path[-1].role == "assistant":
            path = path[:-1]
        self.view.set_messages(self.conversation_id, path, self._siblings)

    @Slot(str)
    def _on_token(self, text: str) -> None:
        worker = self.worker
        if worker is None or self.sender() is not worker:
            return
        self._stream_text.append(text)
        if self._is_streaming_here():
            self.view.append_delta(text)
            if not self._title_fresh:
                self._title_fresh = True
                self._show_title()  # the store has named the chat from its first message
        self.token_received.emit(text)
        now = time.perf_counter()
        if self._first_token_at is None:
            self._first_token_at, self._first_token_count = now, worker.tokens_seen
            self._speed_shown_at = now
        elif now - self._speed_shown_at >= SPEED_INTERVAL_S:
            self._speed_shown_at = now
            decoded = worker.tokens_seen - self._first_token_count
            self.speed_changed.emit(decoded / (now - self._first_token_at))

    @Slot(object)
    def _on_generation_finished(self, stats: object) -> None:
        if isinstance(stats, GenerationStats) and stats.decode_tps > 0:
            self.speed_changed.emit(stats.decode_tps)
        self._finish_generation()

    @Slot()
    def _on_generation_cancelled(self) -> None:
        self._finish_generation(status="Reply stopped.")

    @Slot(str)
    def _on_generation_failed(self, message: str) -> None:
        worker = self.worker
        if worker is not None and isinstance(worker.error, EngineCrashed):
            self.engine.report_crash(message)
        self._finish_generation(message)

    def _finish_generation(self, notice: str | None = None, status: str = "") -> None:
        self.worker = None
        self.composer.set_streaming(False)
        self.sidebar.refresh(select=self.conversation_id)
        self.refresh_messages()  # the stored reply replaces the streamed one (no end_stream:
        # rendering the streamed one whole first was a long stall in a long chat)
        if notice:
            self.view.show_notice(notice)
            self.status_message.emit(notice)
        elif status:
            self.status_message.emit(status)
        self.streaming_changed.emit(False)

    # -- export -----------------------------------------------------------------
    def export(self, kind: str, path: str | None = None) -> FunctionWorker | None:
        """Export the open chat (asking for a file name unless `path` is given)."""
        if self.conversation_id is None:
            return None
        return self.exporter.export(self.conversation_id, kind, path)
