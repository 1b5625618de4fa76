"""The measured quality of a source's variants: the table (type, size, bits per weight,
PPL, ΔPPL, KLD, same-top share, speeds, memory), a plot of size against KL divergence,
and the RAM-to-type guide. The plot is built the first time there are rows to draw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.units import human_size

HEADERS = ("Model", "Engine", "Size", "Bits/weight", "PPL", "ΔPPL", "KLD mean", "KLD 99%",
           "Same top", "Decode tok/s", "Prefill tok/s", "Memory")


def _number(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def row_cells(row: dict[str, Any], size: int, n_params: int) -> tuple[str, ...]:
    """One measured variant's cells, in `HEADERS` order."""
    same = row.get("same_top")
    memory = row.get("memory_bytes")
    return (Path(row["model"]).name, row.get("engine", ""), human_size(size) if size else "",
            f"{size * 8 / n_params:.2f}" if size and n_params else "",
            _number(row.get("ppl"), ".4f"), _number(row.get("delta_ppl"), "+.4f"),
            _number(row.get("kld_mean"), ".5f"), _number(row.get("kld_p99"), ".5f"),
            "" if same is None else f"{100 * same:.1f} %",
            _number(row.get("decode_tps"), ".1f"), _number(row.get("prefill_tps"), ".1f"),
            human_size(memory) if memory else "")


class QualityView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("qualityView")
        self.rows: list[dict[str, Any]] = []
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setObjectName("qualityTable")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.guide = QLabel("")
        self.guide.setObjectName("quantizeGuide")
        self.guide.setWordWrap(True)
        self.empty = QLabel("No measurements yet: quantize a model, then Measure Quality.")
        self.empty.setObjectName("qualityEmpty")
        self.splitter = QSplitter()
        self.splitter.addWidget(self.table)
        self.plot: Any = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.guide)
        layout.addWidget(self.empty)
        layout.addWidget(self.splitter, 1)

    def show_rows(self, rows: list[dict[str, Any]], sizes: dict[str, int], n_params: int,
                  guide: str) -> None:
        self.rows = rows
        self.guide.setText(guide)
        self.empty.setVisible(not rows)
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            for column, text in enumerate(row_cells(row, sizes.get(row["model"], 0), n_params)):
                self.table.setItem(index, column, QTableWidgetItem(text))
        self._draw(rows, sizes)

    def cell(self, row: int, header: str) -> str:
        item = self.table.item(row, HEADERS.index(header))
        return item.text() if item is not None else ""

    def _draw(self, rows: list[dict[str, Any]], sizes: dict[str, int]) -> None:
        points = [(sizes[r["model"]] / 2**20, r["kld_mean"], Path(r["model"]).name) for r in rows
                  if r.get("kld_mean") is not None and sizes.get(r["model"])]
        if not points:
            return
        if self.plot is None:
            import pyqtgraph as pg

            self.plot = pg.PlotWidget(background="w")
            self.plot.setObjectName("qualityPlot")
            self.plot.setLabel("bottom", "size (MB)")
            self.plot.setLabel("left", "KL divergence (mean)")
            self.plot.setMinimumWidth(260)
            self.splitter.addWidget(self.plot)
            self.splitter.setStretchFactor(0, 3)
            self.splitter.setStretchFactor(1, 2)
        import pyqtgraph as pg

        self.plot.clear()
        self.plot.plot([p[0] for p in points], [p[1] for p in points], pen=None,
                       symbol="o", symbolBrush="#0a84ff", symbolSize=9)
        for x, y, name in points:
            label = pg.TextItem(name, color="#3c3c43", anchor=(0, 1))
            label.setPos(x, y)
            self.plot.addItem(label)

    def plotted(self) -> int:
        """How many variants the plot shows."""
        if self.plot is None:
            return 0
        items = self.plot.getPlotItem().listDataItems()
        return sum(len(item.getData()[0] or ()) for item in items)
