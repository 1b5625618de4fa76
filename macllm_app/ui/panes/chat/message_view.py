"""The scrolling list of messages of one conversation, and the streaming reply.

Cost rules: only the last WINDOW messages get widgets ("Show earlier" adds
more, older ones are built a few per event-loop turn), widgets are reused
across refreshes, and while a reply streams only its own widget changes,
at most every RENDER_INTERVAL_MS with every delta since the last render
coalesced; of the reply only the open Markdown block is rendered again
(see stream_body), so a render costs the same early and late in a reply.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from macllm_app.core.chat.records import StoredMessage
from macllm_app.ui.panes.chat.message_widget import MessageWidget
from macllm_app.ui.panes.chat.reply_buffer import ReplyBuffer
from macllm_app.ui.widgets.stack_box import StackBox

WINDOW = 40
FIRST_BATCH = 12   # widgets built at once when a chat opens; the rest follow in batches
BATCH = 10
GROW_BUDGET_S = 0.005  # widget building per event-loop turn while the rest follow
EMPTY_TEXT = ("<p style='font-size:20px; color:#1d1d1f;'><b>What can I help with?</b></p>"
              "<p style='color:#8e8e93;'>Your chats stay on this computer. Press Enter to send, "
              "Shift+Enter for a new line.</p>")
RENDER_INTERVAL_MS = 50

SiblingLookup = Callable[[StoredMessage], tuple[int, list[int]] | None]
ComparedLookup = Callable[[StoredMessage], StoredMessage | None]
_Key = tuple[int, float, str, tuple[int, ...]]


class MessageView(QScrollArea):
    branch_requested = Signal(int)
    edit_requested = Signal(int, str)
    compare_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageView")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        container = QWidget()
        container.setObjectName("messageContainer")
        outer = QVBoxLayout(container)
        outer.setContentsMargins(24, 16, 24, 16)
        outer.setSpacing(10)
        # Stored messages and the turn in progress live in separate boxes: when the
        # streaming reply grows, only the small box is laid out again; the history
        # box keeps its cached height.
        self._history = StackBox(spacing=10)
        self._turn = QWidget()
        self._turn_layout = QVBoxLayout(self._turn)
        self._turn_layout.setContentsMargins(0, 0, 0, 0)
        self._turn_layout.setSpacing(10)
        self.earlier_button = QPushButton()
        self.earlier_button.setObjectName("showEarlier")
        self.earlier_button.setFlat(True)
        self.earlier_button.clicked.connect(self.show_earlier)
        self.earlier_button.hide()
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.notice = QLabel()
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        outer.addWidget(self.empty_label)
        outer.addWidget(self.earlier_button)
        outer.addWidget(self._history)
        outer.addWidget(self._turn)
        outer.addWidget(self.notice)
        outer.addStretch(1)
        self.setWidget(container)

        self.conversation_id: int | None = None
        self._messages: list[StoredMessage] = []
        self._shown = WINDOW
        self._built = WINDOW
        self._widgets: dict[int, tuple[_Key, MessageWidget]] = {}
        self._order: list[MessageWidget] = []
        self._pending: list[MessageWidget] = []
        self._siblings: SiblingLookup = lambda _m: None
        self._compared: ComparedLookup = lambda _m: None
        self._compare_action: tuple[str, bool, str] | None = None  # text, enabled, tip
        self._compare_shown_on: int | None = None  # message id

        self.streaming: MessageWidget | None = None
        self._reply: ReplyBuffer | None = None
        self._stream_dirty = False
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_INTERVAL_MS)
        self._render_timer.timeout.connect(self._render_stream)
        self._stick_to_bottom = True
        self._grow_timer = QTimer(self)
        self._grow_timer.setSingleShot(True)
        self._grow_timer.setInterval(0)
        self._grow_timer.timeout.connect(self._grow)
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)

    # -- whole conversation -------------------------------------------------
    def set_messages(self, conversation_id: int | None, messages: list[StoredMessage],
                     siblings: SiblingLookup, compared: ComparedLookup | None = None) -> None:
        """Show `messages`, reusing the widgets of those unchanged since last time.
        `compared` finds the reply a reply is compared with (see comparison.py)."""
        if conversation_id != self.conversation_id:
            self._drop_all()
            self.conversation_id = conversation_id
            self._shown = WINDOW
            self._built = FIRST_BATCH
            self._stick_to_bottom = True
        self._messages = messages
        self._siblings = siblings
        if compared is not None:
            self._compared = compared
        self._clear_pending()
        self._rebuild()
        if self._built < min(self._shown, len(messages)):
            self._grow_timer.start()

    @Slot()
    def _grow(self) -> None:
        """Build older widgets, at most BATCH and about GROW_BUDGET_S per event-loop turn
        (a reply may be streaming meanwhile: each turn is a stall for it)."""
        deadline = time.perf_counter() + GROW_BUDGET_S
        target = min(self._shown, len(self._messages))
        older: list[MessageWidget] = []
        for _ in range(BATCH):
            if self._built >= target:
                break
            self._built += 1
            widget = self._widget_for(self._messages[-self._built])[1]
            self._history.adopt(widget)  # styling it is much of its cost: count it here
            older.insert(0, widget)
            if time.perf_counter() >= deadline:
                break
        # The messages shown so far are unchanged: add the older ones above them
        # (a full _rebuild would look up every shown message's branches again).
        self._order = older + self._order
        self._history.set_widgets(self._order)
        if self._built < target:
            self._grow_timer.start()

    def show_earlier(self) -> None:
        self._shown += WINDOW
        self._built = self._shown
        self._stick_to_bottom = False
        self._rebuild()

    def reveal(self, message_id: int) -> None:
        """Make sure `message_id` has a widget, and scroll to it."""
        ids = [m.id for m in self._messages]
        if message_id not in ids:
            return
        needed = len(ids) - ids.index(message_id)
        if needed > min(self._shown, self._built):
            self._shown = self._built = max(needed, self._shown)
            self._rebuild()
        widget = self._widgets[message_id][1]
        self._stick_to_bottom = False
        QTimer.singleShot(0, lambda: self.ensureWidgetVisible(widget, 0, 40))
        widget.setProperty("highlight", True)
        widget.style().unpolish(widget)
        widget.style().polish(widget)

    def messages(self) -> list[StoredMessage]:
        """The stored messages the view shows (its conversation's active path)."""
        return list(self._messages)

    def message_widgets(self) -> list[MessageWidget]:
        return [*self._order, *self._pending]

    def _rebuild(self) -> None:
        count = min(self._shown, self._built)
        visible = self._messages[-count:] if count else []
        keep = {message.id: self._widget_for(message) for message in visible}
        order = [widget for _key, widget in keep.values()]
        for message_id, (_key, widget) in self._widgets.items():
            if message_id not in keep:
                widget.deleteLater()
        self._widgets = keep
        self._history.set_widgets(order)
        self._order = order
        self._update_empty()
        hidden = len(self._messages) - min(self._shown, len(self._messages))
        self.earlier_button.setText(f"Show {min(hidden, WINDOW)} earlier messages "
                                    f"({hidden} hidden)")
        self.earlier_button.setVisible(hidden > 0)
        self._show_compare_action()

    def set_compare_action(self, action: tuple[str, bool, str] | None) -> None:
        """The last reply's "Run on the other engine" button: (text, enabled, tooltip),
        or None to hide it."""
        self._compare_action = action
        self._show_compare_action()

    def _show_compare_action(self) -> None:
        last = self._order[-1] if self._order else None
        shown = self._widgets.get(self._compare_shown_on or -1)
        if shown is not None and shown[1] is not last:
            shown[1].set_compare_action(False)
        self._compare_shown_on = None
        if last is None or last.message is None:
            return
        if self._compare_action is None:
            last.set_compare_action(False)
            return
        last.set_compare_action(True, *self._compare_action)
        self._compare_shown_on = last.message.id

    def _widget_for(self, message: StoredMessage) -> tuple[_Key, MessageWidget]:
        """The widget showing `message`: the cached one while it is unchanged."""
        info = self._siblings(message)
        key: _Key = (message.id, message.updated_at, message.status,
                     tuple(info[1]) if info else ())
        old = self._widgets.get(message.id)
        if old is not None and old[0] == key:
            return old
        if old is not None:
            old[1].deleteLater()
        self._widgets[message.id] = (key, self._make_widget(message, info))
        return self._widgets[message.id]

    def _make_widget(self, message: StoredMessage,
                     info: tuple[int, list[int]] | None) -> MessageWidget:
        compared = (self._compared(message)
                     if message.stats and message.stats.get("compared_with") else None)
        widget = MessageWidget(message.role, message, info, compared=compared)
        widget.branch_requested.connect(self.branch_requested)
        widget.edit_requested.connect(self.edit_requested)
        widget.compare_requested.connect(self.compare_requested)
        return widget

    def _drop_all(self) -> None:
        self._history.set_widgets([])
        for _key, widget in self._widgets.values():
            widget.deleteLater()
        self._widgets.clear()
        self._order = []
        self._clear_pending()
        self.hide_notice()

    # -- streaming ------------------------------------------------------------
    def begin_stream(self, user_text: str | None, reply: ReplyBuffer) -> None:
        """Show the user's words (if new) and the reply as `reply` fills."""
        self._clear_pending()
        if user_text is not None:
            self._append_pending(MessageWidget("user"))
            self._pending[-1].set_text(user_text)
        self.streaming = MessageWidget("assistant")
        self.streaming.set_stats_line("generating…")
        self._append_pending(self.streaming)
        self._update_empty()
        self._reply = reply
        self._stick_to_bottom = True
        self.hide_notice()
        if reply.text():
            self.reply_grew()

    def reply_grew(self) -> None:
        """The streaming reply has new text: render it at the next tick."""
        self._stream_dirty = True
        if not self._render_timer.isActive():
            self._render_timer.start()

    def streamed_text(self) -> str:
        return self._reply.text() if self._reply is not None else ""

    @Slot()
    def _render_stream(self) -> None:
        if self.streaming is not None and self._reply is not None and self._stream_dirty:
            self._stream_dirty = False
            self.streaming.stream_text(self._reply.text())

    def finish_stream(self, stored: list[StoredMessage]) -> None:
        """The turn ended: its stored messages (the user's, if new, and the reply) take
        the place of the streamed ones, below the history; nothing else is rebuilt."""
        self._clear_pending()
        known = {message.id for message in self._messages}
        added = [message for message in stored if message.id not in known]
        self._messages = [*self._messages, *added]
        self._shown += len(added)
        self._built += len(added)
        self._order = [*self._order, *(self._widget_for(message)[1] for message in added)]
        self._history.set_widgets(self._order)
        self._update_empty()
        self._show_compare_action()

    def _update_empty(self) -> None:
        self.empty_label.setVisible(not self._order and not self._pending)

    def _append_pending(self, widget: MessageWidget) -> None:
        self._turn_layout.addWidget(widget)
        self._pending.append(widget)
        self._turn.show()

    def _clear_pending(self) -> None:
        # The pending widgets go: no final render of the reply (it would cost a full
        # layout of it just before the stored message's widget takes its place).
        self._render_timer.stop()
        self.streaming = None
        self._reply = None
        for widget in self._pending:
            self._turn_layout.removeWidget(widget)
            widget.deleteLater()
        self._pending = []
        self._turn.hide()

    # -- notices and scrolling ----------------------------------------------
    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.show()
        self._stick_to_bottom = True

    def hide_notice(self) -> None:
        self.notice.clear()
        self.notice.hide()

    @Slot(int, int)
    def _on_range_changed(self, _low: int, high: int) -> None:
        if self._stick_to_bottom:
            self.verticalScrollBar().setValue(high)

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        self._stick_to_bottom = value >= self.verticalScrollBar().maximum() - 4
