"""Which engines can run a chat's model, and the rules of "Run on the other engine".

A model's engines come from its library metadata (validated, never loaded).
"Automatic" is the engine the app loaded the model with: MLX for MLX folders,
llama.cpp for GGUF files (the Preferences' engine for the default model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from macllm_app.core.chat.records import StoredMessage
from macllm_app.core.engines.select import installed_engines
from macllm_app.core.errors import UserError
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.types import (
    ENGINES,
    EngineName,
    GenerationStats,
    engine_title,
    other_engine,
)

CHECKING = "Checking which engines run this model…"
NO_REPLY = "There is no reply to run again yet."


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

    def reasons(self) -> dict[str, str]:
        """Why each engine cannot run the model ('' for those that can)."""
        return {engine: self.why_not(engine) for engine in ENGINES}


def read_model_engines(path: str) -> ModelEngines:
    """Validate the model and list its engines (reads files, no model load)."""
    try:
        meta = inspect_model(Path(path))
    except UserError as exc:
        return ModelEngines(path, "", (), installed_engines(), str(exc))
    return ModelEngines(path, meta.format, tuple(meta.engines), installed_engines())


def resolve_engine(choice: EngineName | None, engines: ModelEngines | None,
                   automatic: EngineName | None) -> tuple[EngineName | None, str]:
    """The engine a reply runs on for the chat's `choice`: the choice if it runs the model,
    else None (automatic) and a note saying why."""
    if choice is None or engines is None or engines.runs_on(choice):
        return (choice if engines is not None else None), ""
    return None, f"{engines.why_not(choice)} Running on {engine_title(automatic)} instead."


def compare_target(last_reply: StoredMessage | None, conversation_engine: str | None,
                   engines: ModelEngines | None) -> tuple[EngineName | None, str]:
    """The engine "Run on the other engine" would use for `last_reply`, or None and why.

    The other engine is the one that did not write the last reply (its stats say which).
    """
    if last_reply is None or last_reply.role != "assistant":
        return None, NO_REPLY
    if engines is None:
        return None, CHECKING
    stats = GenerationStats.from_dict(last_reply.stats)
    current = (stats.engine if stats is not None else "") or conversation_engine or ""
    if current not in ENGINES:
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
