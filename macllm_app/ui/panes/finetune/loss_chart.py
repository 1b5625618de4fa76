"""Training and validation loss against the step, for one run: live while it trains,
or as recorded (`RunStore.steps`) for a run chosen in the history. The pyqtgraph plot
is built the first time there is a point to draw (start-up never pays for it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from macllm_app.core.finetune.runs import StepRecord

TRAIN_COLOR, VALID_COLOR = "#0a84ff", "#ff9f0a"


class LossChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lossChart")
        self.run_id: str | None = None
        self.train: dict[int, float] = {}  # step -> loss (a step seen twice counts once)
        self.valid: dict[int, float] = {}
        self.plot: Any = None
        self._curves: tuple[Any, Any] | None = None
        self.empty = QLabel("The loss curve of a run shows here: start one, or choose one "
                            "in the history.")
        self.empty.setObjectName("lossChartEmpty")
        self.empty.setWordWrap(True)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.empty)

    def show_run(self, run_id: str | None, records: Sequence[StepRecord] = ()) -> None:
        """Show `run_id`'s recorded steps (none: an empty chart for it). Steps of the run
        already shown are kept: the live ones and the recorded ones are the same points,
        whichever arrives first."""
        if run_id != self.run_id:
            self.train, self.valid = {}, {}
        self.run_id = run_id
        for record in records:
            if record.loss is not None:
                series = self.train if record.kind == "train" else self.valid
                series[record.step] = record.loss
        self._draw()

    def add(self, event: dict[str, Any]) -> None:
        """A step the running job reported (ignored unless it is the shown run's)."""
        if event.get("run_id") != self.run_id or event.get("loss") is None:
            return
        series = self.train if event.get("kind") == "train" else self.valid
        series[int(event["step"])] = float(event["loss"])
        self._draw()

    def plotted(self) -> tuple[int, int]:
        """How many (training, validation) points the plot shows."""
        if self._curves is None:
            return 0, 0
        train, valid = (0 if (x := curve.getData()[0]) is None else len(x)
                        for curve in self._curves)
        return train, valid

    def _draw(self) -> None:
        has_points = bool(self.train or self.valid)
        self.empty.setVisible(not has_points)
        if self._curves is None:
            if not has_points:
                return
            self._build()
        assert self._curves is not None
        for curve, series in zip(self._curves, (self.train, self.valid), strict=True):
            steps = sorted(series)
            curve.setData(steps, [series[s] for s in steps])

    def _build(self) -> None:
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("lossPlot")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.setMinimumHeight(180)
        self.plot.addLegend(offset=(-10, 10))
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        train = self.plot.plot([], [], pen=pg.mkPen(TRAIN_COLOR, width=2), name="training")
        valid = self.plot.plot([], [], pen=pg.mkPen(VALID_COLOR, width=2), symbol="o",
                               symbolSize=6, symbolBrush=VALID_COLOR, name="validation")
        self._curves = (train, valid)
        self._layout.addWidget(self.plot, 1)
