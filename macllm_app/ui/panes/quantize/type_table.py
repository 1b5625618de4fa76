"""The list of types a source can be quantized to on one engine: each with its bits per
weight, expected size and fit on this machine (rows from `core.quantize.choices`)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from macllm_app.core.quantize.choices import QuantChoice
from macllm_app.core.units import human_size

HEADERS = ("Type", "Bits/weight", "Size", "Fits this Mac", "Note")
FIT_TEXT = {"fits": "Fits", "tight": "Tight", "wont_fit": "Won't fit"}
FIT_COLOR = {"fits": "#248a3d", "tight": "#c93400", "wont_fit": "#d70015"}
Index = QModelIndex | QPersistentModelIndex


class ChoiceModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[QuantChoice] = []

    def set_rows(self, rows: list[QuantChoice]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.name, f"{row.bits_per_weight:.2f}", human_size(row.expected_bytes),
                    FIT_TEXT[row.fit], row.note)[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            return QColor(FIT_COLOR[row.fit])
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class TypeTable(QTableView):
    """One row per choice; `chosen()` is the selected one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quantizeTypes")
        self.choices = ChoiceModel()
        self.setModel(self.choices)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def show_choices(self, rows: list[QuantChoice], select: str) -> None:
        before = self.chosen()
        self.choices.set_rows(rows)
        wanted = before.name if before is not None and before.engine == (
            rows[0].engine if rows else "") else select
        self.select_name(wanted)

    def select_name(self, name: str) -> bool:
        for index, row in enumerate(self.choices.rows):
            if row.name == name:
                self.selectRow(index)
                return True
        return False

    def chosen(self) -> QuantChoice | None:
        rows = self.selectionModel().selectedRows()
        return self.choices.rows[rows[0].row()] if rows else None
