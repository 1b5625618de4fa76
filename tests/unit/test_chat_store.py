"""ChatStore on a real SQLite file: schema, conversations, message trees, search."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from macllm_app.core.chat.schema import SCHEMA_VERSION
from macllm_app.core.chat.store import DEFAULT_TITLE, ChatStore
from macllm_app.core.errors import UserError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    with ChatStore(tmp_path / "chats.sqlite3") as chat_store:
        yield chat_store


def test_default_path_is_in_macllm_home(macllm_home: Path) -> None:
    with ChatStore() as chat_store:
        assert chat_store.path == macllm_home / "chats.sqlite3"


def test_new_database_uses_wal_foreign_keys_and_latest_schema(store: ChatStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


# The schema as the first release wrote it. Kept verbatim: it is what users have on disk.
V1_DDL = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL DEFAULT 'New chat',
    system_prompt TEXT NOT NULL DEFAULT '',
    settings_json TEXT NOT NULL DEFAULT '{}',
    model TEXT, engine TEXT, active_leaf_id INTEGER,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'complete'
        CHECK (status IN ('complete', 'streaming', 'interrupted', 'cancelled', 'error')),
    error TEXT, stats_json TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX messages_by_conversation ON messages(conversation_id, parent_id);
CREATE INDEX messages_by_parent ON messages(parent_id);
CREATE INDEX messages_by_status ON messages(status);
INSERT INTO conversations VALUES
    (1, 'Volcano trip', 'Be brief.', '{"temperature": 0.2}', 'smol', 'llama.cpp', 2, 1.0, 2.0);
INSERT INTO messages VALUES
    (1, 1, NULL, 'user', 'Which volcano should we climb?', 'complete', NULL, NULL, 1.0, 1.0),
    (2, 1, 1, 'assistant', 'Try Stromboli.', 'complete', NULL, '{"decode_tps": 9.5}', 2.0, 2.0);
PRAGMA user_version = 1;
"""


def test_version_1_database_migrates_without_data_loss(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(V1_DDL)
    old.close()

    with ChatStore(path) as store:
        conversation = store.get_conversation(1)
        assert conversation.title == "Volcano trip"
        assert conversation.system_prompt == "Be brief."
        assert conversation.settings == {"temperature": 0.2}
        assert conversation.deleted_at is None
        path_messages = store.active_path(1)
        assert [m.content for m in path_messages] == ["Which volcano should we climb?",
                                                      "Try Stromboli."]
        assert path_messages[1].stats == {"decode_tps": 9.5}
        assert [h.message_id for h in store.search("stromboli")] == [2]
        assert [h.conversation_id for h in store.search("volcano")] == [1, 1]
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with ChatStore(path) as again:  # opening a migrated file changes nothing
        assert again.message_count(1) == 2


def test_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(UserError, match="newer MacLLM"):
        ChatStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_a_file_that_is_not_a_database_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(UserError, match="cannot be opened"):
        ChatStore(path)
    assert path.read_bytes() == b"this is not sqlite " * 100


def test_conversation_crud_and_ordering(store: ChatStore) -> None:
    first = store.create_conversation()
    second = store.create_conversation("Recipes", system_prompt="You are a chef.",
                                       settings={"temperature": 0.3, "seed": 7})
    assert first.title == DEFAULT_TITLE
    assert second.settings == {"temperature": 0.3, "seed": 7}
    assert [c.id for c in store.list_conversations()] == [second.id, first.id]

    store.rename_conversation(first.id, "Renamed")
    assert [c.id for c in store.list_conversations()] == [first.id, second.id]
    updated = store.update_conversation(second.id, system_prompt="", settings={"top_k": 5},
                                        model="SmolLM2", engine="llama.cpp")
    assert (updated.system_prompt, updated.settings) == ("", {"top_k": 5})
    assert (updated.model, updated.engine) == ("SmolLM2", "llama.cpp")
    assert store.update_conversation(second.id).settings == {"top_k": 5}
    with pytest.raises(KeyError):
        store.get_conversation(999)
    with pytest.raises(KeyError):
        store.rename_conversation(999, "x")


@pytest.mark.parametrize("settings", [{"temprature": 1.0}, {"top_k": 2.5}, {"top_p": "high"},
                                      {"max_tokens": True}])
def test_bad_sampling_settings_are_rejected(store: ChatStore,
                                            settings: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="sampling setting"):
        store.create_conversation(settings=settings)


def test_add_message_is_committed_before_it_returns(store: ChatStore) -> None:
    conversation = store.create_conversation()
    message = store.add_message(conversation.id, "user", "hello")
    other = sqlite3.connect(store.path)  # another connection sees only committed data
    row = other.execute("SELECT content FROM messages WHERE id = ?", (message.id,)).fetchone()
    other.close()
    assert row == ("hello",)
    assert store.get_conversation(conversation.id).active_leaf_id == message.id


def test_add_message_refuses_a_parent_from_another_conversation(store: ChatStore) -> None:
    one, two = store.create_conversation(), store.create_conversation()
    message = store.add_message(one.id, "user", "hi")
    with pytest.raises(ValueError, match="not in conversation"):
        store.add_message(two.id, "user", "hi", parent_id=message.id)
    assert store.message_count(two.id) == 0


def test_first_user_message_names_the_chat(store: ChatStore) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user",
                      "  Please explain how   photosynthesis works in desert plants  ")
    title = store.get_conversation(conversation.id).title
    assert title == "Please explain how photosynthesis works…"
    store.add_message(conversation.id, "user", "Another question")
    assert store.get_conversation(conversation.id).title == title

    named = store.create_conversation("My title")
    store.add_message(named.id, "user", "Short one")
    assert store.get_conversation(named.id).title == "My title"
    short = store.create_conversation()
    store.add_message(short.id, "user", "Hi there")
    assert store.get_conversation(short.id).title == "Hi there"


def test_soft_delete_restore_and_purge(store: ChatStore) -> None:
    keep, gone = store.create_conversation("Keep"), store.create_conversation("Gone")
    store.add_message(gone.id, "user", "secret plans")
    store.delete_conversation(gone.id)
    assert [c.id for c in store.list_conversations()] == [keep.id]
    assert [c.id for c in store.list_deleted()] == [gone.id]
    assert store.search("secret") == []
    assert store.purge_deleted(older_than_s=3600) == 0  # too recent

    store.restore_conversation(gone.id)
    assert {c.id for c in store.list_conversations()} == {keep.id, gone.id}
    assert [h.conversation_id for h in store.search("secret")] == [gone.id]

    store.delete_conversation(gone.id)
    assert store.purge_deleted(older_than_s=0) == 1
    with pytest.raises(KeyError):
        store.get_conversation(gone.id)
    assert store._conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert store._conn.execute(
        "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'secret'").fetchone()[0] == 0


def test_search_finds_titles_and_messages_with_markers(store: ChatStore) -> None:
    pasta = store.create_conversation("Pasta recipes")
    store.add_message(pasta.id, "user", "How long should I boil fresh pasta?")
    other = store.create_conversation("Travel")
    store.add_message(other.id, "user", "Is Café Pasta in Rome any good?")
    hits = store.search("pasta")
    assert hits[0].conversation_id == pasta.id
    assert hits[0].message_id is None
    assert hits[0].snippet == "[Pasta] recipes"
    assert {(h.conversation_id, h.title) for h in hits[1:]} == {(pasta.id, "Pasta recipes"),
                                                              (other.id, "Travel")}
    assert all("[pasta]" in h.snippet.lower() for h in hits)
    marked = store.search("cafe", start_mark="<b>", end_mark="</b>")
    assert [h.snippet for h in marked] == ["Is <b>Café</b> Pasta in Rome any good?"]
    assert len(store.search("pasta", limit=2)) == 2


def test_search_matches_every_word_and_a_prefix_of_the_last(store: ChatStore) -> None:
    conversation = store.create_conversation("Notes")
    message = store.add_message(conversation.id, "user", "the quick brown fox jumps")
    assert [h.message_id for h in store.search("quick fo")] == [message.id]
    assert store.search("quick fo ") == []  # a finished word is not a prefix
    assert store.search("quick cat") == []
    assert [h.message_id for h in store.search("FOX Quick")] == [message.id]


@pytest.mark.parametrize("query", [
    '"', '""', "*", "AND", "OR", "NOT", "(", ")", "foo AND (", "NEAR(a b", '"unbalanced',
    "a OR", "-x", "^start", "content:fox", "title:x", "'", "", "   ", ":", "{a b}", "fox*",
    "a + b", "\\", "%", "_", "[x]", "fox\x00", "🦊", "AND OR NOT", '"fox" AND "*"',
])
def test_hostile_queries_never_raise(store: ChatStore, query: str) -> None:
    conversation = store.create_conversation("AND OR NOT (fox)")
    store.add_message(conversation.id, "user", 'a "quoted" fox* with (brackets) and -dashes')
    hits = store.search(query)
    assert all(h.conversation_id == conversation.id for h in hits)


def test_words_with_syntax_characters_are_searched_as_text(store: ChatStore) -> None:
    conversation = store.create_conversation("Misc")
    message = store.add_message(conversation.id, "user", "the fox said AND then left")
    assert [h.message_id for h in store.search('"fox" AND')] == [message.id]
    assert [h.message_id for h in store.search("(fox*)")] == [message.id]
    assert store.search("fox NOT") == []


def test_search_index_follows_edits_of_titles_and_replies(store: ChatStore) -> None:
    conversation = store.create_conversation()
    user = store.add_message(conversation.id, "user", "Tell me about zebras")
    reply = store.start_reply(conversation.id, user.id)
    store.checkpoint_reply(reply.id, "Zebras have stripes")
    assert [h.message_id for h in store.search("stripes")] == [reply.id]
    store.finish_reply(reply.id, "Zebras have black stripes", "complete")
    assert [h.message_id for h in store.search("black")] == [reply.id]
    store.rename_conversation(conversation.id, "Savanna animals")
    assert [h.message_id for h in store.search("savanna")] == [None]
    assert {h.message_id for h in store.search("zebras")} == {user.id, reply.id}


def test_branches_keep_old_replies_and_switch_back(store: ChatStore) -> None:
    conversation = store.create_conversation()
    question = store.add_message(conversation.id, "user", "Name a colour")
    first = store.add_message(conversation.id, "assistant", "Red")
    follow_up = store.add_message(conversation.id, "user", "Another?")
    follow_reply = store.add_message(conversation.id, "assistant", "Blue")
    # edit-and-resend of the question: a sibling under the same (root) parent
    edited = store.add_message(conversation.id, "user", "Name a fruit", parent_id=None)
    second = store.add_message(conversation.id, "assistant", "Apple")

    assert [m.id for m in store.active_path(conversation.id)] == [edited.id, second.id]
    assert [m.id for m in store.siblings(question.id)] == [question.id, edited.id]
    assert [m.id for m in store.siblings(edited.id)] == [question.id, edited.id]
    assert store.message_count(conversation.id) == 6

    assert store.switch_branch(question.id) == follow_reply.id
    assert [m.id for m in store.active_path(conversation.id)] == [
        question.id, first.id, follow_up.id, follow_reply.id]
    # a regenerated reply beside "Red" becomes the newest leaf under the question
    regenerated = store.add_message(conversation.id, "assistant", "Green",
                                    parent_id=question.id)
    assert [m.id for m in store.siblings(first.id)] == [first.id, regenerated.id]
    store.switch_branch(edited.id)
    assert store.switch_branch(question.id) == regenerated.id
    assert store.switch_branch(first.id) == follow_reply.id
    assert store.switch_branch(second.id) == second.id
    with pytest.raises(KeyError):
        store.switch_branch(12345)


def test_reply_lifecycle_and_interrupted_replies(store: ChatStore) -> None:
    conversation = store.create_conversation()
    user = store.add_message(conversation.id, "user", "Count to three")
    reply = store.start_reply(conversation.id, user.id)
    assert (reply.role, reply.status, reply.content) == ("assistant", "streaming", "")
    assert store.get_conversation(conversation.id).active_leaf_id == reply.id
    store.checkpoint_reply(reply.id, "one, two")
    assert store.get_message(reply.id).content == "one, two"

    done = store.start_reply(conversation.id, user.id)
    finished = store.finish_reply(done.id, "one, two, three", "complete",
                                  stats={"generated_tokens": 6, "model": "m"})
    assert finished.stats == {"generated_tokens": 6, "model": "m"}
    store.checkpoint_reply(done.id, "overwritten?")  # finished replies are never rewritten
    assert store.get_message(done.id).content == "one, two, three"

    assert store.mark_interrupted_replies() == 1
    interrupted = store.get_message(reply.id)
    assert (interrupted.status, interrupted.content) == ("interrupted", "one, two")
    assert store.mark_interrupted_replies() == 0
    with pytest.raises(ValueError, match="cannot finish"):
        store.finish_reply(done.id, "x", "streaming")  # type: ignore[arg-type]


def test_gui_thread_and_worker_thread_share_one_store(store: ChatStore) -> None:
    conversation = store.create_conversation()
    user = store.add_message(conversation.id, "user", "go")
    reply = store.start_reply(conversation.id, user.id)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for i in range(200):
                store.checkpoint_reply(reply.id, "x" * i)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        store.list_conversations()
        store.active_path(conversation.id)
        store.search("go")
    thread.join()
    assert errors == []
    assert store.get_message(reply.id).content == "x" * 199
