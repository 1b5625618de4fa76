"""The chat's generation state machine, without widgets.

A turn goes: choose the engine (the chat's choice, if it runs the model) ->
load the model on it if needed -> generate (a task streaming the session's
events) -> end (finished, stopped, failed or crashed). The controller owns
the turn and its one reply buffer; it reports what happens through signals
and the pane shows it. Live speed comes from the engine's own `LiveStats`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Literal

from PySide6.QtCore import QObject, Signal

from macllm_app.core.chat.engine_choice import ModelEngines, resolve_engine
from macllm_app.core.chat.records import StoredMessage, engine_choice
from macllm_app.core.chat.session import ChatSession
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.errors import EngineCrashed, describe
from macllm_app.core.types import (
    EngineName,
    Event,
    Finished,
    GenerationStats,
    LiveStats,
    LoadConfig,
    TextDelta,
    engine_title,
)
from macllm_app.ui.engine import EngineController
from macllm_app.ui.panes.chat.engine_choice import EngineChoice
from macllm_app.ui.panes.chat.reply_buffer import ReplyBuffer
from macllm_app.ui.tasks import Task

Action = Literal["send", "regenerate", "edit"]

#: A stopped reply ends within one token; a host still busy this long after the stop
#: (a long native call: a huge prompt chunk, a slow first token) is killed.
STOP_GRACE_S = 2.0


class Phase(Enum):
    CHOOSING_ENGINE = auto()
    LOADING = auto()
    GENERATING = auto()


@dataclass(eq=False)
class Turn:
    """One reply being made: what was asked, and its text so far."""

    conversation_id: int
    action: Action
    text: str = ""
    message_id: int | None = None
    engine: EngineName | None = None
    compare_with: int | None = None
    instead: LoadConfig | None = None  # another model for this turn only (a comparison)
    reply: ReplyBuffer = field(default_factory=ReplyBuffer)
    phase: Phase = Phase.CHOOSING_ENGINE

    @property
    def user_text(self) -> str | None:
        """The user's new words shown above the reply (None when regenerating)."""
        return None if self.action == "regenerate" else self.text


@dataclass(frozen=True)
class TurnEnd:
    """How a turn ended, and what the store now holds for it."""

    turn: Turn
    stored: list[StoredMessage]   # the user message (if new) and the reply, as stored
    notice: str = ""              # a problem to show in the chat
    status: str = ""              # a passing note for the status bar
    restore_text: str | None = None  # words to give back to the composer (nothing saved)


def _turn_events(session: ChatSession,
                 turn: Turn) -> Generator[Event, None, GenerationStats | None]:
    """The session's events for `turn` (on a pool thread); returns the reply's stats."""
    if turn.action == "send":
        events = session.send(turn.text)
    elif turn.action == "regenerate":
        events = session.regenerate()
    else:
        assert turn.message_id is not None
        events = session.edit_and_resend(turn.message_id, turn.text)
    stats = None
    for event in events:
        if isinstance(event, Finished):
            stats = event.stats
        yield event
    return stats


class ChatController(QObject):
    turn_started = Signal(object)      # Turn
    turn_state = Signal(object, str)   # Turn, "loading the model on MLX…" / "generating…"
    reply_grew = Signal(object, str)   # Turn, the new text
    speed = Signal(float)              # decode tokens per second, from the engine
    turn_ended = Signal(object)        # TurnEnd
    status_message = Signal(str)

    def __init__(self, store: ChatStore, engine: EngineController, engines: EngineChoice,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.engine = engine
        self.engines = engines
        self.turn: Turn | None = None
        self._session: ChatSession | None = None
        self._task: Task[GenerationStats | None, Event] | None = None

    def is_busy(self) -> bool:
        return self.turn is not None

    # -- requests -------------------------------------------------------------------
    def start(self, conversation_id: int, action: Action, text: str = "",
              message_id: int | None = None, *, engine: EngineName | None = None,
              compare_with: int | None = None,
              instead: LoadConfig | None = None) -> Turn | None:
        """Begin a turn on `engine`, or else on the engine the conversation chose (on the
        model `instead`, for a comparison, when given)."""
        if self.turn is not None:
            return None
        choice = engine or engine_choice(self.store.get_conversation(conversation_id).settings)
        turn = Turn(conversation_id, action, text, message_id, choice, compare_with, instead)
        self.turn = turn
        self.turn_started.emit(turn)
        self.engines.when_known(self._for(turn, self._engines_known))
        return turn

    def stop(self) -> None:
        turn = self.turn
        if turn is None:
            return
        if turn.phase is Phase.GENERATING and self._task is not None:
            self._task.cancel()
            self.status_message.emit("Stopping…")
        else:
            self._end(TurnEnd(turn, [], status="Cancelled before the model was ready."))

    def wait(self, timeout_s: float) -> None:
        """Block until the running reply has ended (on quit)."""
        if self._task is not None:
            self._task.wait(timeout_s)

    # -- the turn, step by step -----------------------------------------------------
    def _for(self, turn: Turn, step: Callable[..., None]) -> Callable[..., None]:
        """`step`, run only while `turn` is still the current one (a stopped turn's
        engine check or model load may still come back)."""
        def guarded(*args: object) -> None:
            if self.turn is turn:
                step(turn, *args)
        return guarded

    def _engines_known(self, turn: Turn, engines: ModelEngines | None) -> None:
        resolved, note = resolve_engine(turn.engine, engines, self.engines.automatic())
        if note:
            self.status_message.emit(note)
        turn.phase = Phase.LOADING
        self.engine.when_ready(self._for(turn, self._model_ready),
                               self._for(turn, self._model_failed), resolved, turn.instead)
        if self.turn is turn and turn.phase is Phase.LOADING and self.engine.is_loading():
            title = engine_title(resolved or self.engines.automatic())
            self.turn_state.emit(turn, f"loading the model on {title}…")

    def _model_failed(self, turn: Turn, error: BaseException) -> None:
        restore = turn.text if turn.action == "send" else None  # nothing was saved
        self._end(TurnEnd(turn, [], notice=f"The model could not be loaded: {describe(error)}",
                          restore_text=restore))

    def _model_ready(self, turn: Turn, host: EngineHost) -> None:
        turn.phase = Phase.GENERATING
        self.turn_state.emit(turn, "generating…")
        session = ChatSession(self.store, host, turn.conversation_id,
                              compare_with=turn.compare_with)
        self._session = session
        self._task = (
            Task.generator(self, lambda: _turn_events(session, turn), name="generate")
            .cancel_with(session.cancel)
            .force_stop(host.kill, STOP_GRACE_S)
            .on_yield(lambda event: self._on_event(turn, event))
            .on_done(lambda stats: self._on_done(turn, stats))
            .on_cancelled(lambda: self._end(TurnEnd(turn, self._stored(),
                                                    status="Reply stopped.")))
            .on_error(lambda error: self._on_error(turn, error))
            .start()
        )

    def _on_event(self, turn: Turn, event: Event) -> None:
        if isinstance(event, TextDelta):
            if event.text:
                turn.reply.append(event.text)
                self.reply_grew.emit(turn, event.text)
        elif isinstance(event, LiveStats) and event.decode_tps > 0:
            self.speed.emit(event.decode_tps)

    def _on_done(self, turn: Turn, stats: GenerationStats | None) -> None:
        if stats is not None and stats.decode_tps > 0:
            self.speed.emit(stats.decode_tps)
        stopped = stats is not None and stats.finish_reason == "cancelled"
        self._end(TurnEnd(turn, self._stored(), status="Reply stopped." if stopped else ""))

    def _on_error(self, turn: Turn, error: BaseException) -> None:
        if isinstance(error, EngineCrashed):
            self.engine.report_crash(describe(error))
        self._end(TurnEnd(turn, self._stored(), notice=describe(error)))

    def _stored(self) -> list[StoredMessage]:
        """The turn's messages as stored now (the user's, if new, then the reply)."""
        session = self._session
        if session is None:
            return []
        stored = [session.user_message] if session.user_message is not None else []
        if session.reply_id is not None:
            stored.append(self.store.get_message(session.reply_id))
        return stored

    def _end(self, end: TurnEnd) -> None:
        self.turn, self._session, self._task = None, None, None
        self.turn_ended.emit(end)
