"""The engine host as the server uses it, and its failures as HTTP errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from macllm_app.core.errors import EngineCrashed, RemoteBug, UserError, one_line
from macllm_app.core.server.errors import ApiError
from macllm_app.core.types import Event, GenerationRequest, LoadConfig, ModelInfo


class SlotHostLike(Protocol):
    """What the pool needs of `engines.slot_host.SlotHost`."""

    model: ModelInfo | None

    def start(self) -> None: ...
    def is_alive(self) -> bool: ...
    def shutdown(self, timeout: float = 5.0) -> None: ...
    def load(self, config: LoadConfig) -> ModelInfo: ...
    def unload(self) -> None: ...
    def submit(self, request: GenerationRequest,
               on_event: Callable[[Event | Exception], None]) -> int: ...
    def cancel(self, request_id: int) -> None: ...
    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
    def tokenize(self, text: str) -> list[int]: ...
    def chat_template(self) -> str: ...


def slot_host(parallel: int) -> SlotHostLike:
    from macllm_app.core.engines.slot_host import SlotHost

    return SlotHost(parallel=parallel)


def engine_failure(exc: BaseException) -> ApiError:
    """An engine's exception as the HTTP error a client gets."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, EngineCrashed):
        return ApiError(500, str(exc), code="engine_crashed")
    if isinstance(exc, RemoteBug):
        return ApiError(500, f"A bug in MacLLM's engine: {one_line(exc.summary)}",
                        code="internal_error")
    if isinstance(exc, UserError):
        return ApiError(400, one_line(exc), code="engine_error")
    raise exc
