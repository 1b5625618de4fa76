"""ChatSession's time-based checkpoints, with a scripted token source and a fake clock.

Everything else about sessions is tested with the real engine host
(tests/integration/test_chat_session.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from macllm_app.core.chat.session import ChatSession, sampling_params
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    Message,
    ModelInfo,
    SamplingParams,
    TextDelta,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedHost:
    """Yields one delta per scripted time, moving the fake clock to it first."""

    model: ModelInfo | None = None

    def __init__(self, clock: FakeClock, times: list[float]) -> None:
        self.clock, self.times = clock, times
        self.requests: list[GenerationRequest] = []

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        self.requests.append(request)
        start = self.clock.now
        for i, t in enumerate(self.times):
            self.clock.now = start + t
            yield TextDelta(f"w{i} ", (i,))
        yield Finished(GenerationStats(generated_tokens=len(self.times)))

    def cancel(self) -> None:
        raise AssertionError("not cancelled in these tests")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    with ChatStore(tmp_path / "chats.sqlite3") as chat_store:
        yield chat_store


def test_partial_reply_is_saved_every_quarter_second(store: ChatStore) -> None:
    clock = FakeClock()
    times = [0.05, 0.10, 0.24, 0.26, 0.30, 0.40, 0.52, 0.60, 1.50]
    host = ScriptedHost(clock, times)
    conversation = store.create_conversation()
    session = ChatSession(store, host, conversation.id, clock=clock)

    saved: list[str] = []
    for event in session.send("go"):
        if isinstance(event, TextDelta):
            assert session.reply_id is not None
            saved.append(store.get_message(session.reply_id).content)
    # saved after the deltas at 0.26 (4 words), 0.52 (7 words) and 1.50 (9 words)
    expected = ["", "", "", "w0 w1 w2 w3 ", "w0 w1 w2 w3 ", "w0 w1 w2 w3 ",
                "w0 w1 w2 w3 w4 w5 w6 ", "w0 w1 w2 w3 w4 w5 w6 ",
                "w0 w1 w2 w3 w4 w5 w6 w7 w8 "]
    assert saved == expected
    reply = store.get_message(session.reply_id or 0)
    assert (reply.status, reply.content) == ("complete", expected[-1])
    assert reply.stats is not None and reply.stats["generated_tokens"] == 9


def test_request_has_system_prompt_branch_and_conversation_sampling(store: ChatStore) -> None:
    clock = FakeClock()
    host = ScriptedHost(clock, [0.1])
    conversation = store.create_conversation(system_prompt="Be terse.",
                                             settings={"temperature": 0.0, "max_tokens": 9})
    session = ChatSession(store, host, conversation.id, clock=clock)
    list(session.send("one"))
    list(session.send("two"))
    request = host.requests[-1]
    assert request.messages == (Message("system", "Be terse."), Message("user", "one"),
                                Message("assistant", "w0 "), Message("user", "two"))
    assert request.sampling == SamplingParams(temperature=0.0, max_tokens=9)


def test_sampling_params_ignore_unknown_names() -> None:
    assert sampling_params({"top_k": 3, "unknown": 1}) == SamplingParams(top_k=3)
