"""What the slot host's loop asks of an engine that serves several requests at once."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any, Protocol

from macllm_app.core.errors import one_line
from macllm_app.core.types import GenerationRequest, LoadConfig, ModelInfo, ProgressCallback

log = logging.getLogger("macllm.engine.slot_host")

StepItem = tuple[int, Any]
"""(request id, TextDelta | LiveStats | Finished | ("error", message) | ("bug", summary, trace))"""


class SlotEngine(Protocol):
    """An engine that serves several requests, stepping them together."""

    def load(self, config: LoadConfig, parallel: int, progress: ProgressCallback) -> ModelInfo: ...

    def submit(self, request_id: int, request: GenerationRequest) -> None:
        """Queue a request (problems with it come out of `step` as its error item)."""
        ...

    def cancel(self, request_id: int) -> None: ...

    def busy(self) -> bool:
        """True while `step` has work: requests queued, running, or events to send."""
        ...

    def step(self) -> list[StepItem]:
        """One decode step for every running request; the events it produced."""
        ...

    def abort_all(self) -> list[int]:
        """Drop every request (after a bug); their ids."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def tokenize(self, text: str) -> list[int]: ...

    def chat_template(self) -> str: ...

    def unload(self) -> None: ...


def bug_item(exc: BaseException) -> tuple[str, str, str]:
    """("bug", summary, traceback) for an exception being handled (logged here)."""
    trace = traceback.format_exc()
    log.error("bug in the slot host:\n%s", trace)
    detail = one_line(exc, "")
    return "bug", f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__, trace
