"""The dataset as training will see it (the PREVIEW job's summary): samples, tokens, a
small histogram of lengths with the maximum sequence length marked, truncation, and the
warnings and blocking problems, one line each."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

WARNING_STYLE = "color: #b25000;"
BLOCKING_STYLE = "color: #d70015;"


def summary_text(result: dict[str, Any]) -> str:
    """'14 samples, 1,204 tokens (lengths 61–103, median 86); 2 cut short to 96 tokens;
    validation: 2 samples.'"""
    parts = [f"{result['samples']:,} samples, {result['total_tokens']:,} tokens "
             f"(lengths {result['min_length']:,}–{result['max_length']:,}, median "
             f"{result['median_length']:g})"]
    truncated = len(result.get("truncated_lines") or ())
    parts.append(f"{truncated:,} cut short to {result['max_seq_length']:,} tokens"
                 if truncated else f"none longer than {result['max_seq_length']:,} tokens")
    masked = len(result.get("masked_away_lines") or ())
    if masked:
        parts.append(f"{masked:,} with nothing to learn")
    if result.get("valid_samples") is not None:
        parts.append(f"validation: {result['valid_samples']:,} samples")
    return "; ".join(parts) + "."


class DatasetPreview(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("datasetPreview")
        self.result: dict[str, Any] | None = None
        self.summary = QLabel("")
        self.summary.setObjectName("datasetSummary")
        self.summary.setWordWrap(True)
        self.warnings = QLabel("")
        self.warnings.setObjectName("datasetWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet(WARNING_STYLE)
        self.blocking = QLabel("")
        self.blocking.setObjectName("datasetBlocking")
        self.blocking.setWordWrap(True)
        self.blocking.setStyleSheet(BLOCKING_STYLE)
        self.plot: Any = None
        self._row = QHBoxLayout()
        self._row.addWidget(self.summary, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._row)
        layout.addWidget(self.blocking)
        layout.addWidget(self.warnings)
        self.show_message("")

    def show_message(self, text: str) -> None:
        """No summary to show (yet): say why, or what is happening."""
        self.result = None
        self.summary.setText(text)
        for label in (self.warnings, self.blocking):
            label.setText("")
            label.hide()
        if self.plot is not None:
            self.plot.hide()

    def show_summary(self, result: dict[str, Any]) -> None:
        self.result = result
        self.summary.setText(summary_text(result))
        for label, lines in ((self.warnings, result.get("warnings") or []),
                             (self.blocking, result.get("blocking") or [])):
            label.setText("\n".join(lines))
            label.setVisible(bool(lines))
        self._draw(result)

    def bars(self) -> list[int]:
        """The histogram's counts, as drawn."""
        if self.plot is None or self.result is None:
            return []
        return list(self.result.get("histogram_counts") or [])

    def _draw(self, result: dict[str, Any]) -> None:
        import pyqtgraph as pg

        edges = list(result.get("histogram_edges") or [])
        counts = list(result.get("histogram_counts") or [])
        if len(edges) != len(counts) + 1 or not counts:
            return
        if self.plot is None:
            self.plot = pg.PlotWidget(background="w")
            self.plot.setObjectName("lengthHistogram")
            self.plot.setFixedSize(260, 110)
            self.plot.setLabel("bottom", "tokens")
            self.plot.setMouseEnabled(x=False, y=False)
            self._row.addWidget(self.plot)
        self.plot.clear()
        self.plot.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                          brush="#0a84ff"))
        limit = result.get("max_seq_length")
        if limit and limit <= edges[-1]:
            self.plot.addItem(pg.InfiniteLine(limit, angle=90, pen=pg.mkPen("#d70015")))
        self.plot.show()
