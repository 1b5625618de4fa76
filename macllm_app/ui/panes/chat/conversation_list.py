"""The conversation list (model/view over the store) with full-text search."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.chat.records import Conversation
from macllm_app.core.chat.store import ChatStore

ID_ROLE = Qt.ItemDataRole.UserRole + 1
_MARK_START, _MARK_END = "\x02", "\x03"
Index = QModelIndex | QPersistentModelIndex


class ConversationListModel(QAbstractListModel):
    """Rows of `store.list_conversations()`; editing a title renames it."""

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._rows: list[Conversation] = []
        self.refresh()

    def refresh(self) -> None:
        self.beginResetModel()
        self._rows = self.store.list_conversations()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        conversation = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conversation.title
        if role == ID_ROLE:
            return conversation.id
        if role == Qt.ItemDataRole.ToolTipRole:
            return conversation.title
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsEditable if index.isValid() else base

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        title = str(value).strip()
        if not title:
            return False
        conversation = self._rows[index.row()]
        self.store.rename_conversation(conversation.id, title)
        self._rows[index.row()] = self.store.get_conversation(conversation.id)
        self.dataChanged.emit(index, index)
        return True

    def row_of(self, conversation_id: int) -> int:
        for row, conversation in enumerate(self._rows):
            if conversation.id == conversation_id:
                return row
        return -1


class ConversationSidebar(QWidget):
    """Search box, conversation list or search results, and New/Delete buttons."""

    conversation_selected = Signal(int)
    hit_activated = Signal(int, object)     # conversation id, message id or None
    new_requested = Signal()
    delete_requested = Signal(int)

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("conversationSidebar")
        self.store = store
        self.model = ConversationListModel(store, self)

        self.search = QLineEdit()
        self.search.setObjectName("searchBox")
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._schedule_search)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(150)
        self._search_timer.timeout.connect(self.run_search)

        self.list = QListView()
        self.list.setObjectName("conversationList")
        self.list.setModel(self.model)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setUniformItemSizes(True)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                                  | QAbstractItemView.EditTrigger.DoubleClicked)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.selectionModel().currentChanged.connect(self._on_current)

        self.results = QListWidget()
        self.results.setObjectName("searchResults")
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setWordWrap(True)
        self.results.itemClicked.connect(self._on_hit)
        self.results.itemActivated.connect(self._on_hit)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.list)
        self.stack.addWidget(self.results)

        new = QToolButton()
        new.setObjectName("newChatButton")
        new.setText("New Chat")
        new.setToolTip("New chat")
        new.clicked.connect(self.new_requested)
        header = QHBoxLayout()
        title = QLabel("Chats")
        title.setObjectName("sidebarTitle")
        header.addWidget(title, 1)
        header.addWidget(new)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        layout.addLayout(header)
        layout.addWidget(self.search)
        layout.addWidget(self.stack, 1)

    # -- list -----------------------------------------------------------------
    def refresh(self, select: int | None = None) -> None:
        self.list.selectionModel().blockSignals(True)
        self.model.refresh()
        if select is not None:
            self._select_row(self.model.row_of(select))
        self.list.selectionModel().blockSignals(False)

    def _select_row(self, row: int) -> None:
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row, 0))

    def rename(self, conversation_id: int) -> None:
        row = self.model.row_of(conversation_id)
        if row >= 0:
            self.list.edit(self.model.index(row, 0))

    @Slot(QModelIndex, QModelIndex)
    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.conversation_selected.emit(int(current.data(ID_ROLE)))

    @Slot(QPoint)
    def _context_menu(self, point: QPoint) -> None:
        index = self.list.indexAt(point)
        if not index.isValid():
            return
        conversation_id = int(index.data(ID_ROLE))
        menu = QMenu(self)
        rename = QAction("Rename", menu)
        rename.triggered.connect(lambda: self.list.edit(index))
        delete = QAction("Delete", menu)
        delete.triggered.connect(lambda: self.delete_requested.emit(conversation_id))
        menu.addAction(rename)
        menu.addAction(delete)
        menu.popup(self.list.viewport().mapToGlobal(point))

    # -- search ---------------------------------------------------------------
    @Slot()
    def _schedule_search(self) -> None:
        self._search_timer.start()

    @Slot()
    def run_search(self) -> None:
        query = self.search.text().strip()
        self.results.clear()
        if not query:
            self.stack.setCurrentWidget(self.list)
            return
        self.stack.setCurrentWidget(self.results)
        hits = self.store.search(query, start_mark=_MARK_START, end_mark=_MARK_END)
        if not hits:
            item = QListWidgetItem("No matches")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.results.addItem(item)
            return
        for hit in hits:
            item = QListWidgetItem()
            item.setData(ID_ROLE, (hit.conversation_id, hit.message_id))
            label = QLabel(f"<b>{html.escape(hit.title)}</b><br>"
                           f'<span style="color:#555;">{_highlighted(hit.snippet)}</span>')
            label.setObjectName("searchHit")
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setContentsMargins(6, 4, 6, 4)
            item.setSizeHint(label.sizeHint())
            self.results.addItem(item)
            self.results.setItemWidget(item, label)

    @Slot(QListWidgetItem)
    def _on_hit(self, item: QListWidgetItem) -> None:
        data = item.data(ID_ROLE)
        if data:
            self.hit_activated.emit(int(data[0]), data[1])

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()


def _highlighted(snippet: str) -> str:
    text = html.escape(snippet)
    return (text.replace(_MARK_START, '<b style="background-color:#fff3b0;">')
            .replace(_MARK_END, "</b>"))
