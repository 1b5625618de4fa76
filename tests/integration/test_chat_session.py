"""Chat turns end to end: a killed writer process, and the real engine host with the
default model (cancel, abandon, host killed mid-reply, branches)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core.chat.session import ChatSession
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.errors import EngineCrashed, EngineError
from macllm_app.core.types import Finished, TextDelta

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import sys, time
    from macllm_app.core.chat.session import ChatSession
    from macllm_app.core.chat.store import ChatStore
    from macllm_app.core.types import Finished, GenerationStats, TextDelta

    class SlowTokens:
        model = None
        def stream(self, request):
            for i in range(1_000_000):
                time.sleep(0.002)
                yield TextDelta(f"token{i} ", (i,))
            yield Finished(GenerationStats())
        def cancel(self):
            pass

    store = ChatStore(sys.argv[1])
    conversation = store.create_conversation()
    session = ChatSession(store, SlowTokens(), conversation.id, checkpoint_interval_s=0.02)
    print(conversation.id, flush=True)
    for _ in session.send("Tell me a very long story"):
        pass
""")


def _streamed_reply(path: Path) -> str:
    conn = sqlite3.connect(path, timeout=10)
    try:
        row = conn.execute("SELECT content FROM messages WHERE status = 'streaming'").fetchone()
    finally:
        conn.close()
    return row[0] if row else ""


def test_writer_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        conversation_id = int(writer.stdout.readline())
        deadline = time.monotonic() + 60
        while len(_streamed_reply(path)) < 500:  # several checkpoints in
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(10)
        if writer.stdout is not None:
            writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with ChatStore(path) as store:
        user, reply = store.active_path(conversation_id)
        assert (user.role, user.content) == ("user", "Tell me a very long story")
        assert (reply.role, reply.status) == ("assistant", "streaming")
        assert reply.content.startswith("token0 token1 ")
        assert store.mark_interrupted_replies() == 1
        after = store.get_message(reply.id)
        assert (after.status, after.content) == ("interrupted", reply.content)
        assert store.search("token0")[0].message_id == reply.id


# -- with the real engine host and the default model ---------------------------------
STORY = "Write a long story about a dragon who learns to bake bread."


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    with ChatStore(tmp_path / "chats.sqlite3") as chat_store:
        yield chat_store


def _session(store: ChatStore, host: Any, **settings: Any) -> ChatSession:
    conversation = store.create_conversation(settings={"seed": 1, **settings})
    return ChatSession(store, host, conversation.id)


def _text(events: Iterator[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.llamacpp
def test_a_turn_stores_the_user_message_and_the_reply_with_stats(
        store: ChatStore, llama_host: Any) -> None:
    session = _session(store, llama_host, temperature=0.0, max_tokens=24)
    events = list(session.send("What is the capital of France?"))
    assert isinstance(events[-1], Finished)
    user, reply = store.active_path(session.conversation_id)
    assert (user.role, user.content) == ("user", "What is the capital of France?")
    assert reply.role == "assistant" and reply.status == "complete"
    assert reply.content == _text(iter(events)) and reply.content.strip()
    assert reply.stats is not None
    assert reply.stats["generated_tokens"] > 0 and reply.stats["decode_tps"] > 0
    assert reply.stats["model"] == llama_host.model.name
    assert reply.stats["engine"] == "llama.cpp"
    conversation = store.get_conversation(session.conversation_id)
    assert (conversation.model, conversation.engine) == (llama_host.model.name, "llama.cpp")
    assert conversation.title == "What is the capital of France?"


@pytest.mark.llamacpp
def test_regenerate_and_edit_and_resend_keep_every_branch(
        store: ChatStore, llama_host: Any) -> None:
    session = _session(store, llama_host, max_tokens=8)
    list(session.send("Name a colour."))
    first_user, first_reply = store.active_path(session.conversation_id)
    list(session.regenerate())
    _, second_reply = store.active_path(session.conversation_id)
    assert [m.id for m in store.siblings(first_reply.id)] == [first_reply.id, second_reply.id]
    assert second_reply.status == "complete"

    list(session.edit_and_resend(first_user.id, "Name a fruit."))
    edited, edited_reply = store.active_path(session.conversation_id)
    assert edited.content == "Name a fruit." and edited_reply.status == "complete"
    assert [m.id for m in store.siblings(edited.id)] == [first_user.id, edited.id]
    assert store.message_count(session.conversation_id) == 5

    store.switch_branch(first_user.id)
    assert [m.id for m in store.active_path(session.conversation_id)] == [
        first_user.id, second_reply.id]


@pytest.mark.llamacpp
def test_cancel_mid_reply_stores_the_partial_reply_as_cancelled(
        store: ChatStore, llama_host: Any) -> None:
    session = _session(store, llama_host, max_tokens=400)
    received: list[str] = []
    finished: Finished | None = None
    for event in session.send(STORY):
        if isinstance(event, TextDelta):
            received.append(event.text)
            session.cancel()
        else:
            finished = event
    assert finished is not None and finished.stats.finish_reason == "cancelled"
    assert finished.stats.generated_tokens < 400
    reply = store.active_path(session.conversation_id)[-1]
    assert reply.status == "cancelled"
    assert reply.content == "".join(received) and reply.content
    assert reply.stats is not None and reply.stats["finish_reason"] == "cancelled"


@pytest.mark.llamacpp
def test_abandoned_stream_is_stored_as_cancelled_and_the_host_stays_usable(
        store: ChatStore, llama_host: Any) -> None:
    session = _session(store, llama_host, max_tokens=400)
    stream = session.send(STORY)
    first = next(stream)
    assert isinstance(first, TextDelta)
    stream.close()  # type: ignore[attr-defined]
    reply = store.active_path(session.conversation_id)[-1]
    assert (reply.status, reply.content) == ("cancelled", first.text)

    store.update_conversation(session.conversation_id, settings={"max_tokens": 4})
    list(session.send("Hello"))
    assert store.active_path(session.conversation_id)[-1].status == "complete"


@pytest.mark.llamacpp
def test_killed_host_raises_and_stores_the_partial_reply_as_interrupted(
        store: ChatStore, llama_host: Any) -> None:
    session = _session(store, llama_host, max_tokens=400)
    received: list[str] = []
    try:
        with pytest.raises(EngineCrashed):
            for event in session.send(STORY):
                if isinstance(event, TextDelta):
                    if not received:
                        os.kill(llama_host.pid, signal.SIGKILL)
                    received.append(event.text)
        user, reply = store.active_path(session.conversation_id)
        assert user.content == STORY
        assert reply.status == "interrupted"
        assert reply.content == "".join(received) and reply.content
        assert reply.error is not None and "SIGKILL" in reply.error
    finally:
        llama_host.load(llama_host.config)  # the host is shared by the test session


@pytest.mark.llamacpp
def test_engine_error_stores_the_reply_as_error_and_keeps_the_message(
        store: ChatStore, llama_host: Any) -> None:
    session = _session(store, llama_host, max_tokens=16)
    too_long = "word " * 5000
    with pytest.raises(EngineError, match="too long"):
        list(session.send(too_long))
    user, reply = store.active_path(session.conversation_id)
    assert user.content == too_long
    assert (reply.status, reply.content) == ("error", "")
    assert reply.error is not None and "too long" in reply.error
    assert llama_host.is_alive()
