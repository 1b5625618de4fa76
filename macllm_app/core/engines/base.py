"""The one engine interface, used inside the engine host process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from macllm_app.core.types import (
    EngineMemory,
    Event,
    GenerationRequest,
    LoadConfig,
    ModelInfo,
    ProgressCallback,
    StopCheck,
)


class Engine(Protocol):
    """An engine owns one loaded model. It runs inside the engine host.

    `stream` yields `TextDelta`s (and a `LiveStats` a few times a second), then
    exactly one `Finished`. It calls `should_stop()` once per generated token
    and, when it returns True, ends with finish_reason "cancelled". Problems
    the engine survives raise `EngineError` (a `UserError`); anything else is
    a bug and reaches the app as one.
    """

    name: str

    def load(self, config: LoadConfig, progress: ProgressCallback) -> ModelInfo: ...

    def stream(self, request: GenerationRequest, should_stop: StopCheck) -> Iterator[Event]: ...

    def count_tokens(self, text: str) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def memory(self) -> EngineMemory:
        """What the loaded model costs, as the engine counts it (zeros when none is)."""
        ...

    def unload(self) -> None: ...
