"""One chat turn, from the user's words to a stored reply (the chat pane's generation
task runs it on a pool thread).

Order of work, so that nothing is lost: the user message is
committed before the engine is asked anything; the reply row exists (status
"streaming") before the first token; the partial text is saved at least every
`checkpoint_interval_s` while it streams; the reply's final status is saved
before `Finished` is handed on.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from macllm_app.core.chat.records import SETTING_TYPES, ReplyOutcome, StoredMessage
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.errors import EngineCrashed, EngineError, UserError
from macllm_app.core.types import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationStats,
    Message,
    ModelInfo,
    SamplingParams,
    TextDelta,
)

CHECKPOINT_INTERVAL_S = 0.25

_OUTCOMES: dict[FinishReason, ReplyOutcome] = {
    "stop": "complete", "length": "complete", "cancelled": "cancelled", "error": "error",
}


class ChatHost(Protocol):
    """What a session needs from an engine host (`EngineHost` is one)."""

    model: ModelInfo | None

    def stream(self, request: GenerationRequest) -> Iterator[Event]: ...

    def cancel(self) -> None: ...


def sampling_params(settings: dict[str, Any]) -> SamplingParams:
    """`SamplingParams` defaults overridden by a conversation's settings."""
    overrides = {name: value for name, value in settings.items() if name in SETTING_TYPES}
    return dataclasses.replace(SamplingParams(), **overrides)


class ChatSession:
    """Runs the turns of one conversation through one engine host.

    `send`, `regenerate` and `edit_and_resend` save the user's side at once and
    return the reply's event stream; the reply is generated (and stored) as the
    caller iterates. Closing the iterator early stores the reply as "cancelled".
    `cancel()` may be called from another thread.
    """

    def __init__(self, store: ChatStore, host: ChatHost, conversation_id: int, *,
                 checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic,
                 compare_with: int | None = None) -> None:
        self.store = store
        self.host = host
        self.conversation_id = conversation_id
        self.checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._cancel_requested = threading.Event()
        self.user_message: StoredMessage | None = None
        """The user message of the latest turn (None after `regenerate`)."""
        self.reply_id: int | None = None
        """The reply row of the latest turn, once its stream has started."""
        self.compare_with = compare_with
        """A reply this session's replies are compared with (an earlier answer to the
        same message, e.g. from the other engine): kept in their stats as `compared_with`."""

    # -- turns --------------------------------------------------------------
    def send(self, text: str) -> Iterator[Event]:
        """Commit `text` as a user message on the active branch, then stream the reply."""
        self._new_turn()
        self.user_message = self.store.add_message(self.conversation_id, "user", text)
        return self._reply(self.user_message.id)

    def regenerate(self) -> Iterator[Event]:
        """A new reply beside the last one, answering the same user message."""
        self._new_turn()
        path = self.store.active_path(self.conversation_id)
        if not path:
            raise UserError("There is no message to answer yet.")
        leaf = path[-1]
        parent_id = leaf.parent_id if leaf.role == "assistant" else leaf.id
        if parent_id is None:
            raise UserError("There is no message to answer yet.")
        return self._reply(parent_id)

    def edit_and_resend(self, message_id: int, new_text: str) -> Iterator[Event]:
        """Branch: `new_text` becomes a sibling of user message `message_id` and is answered.

        The old message and everything after it stay stored on their branch.
        """
        old = self.store.get_message(message_id)
        if old.conversation_id != self.conversation_id or old.role != "user":
            raise ValueError(f"message {message_id} is not a user message of conversation "
                             f"{self.conversation_id}")
        self._new_turn()
        self.user_message = self.store.add_message(self.conversation_id, "user", new_text,
                                                   parent_id=old.parent_id)
        return self._reply(self.user_message.id)

    def cancel(self) -> None:
        """Stop the reply being generated, or the next one if it has not begun; it is
        stored as "cancelled" with its text so far."""
        self._cancel_requested.set()
        self.host.cancel()

    def build_request(self, parent_id: int) -> GenerationRequest:
        """The system prompt and the branch ending at `parent_id`, with the chat's sampling."""
        conversation = self.store.get_conversation(self.conversation_id)
        messages: list[Message] = []
        if conversation.system_prompt.strip():
            messages.append(Message("system", conversation.system_prompt))
        messages.extend(Message(m.role, m.content)
                        for m in self.store.path_to(parent_id) if m.content)
        return GenerationRequest(messages=tuple(messages),
                                 sampling=sampling_params(conversation.settings))

    # -- the reply ----------------------------------------------------------
    def _new_turn(self) -> None:
        self.user_message = None
        self.reply_id = None

    def _remember_model(self) -> None:
        model = self.host.model
        if model is None or self.compare_with is not None:
            return  # a comparison leaves the chat's model and engine as they were
        conversation = self.store.get_conversation(self.conversation_id)
        if (conversation.model, conversation.engine) != (model.name, model.engine):
            self.store.update_conversation(self.conversation_id, model=model.name,
                                           engine=model.engine)

    def _stats(self, stats: GenerationStats) -> dict[str, Any]:
        result = dataclasses.asdict(stats)
        model = self.host.model
        if model is not None:
            result["model"] = result["model"] or model.name
            result["engine"] = result["engine"] or model.engine
        if self.compare_with is not None:
            result["compared_with"] = self.compare_with
        return result

    def _reply(self, parent_id: int) -> Iterator[Event]:
        request = self.build_request(parent_id)
        self._remember_model()
        reply_id = self.store.start_reply(self.conversation_id, parent_id).id
        self.reply_id = reply_id
        if self._cancel_requested.is_set():
            self._cancel_requested.clear()
            self.store.finish_reply(reply_id, "", "cancelled")
            return
        parts: list[str] = []
        status: ReplyOutcome = "interrupted"
        error: str | None = None
        finished = False
        last_saved = self._clock()
        stream = self.host.stream(request)
        try:
            for event in stream:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    now = self._clock()
                    if now - last_saved >= self.checkpoint_interval_s:
                        self.store.checkpoint_reply(reply_id, "".join(parts))
                        last_saved = now
                    if self._cancel_requested.is_set():
                        self.host.cancel()  # a cancel sent before the host started is lost
                elif isinstance(event, Finished):
                    finished = True
                    status = _OUTCOMES[event.stats.finish_reason]
                    self.store.finish_reply(reply_id, "".join(parts), status,
                                            self._stats(event.stats))
                yield event
            if not finished:
                error = "The engine ended the reply without finishing it."
        except EngineCrashed as exc:
            error = str(exc)
            raise
        except EngineError as exc:
            status, error = "error", str(exc)
            raise
        except (GeneratorExit, KeyboardInterrupt):
            status = "cancelled"
            raise
        except Exception as exc:
            status, error = "error", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._cancel_requested.clear()  # a cancel stops one reply
            try:
                if not finished:
                    self.store.finish_reply(reply_id, "".join(parts), status, error=error)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
