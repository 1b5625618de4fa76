"""The Monitor pane: memory pressure, the machine's memory, MacLLM's processes, what
the engine holds, and speed, as live graphs over the last ten minutes.

Samples come from the window's `MonitorFeed` (taken off the GUI thread). The
graphs are pyqtgraph plots, built the first time the pane is shown (so start-up
never pays for them) and redrawn only while the pane is on screen.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.hardware.monitor import APP, ENGINE_HOST, MonitorSample
from macllm_app.core.units import human_size
from macllm_app.ui.monitor_feed import HISTORY_S, MonitorFeed

SPANS_S = (60, 120, 300, HISTORY_S)  # the graphs' time spans, growing with the history
MB = 1024**2
GB = 1024**3
LEVELS = {"normal": 0, "warning": 1, "critical": 2}
COLORS = ("#0a84ff", "#ff9f0a", "#30d158", "#bf5af2", "#ff453a", "#64d2ff", "#ffd60a")
#: (plot title, y-axis label, the series each sample adds: name -> value)
MEMORY_SERIES = ("used", "wired", "compressed", "cached", "swap")
ENGINE_SERIES = ("weights", "KV cache", "MLX active", "MLX peak", "MLX cache", "GPU")


def memory_values(sample: MonitorSample) -> dict[str, float]:
    m = sample.memory
    return {"used": m.used_bytes / GB, "wired": m.wired_bytes / GB,
            "compressed": m.compressed_bytes / GB, "cached": m.cached_bytes / GB,
            "swap": m.swap_used_bytes / GB}


def engine_values(sample: MonitorSample) -> dict[str, float]:
    e = sample.engine.engine if sample.engine is not None else None
    if e is None:
        return dict.fromkeys(ENGINE_SERIES, 0.0)
    return {"weights": e.weights_bytes / MB, "KV cache": e.kv_cache_bytes / MB,
            "MLX active": e.mlx_active_bytes / MB, "MLX peak": e.mlx_peak_bytes / MB,
            "MLX cache": e.mlx_cache_bytes / MB, "GPU": e.gpu_bytes / MB}


def summary_text(sample: MonitorSample) -> str:
    m = sample.memory
    parts = [f"<b>Memory pressure:</b> {sample.pressure}",
             f"<b>Used:</b> {human_size(m.used_bytes)} of {human_size(m.total_bytes)}",
             f"<b>Swap:</b> {human_size(m.swap_used_bytes)}"]
    for process in sample.processes:
        parts.append(f"<b>{process.name}:</b> {human_size(process.rss_bytes)}, "
                     f"{process.cpu_percent:.0f}% CPU")
    if sample.engine is not None and sample.engine.engine.weights_bytes:
        e = sample.engine.engine
        parts.append(f"<b>Model:</b> {human_size(e.weights_bytes)} weights, "
                     f"{human_size(e.kv_cache_bytes)} KV cache")
        if e.gpu_limit_bytes:
            parts.append(f"<b>GPU:</b> {human_size(e.gpu_bytes)} of the "
                         f"{human_size(e.gpu_limit_bytes)} Metal recommends")
    return " &nbsp;·&nbsp; ".join(parts)


class Series:
    """Points of one curve, trimmed to the monitor's history."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.values: deque[float] = deque()

    def add(self, when: float, value: float) -> None:
        self.times.append(when)
        self.values.append(value)
        while self.times and self.times[0] < when - HISTORY_S:
            self.times.popleft()
            self.values.popleft()


class MonitorPane(QWidget):
    unload_requested = Signal()

    def __init__(self, feed: MonitorFeed, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("monitorPane")
        self.feed = feed
        self.series: dict[str, dict[str, Series]] = defaultdict(lambda: defaultdict(Series))
        self.curves: dict[tuple[str, str], Any] = {}
        self.plots: dict[str, Any] = {}
        self.graphs: Any = None
        self._span = 0
        self.summary = QLabel("Waiting for the first sample…")
        self.summary.setObjectName("monitorSummary")
        self.summary.setWordWrap(True)
        self.unload_button = QPushButton("Unload Model")
        self.unload_button.setObjectName("unloadModel")
        self.unload_button.setToolTip("Free the loaded model's memory (it loads again when "
                                      "you next send a message)")
        self.unload_button.clicked.connect(self.unload_requested)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.unload_button)
        self._layout = QVBoxLayout(self)
        self._layout.addLayout(top)
        feed.sampled.connect(self.add_sample)
        feed.speed_point.connect(lambda when, kind, tps: self._add("speed", kind, when, tps))
        feed.job_rate.connect(lambda when, title, rate: self._add("speed", f"{title} %/min",
                                                                  when, rate))
        for sample in feed.samples:
            self._record(sample)

    # -- samples --------------------------------------------------------------
    def add_sample(self, sample: MonitorSample) -> None:
        self._record(sample)
        if self.isVisible():
            self.setUpdatesEnabled(False)  # one repaint for the label and every graph
            self.summary.setText(summary_text(sample))
            self.redraw()
            self.setUpdatesEnabled(True)

    def _record(self, sample: MonitorSample) -> None:
        when = sample.time
        self._add("pressure", "level", when, LEVELS.get(sample.pressure, 0))
        for name, value in memory_values(sample).items():
            self._add("memory", name, when, value)
        for process in sample.processes:
            self._add("resident", process.name, when, process.rss_bytes / MB)
            self._add("cpu", process.name, when, process.cpu_percent)
        for name, value in engine_values(sample).items():
            self._add("engine", name, when, value)

    def _add(self, plot: str, name: str, when: float, value: float) -> None:
        self.series[plot][name].add(when, value)
        if plot == "speed" and self.isVisible():
            self.redraw()

    def host_resident_mb(self) -> list[float]:
        """The engine host's resident memory series (MB), oldest first."""
        return self._named_series("resident", ENGINE_HOST)

    def _named_series(self, plot: str, role: str) -> list[float]:
        name = {APP: "MacLLM", ENGINE_HOST: "Engine host"}.get(role, role)
        return list(self.series[plot][name].values)

    # -- drawing --------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.feed.set_visible(True)
        if self.graphs is None:
            self._build_graphs()
        if self.feed.samples:
            self.summary.setText(summary_text(self.feed.samples[-1]))
        self.redraw()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.feed.set_visible(False)

    def _build_graphs(self) -> None:
        import pyqtgraph as pg

        pg.setConfigOptions(antialias=False, background="w", foreground="#3a3a3c")
        self.graphs = pg.GraphicsLayoutWidget()
        self.graphs.setObjectName("monitorGraphs")
        titles = (("pressure", "Memory pressure", ""), ("memory", "System memory", "GB"),
                  ("resident", "MacLLM's processes: resident memory", "MB"),
                  ("cpu", "CPU", "% of one core"), ("engine", "Inside the engine", "MB"),
                  ("speed", "Speed", "tokens/s · jobs %/min"))
        first = None
        for row, (key, title, unit) in enumerate(titles):
            last = row == len(titles) - 1
            plot = self.graphs.addPlot(row=row, col=0, title=title)
            plot.setLabel("left", unit)
            if last:
                plot.setLabel("bottom", "seconds ago")
            plot.addLegend(offset=(-10, 5), colCount=4)
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setMouseEnabled(x=False, y=False)
            if not last:
                plot.hideAxis("bottom")  # one time axis, under the last graph, for all
            for side in ("left", "bottom"):
                # an axis redraws its text only when its range changes, not on each repaint
                plot.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            self.plots[key] = plot
        self.plots["pressure"].getAxis("left").setTicks(
            [[(value, name) for name, value in LEVELS.items()]])
        self.plots["pressure"].setYRange(-0.2, 2.2)
        self._layout.addWidget(self.graphs, 1)

    def span_s(self, now: float) -> int:
        """How far back the graphs look: the shortest of SPANS_S that shows every sample
        (a range that changes only at those steps, so the axes are not redrawn each time)."""
        oldest = min((series.times[0] for named in self.series.values()
                      for series in named.values() if series.times), default=now)
        return next((span for span in SPANS_S if now - oldest <= span), SPANS_S[-1])

    def redraw(self) -> None:
        if self.graphs is None:
            return
        import numpy as np
        import pyqtgraph as pg

        now = time.time()
        span = self.span_s(now)
        if span != self._span:
            self._span = span
            self.plots["pressure"].setXRange(-span, 0, padding=0)  # the others are linked
        for key, named in self.series.items():
            plot = self.plots[key]
            for index, (name, series) in enumerate(named.items()):
                curve = self.curves.get((key, name))
                if curve is None:
                    color = COLORS[index % len(COLORS)]
                    scatter = key == "speed" and name in ("decode", "prefill")
                    curve = plot.plot(name=name, pen=None if scatter else pg.mkPen(color, width=2),
                                      symbol="o" if scatter else None, symbolSize=6,
                                      symbolBrush=color)
                    self.curves[(key, name)] = curve
                ago = np.fromiter(series.times, float, len(series.times)) - now
                curve.setData(ago, np.fromiter(series.values, float, len(series.values)))
