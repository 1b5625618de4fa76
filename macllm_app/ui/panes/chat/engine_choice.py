"""Which engines can run the chat's model, and which one a conversation runs on.

A model's engines come from its library metadata (validated, never loaded),
read once per model in a worker; a choice that needs them waits for them.
"Automatic" is the engine the app loaded the model with: MLX for MLX folders,
llama.cpp for GGUF files (the Preferences' engine for the default model).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from macllm_app.core.chat.records import ENGINE_CHOICES, StoredMessage
from macllm_app.core.engines.types import EngineName
from macllm_app.ui.engine import EngineController
from macllm_app.ui.workers import FunctionWorker

log = logging.getLogger("macllm.ui.chat")

ENGINE_TITLES: dict[str, str] = {"llama.cpp": "llama.cpp", "mlx": "MLX"}
CHECKING = "Checking which engines run this model…"


def engine_title(engine: str | None) -> str:
    return ENGINE_TITLES.get(engine or "", engine or "")


def other_engine(engine: str) -> EngineName:
    return next(e for e in ENGINE_CHOICES if e != engine)


@dataclass(frozen=True, slots=True)
class ModelEngines:
    """What can run one model: the engines its format allows, and those installed."""

    path: str
    format: str
    supported: tuple[str, ...]
    installed: tuple[str, ...]
    error: str = ""

    def runs_on(self, engine: str) -> bool:
        return engine in self.supported and engine in self.installed

    def why_not(self, engine: str) -> str:
        """Plain words for why `engine` cannot run this model ('' if it can)."""
        title = engine_title(engine)
        if self.error:
            return f"The model could not be checked: {self.error}"
        if engine not in self.installed:
            return f"{title} is not installed."
        if engine in self.supported:
            return ""
        if self.format == "mlx":
            return f"{title} runs GGUF files; this model is an MLX folder."
        if engine == "mlx":
            return ("MLX runs GGUF files of llama models with Q4_0, Q4_1, Q8_0, F16 or F32 "
                    "tensors; this model is not one.")
        return f"This model does not run on {title}."


def read_model_engines(path: str) -> ModelEngines:
    """Validate the model and list its engines (no model load; a worker calls this)."""
    from macllm_app.core.engines.select import installed_engines
    from macllm_app.core.errors import UserError
    from macllm_app.core.library.formats import inspect_model

    try:
        meta = inspect_model(Path(path))
    except UserError as exc:
        return ModelEngines(path, "", (), installed_engines(), str(exc))
    return ModelEngines(path, meta.format, tuple(meta.engines), installed_engines())


def compare_target(last_reply: StoredMessage | None, conversation_engine: str | None,
                   engines: ModelEngines | None) -> tuple[EngineName | None, str]:
    """The engine "Run on the other engine" would use for `last_reply`, or None and why.

    The other engine is the one that did not write the last reply (its stats say which).
    """
    if last_reply is None or last_reply.role != "assistant":
        return None, "There is no reply to run again yet."
    if engines is None:
        return None, CHECKING
    stats: dict[str, Any] = last_reply.stats or {}
    current = str(stats.get("engine") or conversation_engine or "")
    if current not in ENGINE_CHOICES:
        return None, "The engine of this reply is not known."
    target = other_engine(current)
    reason = engines.why_not(target)
    return (None, reason) if reason else (target, "")


def compare_button(target: EngineName | None, reason: str) -> tuple[str, bool, str]:
    """The compare button's text, enabled state and tooltip."""
    if target is None:
        return "Run on the other engine", False, reason
    title = engine_title(target)
    return (f"Run on {title}", True, f"Send the last message to {title} as a new version of "
            "this reply, and compare the two replies' speed and memory.")


class EngineChoice(QObject):
    """Knows the engines of the model the chat runs; `changed` when they become known."""

    changed = Signal()

    def __init__(self, engine: EngineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._known: dict[str, ModelEngines] = {}
        self._reading: dict[QObject, str] = {}  # worker -> model path
        self._waiting: list[tuple[str, Callable[[ModelEngines | None], None]]] = []
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

    def resolve(self, choice: EngineName | None,
                then: Callable[[EngineName | None, str], None]) -> None:
        """Call `then(engine, note)`: `choice` if it runs the model, else None (automatic)
        with a note saying why; waits for the model's engines if they are being read."""
        if choice is None:
            then(None, "")
            return
        path = self.model_path()

        def decide(engines: ModelEngines | None) -> None:
            if engines is None or engines.runs_on(choice):
                then(choice if engines is not None else None, "")
                return
            then(None, f"{engines.why_not(choice)} Running on "
                       f"{engine_title(self.automatic())} instead.")

        found = self.known()
        if found is not None or path is None:
            decide(found)
        else:
            self._waiting.append((path, decide))

    # -- internals ------------------------------------------------------------
    @Slot(str)
    def _on_load_started(self, _name: str) -> None:
        if self.known() is not None:
            self.changed.emit()

    def _read(self, path: str) -> None:
        if path in self._reading.values():
            return
        worker = FunctionWorker(read_model_engines, path)
        worker.finished.connect(self._on_read)
        worker.failed.connect(self._on_read_failed)
        self._reading[worker] = path
        worker.start()

    @Slot(object)
    def _on_read(self, result: object) -> None:
        path = self._reading.pop(self.sender(), None)
        if path is not None and isinstance(result, ModelEngines):
            self._remember(path, result)

    @Slot(str)
    def _on_read_failed(self, message: str) -> None:
        path = self._reading.pop(self.sender(), None)
        if path is not None:
            log.warning("Could not read the engines of %s: %s", path, message)
            self._remember(path, ModelEngines(path, "", (), (), message))

    def _remember(self, path: str, engines: ModelEngines) -> None:
        self._known[path] = engines
        waiting = [item for item in self._waiting if item[0] == path]
        self._waiting = [item for item in self._waiting if item[0] != path]
        for _path, callback in waiting:
            callback(engines)
        self.changed.emit()
