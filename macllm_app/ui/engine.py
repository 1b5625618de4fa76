"""The GUI's handle on the engine host: loads models in workers, survives crashes.

One `EngineHost` at a time. When it dies (EngineCrashed), the controller drops
it; the next request starts a fresh host and loads the last model again.

`load()` picks the model and the engine it runs on by default (its automatic
engine). A request may ask for the same model on another engine
(`when_ready(..., engine=...)`): the model is loaded again on that engine, in a
fresh host (one engine per host process, so each engine's memory is measured alone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.types import EngineName, LoadConfig, ModelInfo
from macllm_app.ui.workers import LoadModelWorker

log = logging.getLogger("macllm.ui.engine")


class MeasuredLoadWorker(LoadModelWorker):
    """Loads, then records the host's peak memory next to the library's estimate.

    Only a host's first load is measured: its peak RSS covers every model it ever held.
    """

    def __init__(self, host: EngineHost, config: LoadConfig, measure: bool) -> None:
        super().__init__(host, config)
        self.measure = measure

    def work(self) -> ModelInfo:
        info = super().work()
        if not self.measure:
            return info
        try:
            from macllm_app.core.library.memory_records import record_measured_peak

            peak = int(self.host.stats().get("peak_rss_bytes", 0))
            if peak > 0:
                record_measured_peak(self.config.model_path, self.config.engine,
                                     info.n_ctx or self.config.n_ctx, peak)
        except Exception as exc:  # a measurement never spoils a load
            log.warning("Could not record the measured memory: %s", exc)
        return info

ReadyCallback = Callable[[EngineHost], None]
FailCallback = Callable[[str], None]


class EngineController(QObject):
    load_started = Signal(str)        # model file name
    load_progress = Signal(float, str)
    loaded = Signal(object)           # ModelInfo
    load_failed = Signal(str)
    crashed = Signal(str)             # plain-words message

    def __init__(self, config_factory: Callable[[], LoadConfig],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config_factory = config_factory
        self._base: LoadConfig | None = None     # the model, on its automatic engine
        self._config: LoadConfig | None = None   # what the host has (or is loading)
        self.host = EngineHost()
        self._host_loads = 0
        self._host_engine: EngineName | None = None
        self.model: ModelInfo | None = None
        self._loader: LoadModelWorker | None = None
        self._waiting: list[tuple[ReadyCallback, FailCallback]] = []

    # -- state ----------------------------------------------------------------
    def is_ready(self) -> bool:
        return self.model is not None and self.host.is_alive() and self._loader is None

    def is_loading(self) -> bool:
        return self._loader is not None

    @property
    def config(self) -> LoadConfig | None:
        """What the host has loaded or is loading (None before the first load)."""
        return self._config

    def base_config(self) -> LoadConfig | None:
        """The model the app runs, on its automatic engine (None if there is none)."""
        if self._base is None:
            try:
                return self._config_factory()
            except Exception:  # e.g. the bundled model is not installed
                return None
        return self._base

    # -- requests -------------------------------------------------------------
    def load(self, config: LoadConfig | None = None) -> None:
        """Load `config` (or the current / configured default model) in the background;
        its engine becomes the model's automatic engine."""
        try:
            base = config or self._base or self._config_factory()
        except Exception as exc:  # e.g. the bundled model is not installed
            self._fail_waiting(str(exc))
            self.load_failed.emit(str(exc))
            return
        self._base = base
        self._start(base)

    def _start(self, config: LoadConfig) -> None:
        if self._loader is not None:
            self._loader.cancel()
            self._loader = None
            self._replace_host()  # the old load cannot be interrupted; drop its host
        elif self._host_engine not in (None, config.engine):
            self._replace_host()  # another engine: a fresh process
        self._config = config
        if not self.host.is_alive():
            self._replace_host()
        self.model = None
        self._host_engine = config.engine
        worker = MeasuredLoadWorker(self.host, self._config, measure=self._host_loads == 0)
        self._host_loads += 1
        worker.progress.connect(self.load_progress)
        worker.finished.connect(self._on_loaded)
        worker.failed.connect(self._on_load_failed)
        worker.cancelled.connect(self._on_load_cancelled)
        self._loader = worker
        self.load_started.emit(Path(self._config.model_path).name)
        worker.start()

    def when_ready(self, ready: ReadyCallback, failed: FailCallback,
                   engine: EngineName | None = None) -> None:
        """Call `ready(host)` once the model is loaded on `engine` (None: its automatic
        engine), loading it first if needed."""
        base = self.base_config()
        if base is not None:
            wanted = replace(base, engine=engine) if engine is not None else base
            if wanted != self._config:
                self._waiting.append((ready, failed))
                self._base = base
                self._start(wanted)
                return
        if self.is_ready():
            ready(self.host)
            return
        self._waiting.append((ready, failed))
        if self._loader is None:
            if self._config is not None:
                self._start(self._config)  # e.g. after a crash: the same model and engine
            else:
                self.load()

    def report_crash(self, message: str) -> None:
        """A generation saw the host die: forget it; the next request starts a new one."""
        log.warning("%s", message)
        self.model = None
        self._replace_host()
        self.crashed.emit(message)

    def shutdown(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            self.host.kill()
            self._loader.wait(5000)
        self.host.shutdown(timeout=3.0)

    # -- internals ------------------------------------------------------------
    def _replace_host(self) -> None:
        old = self.host
        self.host = EngineHost()
        self._host_loads = 0
        self._host_engine = None
        old.kill()
        old.shutdown(timeout=1.0)

    @Slot(object)
    def _on_loaded(self, info: object) -> None:
        if self.sender() is not self._loader or not isinstance(info, ModelInfo):
            return  # a superseded load
        self._loader = None
        self.model = info
        self.loaded.emit(info)
        waiting, self._waiting = self._waiting, []
        for ready, _failed in waiting:
            ready(self.host)

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        if self.sender() is not self._loader:
            return
        self._loader = None
        self.model = None
        self.load_failed.emit(message)
        self._fail_waiting(message)

    @Slot()
    def _on_load_cancelled(self) -> None:
        if self.sender() is self._loader:
            self._loader = None

    def _fail_waiting(self, message: str) -> None:
        waiting, self._waiting = self._waiting, []
        for _ready, failed in waiting:
            failed(message)
