"""The Server pane's request log: the last requests the server finished, newest last."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

if TYPE_CHECKING:
    from macllm_app.core.server.app import RequestRecord

MAX_ROWS = 1000
COLUMNS = ("Time", "Client", "Method", "Path", "Model", "Status", "Tokens", "Duration")
_RIGHT = frozenset({"Status", "Tokens", "Duration"})
#: starting widths in characters; the path column takes the rest
WIDTHS = {"Time": 9, "Client": 17, "Method": 8, "Model": 22, "Status": 7, "Tokens": 7,
          "Duration": 10}
Index = QModelIndex | QPersistentModelIndex


def cells(record: RequestRecord) -> tuple[str, ...]:
    """One record as the table shows it (tokens: those generated)."""
    duration = record.duration_s
    return (
        time.strftime("%H:%M:%S", time.localtime(record.time)),
        record.client,
        record.method,
        record.path,
        record.model,
        str(record.status),
        str(record.completion_tokens) if record.completion_tokens else "",
        f"{duration * 1000:.0f} ms" if duration < 1 else f"{duration:.2f} s",
    )


def details(record: RequestRecord) -> str:
    """The row's tooltip."""
    parts = [f"{record.method} {record.path} from {record.client or 'unknown'}: "
             f"{record.status}"]
    if record.model:
        parts.append(f"model {record.model}")
    if record.prompt_tokens or record.completion_tokens:
        parts.append(f"{record.prompt_tokens} prompt + {record.completion_tokens} generated "
                     "tokens")
    if record.finish_reason:
        parts.append(f"finished: {record.finish_reason}")
    return "; ".join(parts)


class RequestLogModel(QAbstractTableModel):
    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        super().__init__()
        self.max_rows = max_rows
        self.rows: deque[tuple[str, ...]] = deque()
        self.records: deque[RequestRecord] = deque()

    def add(self, record: RequestRecord) -> None:
        if len(self.rows) >= self.max_rows:
            self.beginRemoveRows(QModelIndex(), 0, 0)
            self.rows.popleft()
            self.records.popleft()
            self.endRemoveRows()
        row = len(self.rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self.rows.append(cells(record))
        self.records.append(record)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.rows.clear()
        self.records.clear()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return details(self.records[index.row()])
        if role == Qt.ItemDataRole.TextAlignmentRole and COLUMNS[index.column()] in _RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None
