"""Library rows (dicts from core.library.listing) as a Qt table model."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from macllm_app.core.types import engine_title
from macllm_app.core.units import human_size

COLUMNS = ("Name", "Format", "Engines", "Size", "Quant", "Context", "Fit", "Source")
FIT_LABELS = {"fits": "Fits", "tight": "Tight", "wont_fit": "Won't fit"}
FIT_COLORS = {"fits": "#248a3d", "tight": "#b25000", "wont_fit": "#d70015"}
ROW_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


def engines_text(engines: list[str] | tuple[str, ...] | None) -> str:
    return ", ".join(engine_title(e) for e in engines or ())


def _cell(row: dict[str, Any], column: int) -> str:
    name = COLUMNS[column]
    if name == "Name":
        return str(row["name"])
    if name == "Format":
        return "GGUF" if row["format"] == "gguf" else "MLX"
    if name == "Engines":
        return engines_text(row.get("engines"))
    if name == "Size":
        return human_size(row.get("size_bytes"))
    if name == "Quant":
        return str(row.get("quantization") or "?")
    if name == "Context":
        ctx = row.get("context_length")
        return f"{ctx:,}" if ctx else "?"
    if name == "Fit":
        return FIT_LABELS.get(row.get("fit", ""), "?")
    return str(row.get("source_label", row.get("source", "")))


class LibraryTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self._rows: list[dict[str, Any]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(row, index.column())
        if role == ROW_ROLE:
            return row
        if role == SORT_ROLE:
            if column == "Size":
                return row.get("size_bytes") or 0
            if column == "Context":
                return row.get("context_length") or 0
            return _cell(row, index.column()).lower()
        if role == Qt.ItemDataRole.ForegroundRole and column == "Fit":
            return QColor(FIT_COLORS.get(row.get("fit", ""), "#6e6e73"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(row["path"])
        return None
