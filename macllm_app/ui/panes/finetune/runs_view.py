"""The history of fine-tuning runs: a table model over `RunStore` runs (newest first) and
its view. Selecting a run shows its recorded curve and numbers in the pane."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from macllm_app.core.finetune.config import METHOD_LABELS
from macllm_app.core.finetune.runs import Run
from macllm_app.core.units import human_size

HEADERS = ("Started", "Base model", "Method", "Dataset", "State", "Steps", "Duration",
           "Peak memory")
Index = QModelIndex | QPersistentModelIndex


def duration_text(seconds: float | None) -> str:
    """'42 s', '3 min 5 s', '2 h 07 min'; '' when unknown."""
    if seconds is None:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def run_cells(run: Run) -> tuple[str, ...]:
    """One run's cells, in `HEADERS` order."""
    state = run.state + (f" ({run.message})" if run.state in ("failed", "killed")
                         and run.message else "")
    return (time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created)),
            Path(run.base_model).name,
            METHOD_LABELS.get(run.method, run.method),  # type: ignore[call-overload]
            Path(run.train_file).name, state, f"{run.step} / {run.total_steps}",
            duration_text(run.duration_s),
            human_size(run.peak_memory_bytes) if run.peak_memory_bytes else "")


class RunsModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def set_runs(self, runs: list[Run]) -> None:
        self.beginResetModel()
        self.runs = list(runs)
        self.endResetModel()

    def show_step(self, run_id: str, step: int) -> None:
        """The running run `run_id` reached `step` (until the next listing says more)."""
        row = self.row_of(run_id)
        if row >= 0:
            self.runs[row] = replace(self.runs[row], state="running", step=step)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))

    def row_of(self, run_id: str) -> int:
        return next((i for i, run in enumerate(self.runs) if run.id == run_id), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        run = self.runs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return run_cells(run)[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Run {run.id}: {run.message}" if run.message else f"Run {run.id}"
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None


class RunsTable(QTableView):
    """The runs, one selected at a time; `run_selected` carries the Run (or None)."""

    run_selected = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("finetuneRuns")
        self.runs = RunsModel()
        self.setModel(self.runs)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.selectionModel().selectionChanged.connect(self._selection_changed)

    def show_runs(self, runs: list[Run], select: str | None = None) -> None:
        """List `runs`, keeping (or moving to `select`) the selected run."""
        keep = select or (run.id if (run := self.selected()) is not None else None)
        selection = self.selectionModel()
        selection.blockSignals(True)  # one run_selected below, not one per step of this
        try:
            self.runs.set_runs(runs)
            row = self.runs.row_of(keep) if keep else -1
            if row >= 0:
                self.selectRow(row)
        finally:
            selection.blockSignals(False)
        self.viewport().update()
        self._selection_changed()

    def selected(self) -> Run | None:
        rows = self.selectionModel().selectedRows()
        return self.runs.runs[rows[0].row()] if rows else None

    def select_run(self, run_id: str) -> bool:
        row = self.runs.row_of(run_id)
        if row >= 0:
            self.selectRow(row)
        return row >= 0

    def cell(self, run_id: str, header: str) -> str:
        row = self.runs.row_of(run_id)
        return run_cells(self.runs.runs[row])[HEADERS.index(header)] if row >= 0 else ""

    @Slot()
    def _selection_changed(self) -> None:
        self.run_selected.emit(self.selected())
