"""The one engine interface, used inside the engine host process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from macllm_app.core.engines.types import Event, GenerationRequest, LoadConfig, ModelInfo

StopCheck = Callable[[], bool]
ProgressCallback = Callable[[float, str], None]


class Engine(Protocol):
    """An engine owns one loaded model. It runs inside the engine host.

    `stream` yields `TextDelta`s then exactly one `Finished`. It calls
    `should_stop()` once per generated token and, when it returns True, ends
    with finish_reason "cancelled". Problems the engine survives raise
    `EngineError` (a `UserError`).
    """

    name: str

    def load(self, config: LoadConfig, progress: ProgressCallback) -> ModelInfo: ...

    def stream(self, request: GenerationRequest, should_stop: StopCheck) -> Iterator[Event]: ...

    def count_tokens(self, text: str) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def unload(self) -> None: ...


def create_engine(name: str) -> Engine:
    """Import and build an engine by name (only ever called inside the host)."""
    if name == "llama.cpp":
        from macllm_app.core.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine()
    from macllm_app.core.errors import EngineError

    if name == "mlx":
        try:
            from macllm_app.core.engines.mlx_engine import MLXEngine
        except ImportError as exc:
            raise EngineError(f"MLX is not available on this machine ({exc}).") from exc
        return MLXEngine()
    raise EngineError(f"Unknown engine {name!r} (choose llama.cpp or mlx).")
