"""The GUI's handle on the engine host: loads models as tasks, survives crashes.

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

from PySide6.QtCore import QObject, Signal

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.errors import describe
from macllm_app.core.library.loading import WontFit, load_in_host
from macllm_app.core.library.memory_records import record_measured_peak
from macllm_app.core.types import EngineName, LoadConfig, ModelInfo
from macllm_app.ui.tasks import Task, TaskContext

log = logging.getLogger("macllm.ui.engine")

ReadyCallback = Callable[[EngineHost], None]
FailCallback = Callable[[BaseException], None]
#: A host replaced while it loads is asked to exit for this long, then killed.
REPLACED_HOST_GRACE_S = 1.0


def _load_and_measure(host: EngineHost, config: LoadConfig, measure: bool, confirmed: bool,
                      ctx: TaskContext[None]) -> ModelInfo:
    """Load (on a pool thread), then record the host's peak memory beside the library's
    estimate. Only a host's first load is measured: its peak covers every model it held."""
    info = load_in_host(host, config, ctx.progress, ctx.should_stop, confirmed=confirmed)
    if measure:
        try:
            peak = host.memory().peak_rss_bytes
            if peak > 0:
                record_measured_peak(config.model_path, config.engine,
                                     info.n_ctx or config.n_ctx, peak)
        except Exception as exc:  # a measurement never spoils a load
            log.warning("Could not record the measured memory: %s", exc)
    return info


class EngineController(QObject):
    load_started = Signal(str)        # model file name
    load_progress = Signal(float, str)
    loaded = Signal(object)           # ModelInfo
    load_failed = Signal(str)
    crashed = Signal(str)             # plain-words message
    fit_refused = Signal(str)         # the model won't fit now: why (load_anyway / decline)
    unloaded = Signal()

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
        self._loading: Task[ModelInfo, None] | None = None
        self._waiting: list[tuple[ReadyCallback, FailCallback]] = []
        self._refused: tuple[LoadConfig, WontFit] | None = None  # waiting for the user's say

    # -- state ----------------------------------------------------------------
    def is_ready(self) -> bool:
        return self.model is not None and self.host.is_alive() and self._loading is None

    def is_loading(self) -> bool:
        return self._loading is not None

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
            self._fail_waiting(exc)
            self.load_failed.emit(describe(exc))
            return
        self._base = base
        self._start(base)

    def _start(self, config: LoadConfig, *, confirmed: bool = False) -> None:
        self._refused = None
        if self._loading is not None:
            self._loading.cancel()  # a load cannot be interrupted: its host is killed
            self._loading = None
            self._replace_host()
        elif self._host_engine not in (None, config.engine):
            self._replace_host()  # another engine: a fresh process
        self._config = config
        if not self.host.is_alive():
            self._replace_host()
        self.model = None
        self._host_engine = config.engine
        host, measure = self.host, self._host_loads == 0
        self._host_loads += 1
        self._loading = (
            Task.context(self, lambda ctx: _load_and_measure(host, config, measure, confirmed,
                                                             ctx),
                         key="load", name="load model")
            .cancel_with(host.kill)
            .on_progress(self.load_progress.emit)
            .on_done(self._on_loaded)
            .on_error(self._on_load_failed)
            .on_cancelled(self._on_load_cancelled)
        )
        self.load_started.emit(Path(config.source_path or config.model_path).name)
        self._loading.start()

    def when_ready(self, ready: ReadyCallback, failed: FailCallback,
                   engine: EngineName | None = None, instead: LoadConfig | None = None) -> None:
        """Call `ready(host)` once the model is loaded on `engine` (None: its automatic
        engine), or once `instead` is loaded (a one-off comparison: the base model without
        its adapter, a quantized model's source), loading it first if needed;
        `failed(error)` if it cannot be. The app's model stays the same."""
        base = self.base_config()
        if base is not None:
            wanted = replace(base, engine=engine) if engine is not None else base
            if instead is not None:
                wanted = instead
            if wanted != self._config:
                self._waiting.append((ready, failed))
                self._base = base
                self._start(wanted)
                return
        if self.is_ready():
            ready(self.host)
            return
        self._waiting.append((ready, failed))
        if self._loading is None:
            if self._config is not None:
                self._start(self._config)  # e.g. after a crash: the same model and engine
            else:
                self.load()

    def load_anyway(self) -> None:
        """The user's say for a model that won't fit: load it all the same."""
        if self._refused is not None:
            self._start(self._refused[0], confirmed=True)

    def decline(self) -> None:
        """The user declined a model that won't fit: whoever waited for it is told why."""
        if self._refused is not None:
            error = self._refused[1]
            self._refused = None
            self.load_failed.emit(describe(error))
            self._fail_waiting(error)

    def unload(self) -> None:
        """Free the loaded model's memory (the host stays; the next request loads it)."""
        if self.model is None or self._loading is not None:
            return
        host = self.host
        self.model = None

        def done(_result: None) -> None:
            self.unloaded.emit()

        Task.call(self, host.unload, key="unload", name="unload model").on_done(done).start()

    def report_crash(self, message: str) -> None:
        """A generation saw the host die: forget it; the next request starts a new one."""
        log.warning("%s", message)
        self.model = None
        self._replace_host()
        self.crashed.emit(message)

    def shutdown(self) -> None:
        loading, self._loading = self._loading, None
        if loading is not None:
            loading.cancel()
            loading.wait(5.0)
        self.host.shutdown(timeout=3.0)

    # -- internals ------------------------------------------------------------
    def _replace_host(self) -> None:
        old = self.host
        self.host = EngineHost()
        self._host_loads = 0
        self._host_engine = None
        old.kill()
        old.shutdown(timeout=REPLACED_HOST_GRACE_S)

    def _on_loaded(self, info: ModelInfo) -> None:
        self._loading = None
        self.model = info
        self.loaded.emit(info)
        waiting, self._waiting = self._waiting, []
        for ready, _failed in waiting:
            ready(self.host)

    def _on_load_failed(self, error: BaseException) -> None:
        self._loading = None
        self.model = None
        if isinstance(error, WontFit) and self._config is not None:
            self._refused = (self._config, error)  # ask the user; the waiters keep waiting
            self.fit_refused.emit(str(error))
            return
        self.load_failed.emit(describe(error))
        self._fail_waiting(error)

    def _on_load_cancelled(self) -> None:
        self._loading = None

    def _fail_waiting(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, []
        for _ready, failed in waiting:
            failed(error)
