"""A slot engine over any `Engine`: requests run one at a time, the rest wait in order.

This is how MLX serves (its engine decodes one sequence). Each step pulls the
running stream's events for up to `STEP_S` (the first token at once) and merges
its text deltas into one, so the pipe carries a few messages per second per
request rather than one per token, and a cancel waits at most one step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace

from macllm_app.core.engines.base import Engine
from macllm_app.core.engines.prompt.template import ChatTemplate
from macllm_app.core.engines.slot_engine import StepItem, bug_item
from macllm_app.core.errors import EngineError, UserError
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    ModelInfo,
    ProgressCallback,
    TextDelta,
    TokenLogprob,
)

STEP_S = 0.016
STEP_TOKENS = 8


def render_request(template: ChatTemplate, request: GenerationRequest) -> GenerationRequest:
    """A chat request as a plain prompt, rendered with the engine's template (raw messages
    and tools included), so that a prompt too long for the context is an error rather
    than a conversation silently cut."""
    if request.prompt is not None or request.prompt_tokens is not None:
        return request
    messages = request.raw_messages or request.messages
    if not messages:
        raise EngineError("Nothing to answer: the request has no messages and no prompt.")
    text = template.render(messages, tools=request.tools or None)
    return replace(request, prompt=text, messages=(), raw_messages=(), tools=())


class SerialSlots:
    """One request at a time through `engine.stream`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._model = ""
        self._queue: deque[tuple[int, GenerationRequest]] = deque()
        self._current = 0
        self._events: Iterator[Event] | None = None
        self._first = True
        self._stop = False
        self._out: list[StepItem] = []

    def load(self, config: LoadConfig, parallel: int, progress: ProgressCallback) -> ModelInfo:
        info = self._engine.load(config, progress)
        self._model = info.name
        return info

    def _template(self) -> ChatTemplate:
        template = getattr(self._engine, "_template", None)  # both engines keep theirs here
        if not isinstance(template, ChatTemplate):
            raise EngineError("No model is loaded.")
        return template

    # -- requests ---------------------------------------------------------
    def submit(self, request_id: int, request: GenerationRequest) -> None:
        self._queue.append((request_id, request))

    def cancel(self, request_id: int) -> None:
        if self._events is not None and request_id == self._current:
            self._stop = True
            return
        for index, (queued, _) in enumerate(self._queue):
            if queued == request_id:
                del self._queue[index]
                stats = GenerationStats(finish_reason="cancelled", engine=self._engine.name,
                                        model=self._model)
                self._out.append((request_id, Finished(stats)))
                return

    def busy(self) -> bool:
        return bool(self._out or self._queue or self._events is not None)

    def abort_all(self) -> list[int]:
        ids = [request_id for request_id, _ in self._queue]
        self._queue.clear()
        self._out.clear()
        if self._events is not None:
            ids.append(self._current)
            self._end()
        return ids

    def _end(self) -> None:
        events, self._events = self._events, None
        if events is not None and hasattr(events, "close"):
            events.close()

    def _prepare(self, request: GenerationRequest) -> GenerationRequest:
        params = request.sampling
        if params.json_schema is not None:
            raise EngineError("response_format needs a llama.cpp model "
                              "(MLX cannot constrain its output).")
        if params.logprobs or params.top_logprobs:
            raise EngineError("logprobs need a llama.cpp model.")
        if params.presence_penalty or params.frequency_penalty:
            raise EngineError("Presence and frequency penalties need a llama.cpp model "
                              "(MLX applies repeat_penalty only).")
        return render_request(self._template(), request)

    def _start_next(self, items: list[StepItem]) -> None:
        while self._events is None and self._queue:
            request_id, request = self._queue.popleft()
            try:
                prepared = self._prepare(request)
            except UserError as exc:
                items.append((request_id, ("error", str(exc))))
                continue
            self._current, self._first, self._stop = request_id, True, False
            self._events = self._engine.stream(prepared, lambda: self._stop)

    def step(self) -> list[StepItem]:
        items, self._out = self._out, []
        self._start_next(items)
        events = self._events
        if events is None:
            return items
        request_id = self._current
        texts: list[str] = []
        ids: list[int] = []
        logprobs: list[TokenLogprob] = []

        def flush() -> None:
            if texts or ids:
                items.append((request_id, TextDelta("".join(texts), tuple(ids),
                                                    tuple(logprobs))))
                texts.clear()
                ids.clear()
                logprobs.clear()

        deadline = time.perf_counter() + STEP_S
        while True:
            try:
                event = next(events)
            except StopIteration:
                flush()
                items.append((request_id, ("bug", "the engine ended a reply without its "
                                           "statistics", "")))
                self._end()
                return items
            except UserError as exc:
                flush()
                items.append((request_id, ("error", str(exc))))
                self._end()
                return items
            except Exception as exc:
                flush()
                items.append((request_id, bug_item(exc)))
                self._end()
                return items
            if type(event) is TextDelta:
                texts.append(event.text)
                ids.extend(event.token_ids)
                logprobs.extend(event.logprobs)
                if self._first or len(ids) >= STEP_TOKENS or time.perf_counter() >= deadline:
                    self._first = False
                    flush()
                    return items
                continue
            flush()
            items.append((request_id, event))
            if isinstance(event, Finished):
                self._end()
            return items

    # -- calls ------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise EngineError("Embeddings need a llama.cpp model.")

    def tokenize(self, text: str) -> list[int]:
        return self._engine.tokenize(text)

    def chat_template(self) -> str:
        return self._template().source

    def unload(self) -> None:
        self.abort_all()
        self._engine.unload()
