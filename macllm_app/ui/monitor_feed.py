"""The app's hardware monitor feed: one sampler, polled off the GUI thread.

Samples every `VISIBLE_INTERVAL_MS` while the Monitor pane is on screen, and
every `HIDDEN_INTERVAL_MS` otherwise (the status bar's pressure word and the
guardrails still need them). Each sample covers the app, its engine host (what
the engine counts inside it, when the host is not busy) and running jobs. The
feed also collects the chat's speeds and jobs' progress, and says when memory
pressure rises.
"""

from __future__ import annotations

import time
from collections import deque

from PySide6.QtCore import QObject, Signal

from macllm_app.core.hardware.monitor import MonitorSample, Sampler, app_processes
from macllm_app.core.jobs import running_jobs
from macllm_app.core.types import GenerationStats, HostMemory
from macllm_app.ui.engine import EngineController
from macllm_app.ui.poll import Poll

VISIBLE_INTERVAL_MS = 2000  # Activity Monitor's fastest default is 2 s too
HIDDEN_INTERVAL_MS = 5000
HISTORY_S = 600  # the graphs show the last ten minutes


class MonitorFeed(QObject):
    sampled = Signal(object)           # MonitorSample
    pressure_rose = Signal(str)        # "warning" or "critical", once per rise
    speed_point = Signal(float, str, float)  # time, "decode" | "prefill" | "live", tok/s
    job_rate = Signal(float, str, float)     # time, job title, % per minute

    def __init__(self, engine: EngineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.samples: deque[MonitorSample] = deque()
        self._sampler = Sampler()
        self._last_engine: HostMemory | None = None
        self._level = "normal"
        self._job_marks: dict[str, tuple[float, float]] = {}  # title -> (time, fraction)
        self.poll = Poll(self, HIDDEN_INTERVAL_MS, self._take, self._on_sample, name="monitor")

    def start(self) -> None:
        self.poll.start()

    def stop(self) -> None:
        self.poll.stop()

    def set_visible(self, visible: bool) -> None:
        """Sample faster while the Monitor pane is on screen."""
        self.poll.timer.setInterval(VISIBLE_INTERVAL_MS if visible else HIDDEN_INTERVAL_MS)
        if visible:
            self.poll.poll_now()

    def _take(self) -> MonitorSample:
        """On a pool thread: one sample (the engine's own figures only if it is idle)."""
        host = self.engine.host
        engine = host.memory_if_idle() if self.engine.model is not None else None
        processes = app_processes(host.pid if host.is_alive() else None, running_jobs())
        return self._sampler.sample(processes, engine)

    def _on_sample(self, sample: MonitorSample) -> None:
        if sample.engine is None and self.engine.model is not None:
            sample = _with_engine(sample, self._last_engine)  # busy: keep the last figures
        self._last_engine = sample.engine if self.engine.model is not None else None
        self.samples.append(sample)
        while self.samples and self.samples[0].time < sample.time - HISTORY_S:
            self.samples.popleft()
        rose = sample.pressure in ("warning", "critical") and sample.pressure != self._level \
            and (self._level == "normal" or sample.pressure == "critical")
        if sample.pressure != "unknown":
            self._level = sample.pressure
        self.sampled.emit(sample)
        if rose:
            self.pressure_rose.emit(sample.pressure)

    # -- speeds and job progress ----------------------------------------------
    def add_live_speed(self, tokens_per_s: float) -> None:
        self.speed_point.emit(time.time(), "live", tokens_per_s)

    def add_reply_stats(self, stats: GenerationStats) -> None:
        now = time.time()
        if stats.prompt_tps > 0:
            self.speed_point.emit(now, "prefill", stats.prompt_tps)
        if stats.decode_tps > 0:
            self.speed_point.emit(now, "decode", stats.decode_tps)

    def add_job_progress(self, title: str, fraction: float) -> None:
        """A job's progress; its rate (% a minute) is reported at most once a second."""
        now = time.monotonic()
        mark = self._job_marks.get(title)
        if mark is None or fraction < mark[1]:
            self._job_marks[title] = (now, fraction)
            return
        if now - mark[0] >= 1.0:
            self._job_marks[title] = (now, fraction)
            self.job_rate.emit(time.time(), title, 100 * (fraction - mark[1]) / (now - mark[0])
                               * 60)


def _with_engine(sample: MonitorSample, engine: HostMemory | None) -> MonitorSample:
    from dataclasses import replace

    return replace(sample, engine=engine)
