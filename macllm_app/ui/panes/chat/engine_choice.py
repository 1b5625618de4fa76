"""Knows which engines run the chat's model (read once per model, as a task).

The rules themselves (what runs where, "Run on the other engine") live in
`core.chat.engine_choice`; this object only reads them off the GUI thread and
says when they are known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal, Slot

from macllm_app.core.chat.engine_choice import ModelEngines, read_model_engines
from macllm_app.core.errors import describe
from macllm_app.core.types import EngineName
from macllm_app.ui.engine import EngineController
from macllm_app.ui.tasks import Task

log = logging.getLogger("macllm.ui.chat")

EnginesCallback = Callable[[ModelEngines | None], None]


class EngineChoice(QObject):
    """Knows the engines of the model the chat runs; `changed` when they become known."""

    changed = Signal()

    def __init__(self, engine: EngineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._known: dict[str, ModelEngines] = {}
        self._reading: set[str] = set()
        self._waiting: list[tuple[str, EnginesCallback]] = []
        engine.load_started.connect(self._on_load_started)

    def model_path(self) -> str | None:
        config = self.engine.base_config()
        return config.model_path if config is not None else None

    def automatic(self) -> EngineName | None:
        """The engine the model runs on when a chat does not choose one."""
        config = self.engine.base_config()
        return config.engine if config is not None else None

    def known(self) -> ModelEngines | None:
        """The model's engines, or None while they are read (a read is started)."""
        path = self.model_path()
        if path is None:
            return None
        found = self._known.get(path)
        if found is None:
            self._read(path)
        return found

    def when_known(self, then: EnginesCallback) -> None:
        """Call `then(engines)` once the model's engines are known (at once if they are;
        with None when there is no model)."""
        path = self.model_path()
        found = self.known()
        if found is not None or path is None:
            then(found)
        else:
            self._waiting.append((path, then))

    # -- internals ------------------------------------------------------------
    @Slot(str)
    def _on_load_started(self, _name: str) -> None:
        if self.known() is not None:
            self.changed.emit()

    def _read(self, path: str) -> None:
        if path in self._reading:
            return
        self._reading.add(path)
        (Task.call(self, lambda: read_model_engines(path), name="read model engines")
         .on_done(lambda engines: self._remember(path, engines))
         .on_error(lambda error: self._read_failed(path, error))
         .start())

    def _read_failed(self, path: str, error: BaseException) -> None:
        log.warning("Could not read the engines of %s: %s", path, describe(error))
        self._remember(path, ModelEngines(path, "", (), (), describe(error)))

    def _remember(self, path: str, engines: ModelEngines) -> None:
        self._reading.discard(path)
        self._known[path] = engines
        waiting = [item for item in self._waiting if item[0] == path]
        self._waiting = [item for item in self._waiting if item[0] != path]
        for _path, callback in waiting:
            callback(engines)
        self.changed.emit()
