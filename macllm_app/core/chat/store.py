"""Conversations and their message trees in SQLite.

Durability: WAL journal with `synchronous=NORMAL`. Every public write commits
before it returns, and a WAL commit is in the OS page cache by then, so a
crash or `kill -9` of our process loses nothing. Only a power cut or kernel
panic can drop the last commits (the file stays consistent), which spares a
laptop an fsync for each of the several checkpoints per second of a stream.

Threads: one connection opened with `check_same_thread=False`, every call
serialized by a re-entrant lock, so the GUI thread and a task thread may
share one store. Several processes may open the same file (WAL + busy timeout).

Messages form a tree (`parent_id`): editing a message adds a sibling branch and
keeps the old one. `active_leaf_id` marks the branch shown and continued.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

from macllm_app.core import paths
from macllm_app.core.chat import search as fts
from macllm_app.core.chat.records import (
    CONVERSATION_COLUMNS,
    DEFAULT_TITLE,
    MESSAGE_COLUMNS,
    Conversation,
    MessageStatus,
    ReplyOutcome,
    StoredMessage,
    auto_title,
    check_settings,
    conversation_from_row,
    message_from_row,
)
from macllm_app.core.chat.schema import migrate
from macllm_app.core.chat.search import SearchHit
from macllm_app.core.errors import UserError
from macllm_app.core.types import Role

__all__ = ["ACTIVE_LEAF", "DEFAULT_TITLE", "ChatStore", "Conversation", "MessageStatus",
           "ReplyOutcome", "SearchHit", "StoredMessage"]


class _Default(enum.Enum):
    ACTIVE_LEAF = "active leaf"


ACTIVE_LEAF = _Default.ACTIVE_LEAF
"""`add_message(parent_id=ACTIVE_LEAF)`: continue the branch on screen."""


class ChatStore:
    """The chats database. `path` defaults to `paths.chats_db_path()`."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.chats_db_path()
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, isolation_level=None,
                                     check_same_thread=False, timeout=10.0)
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise UserError(f"The chats database {self.path} cannot be opened ({exc}).") from exc
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; rolled back if the body raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- conversations ----------------------------------------------------
    def create_conversation(self, title: str = DEFAULT_TITLE, system_prompt: str = "",
                            settings: dict[str, Any] | None = None) -> Conversation:
        settings_json = json.dumps(check_settings(settings or {}))
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO conversations (title, system_prompt, settings_json, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?)",
                (title, system_prompt, settings_json, now, now))
            new_id = int(cursor.lastrowid or 0)
        return self.get_conversation(new_id)

    def get_conversation(self, conversation_id: int) -> Conversation:
        """Also returns soft-deleted conversations; KeyError if there is none."""
        rows = self._query(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?",
                           (conversation_id,))
        if not rows:
            raise KeyError(f"no conversation {conversation_id}")
        return conversation_from_row(rows[0])

    def list_conversations(self) -> list[Conversation]:
        """Conversations not deleted, most recently updated first."""
        rows = self._query(f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
                           "WHERE deleted_at IS NULL ORDER BY updated_at DESC, id DESC")
        return [conversation_from_row(r) for r in rows]

    def list_deleted(self) -> list[Conversation]:
        """Soft-deleted conversations (the undo list), most recently deleted first."""
        rows = self._query(f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
                           "WHERE deleted_at IS NOT NULL ORDER BY deleted_at DESC, id DESC")
        return [conversation_from_row(r) for r in rows]

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self._update_conversation(conversation_id, {"title": title})

    def update_conversation(self, conversation_id: int, *, system_prompt: str | None = None,
                            settings: dict[str, Any] | None = None, model: str | None = None,
                            engine: str | None = None) -> Conversation:
        """Change what is given; `settings` replaces all overrides ({} clears them)."""
        changes: dict[str, Any] = {}
        if system_prompt is not None:
            changes["system_prompt"] = system_prompt
        if settings is not None:
            changes["settings_json"] = json.dumps(check_settings(settings))
        if model is not None:
            changes["model"] = model
        if engine is not None:
            changes["engine"] = engine
        if changes:
            self._update_conversation(conversation_id, changes)
        return self.get_conversation(conversation_id)

    def _update_conversation(self, conversation_id: int, changes: dict[str, Any]) -> None:
        columns = ", ".join(f"{name} = ?" for name in changes)
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE conversations SET {columns}, updated_at = ? WHERE id = ?",
                (*changes.values(), time.time(), conversation_id))
            if cursor.rowcount == 0:
                raise KeyError(f"no conversation {conversation_id}")

    def delete_conversation(self, conversation_id: int) -> None:
        """Soft delete: hidden from lists and search until restored or purged."""
        self._set_deleted(conversation_id, time.time())

    def restore_conversation(self, conversation_id: int) -> None:
        self._set_deleted(conversation_id, None)

    def _set_deleted(self, conversation_id: int, when: float | None) -> None:
        with self._write() as db:
            cursor = db.execute("UPDATE conversations SET deleted_at = ? WHERE id = ?",
                                (when, conversation_id))
            if cursor.rowcount == 0:
                raise KeyError(f"no conversation {conversation_id}")

    def purge_deleted(self, older_than_s: float) -> int:
        """Erase conversations deleted at least `older_than_s` ago; returns how many."""
        cutoff = time.time() - older_than_s
        with self._write() as db:
            cursor = db.execute("DELETE FROM conversations WHERE deleted_at IS NOT NULL "
                                "AND deleted_at <= ?", (cutoff,))
            return cursor.rowcount

    # -- messages ---------------------------------------------------------
    def get_message(self, message_id: int) -> StoredMessage:
        rows = self._query(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?",
                           (message_id,))
        if not rows:
            raise KeyError(f"no message {message_id}")
        return message_from_row(rows[0])

    def add_message(self, conversation_id: int, role: Role, content: str,
                    parent_id: int | _Default | None = ACTIVE_LEAF,
                    status: MessageStatus = "complete") -> StoredMessage:
        """Append a message under `parent_id` (None: a new root) and make it the active leaf.

        The first user message names a conversation still called DEFAULT_TITLE.
        """
        if role not in get_args(Role):
            raise ValueError(f"unknown role {role!r}")
        if status not in get_args(MessageStatus):
            raise ValueError(f"unknown message status {status!r}")
        with self._write() as db:
            row = db.execute("SELECT title, active_leaf_id FROM conversations WHERE id = ?",
                             (conversation_id,)).fetchone()
            if row is None:
                raise KeyError(f"no conversation {conversation_id}")
            title, active_leaf = row
            parent = active_leaf if parent_id is ACTIVE_LEAF else parent_id
            if parent is not None:
                owner = db.execute("SELECT conversation_id FROM messages WHERE id = ?",
                                   (parent,)).fetchone()
                if owner is None or owner[0] != conversation_id:
                    raise ValueError(f"message {parent} is not in conversation "
                                     f"{conversation_id}")
            now = time.time()
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, status,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, parent, role, content, status, now, now))
            new_id = int(cursor.lastrowid or 0)
            if role == "user" and title == DEFAULT_TITLE and content.strip():
                title = auto_title(content)
            db.execute("UPDATE conversations SET active_leaf_id = ?, title = ?, updated_at = ?"
                       " WHERE id = ?", (new_id, title, now, conversation_id))
        return self.get_message(new_id)

    def start_reply(self, conversation_id: int, parent_id: int | None) -> StoredMessage:
        """An empty assistant message, status "streaming", as the new active leaf."""
        return self.add_message(conversation_id, "assistant", "", parent_id, "streaming")

    def checkpoint_reply(self, message_id: int, content: str) -> None:
        """Save the text streamed so far (only while the reply is still streaming)."""
        with self._write() as db:
            db.execute("UPDATE messages SET content = ?, updated_at = ? "
                       "WHERE id = ? AND status = 'streaming'",
                       (content, time.time(), message_id))

    def finish_reply(self, message_id: int, content: str, status: ReplyOutcome,
                     stats: dict[str, Any] | None = None,
                     error: str | None = None) -> StoredMessage:
        if status not in get_args(ReplyOutcome):
            raise ValueError(f"a reply cannot finish as {status!r}")
        now = time.time()
        stats_json = json.dumps(stats) if stats is not None else None
        with self._write() as db:
            cursor = db.execute(
                "UPDATE messages SET content = ?, status = ?, stats_json = ?, error = ?,"
                " updated_at = ? WHERE id = ?",
                (content, status, stats_json, error, now, message_id))
            if cursor.rowcount == 0:
                raise KeyError(f"no message {message_id}")
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = "
                       "(SELECT conversation_id FROM messages WHERE id = ?)", (now, message_id))
        return self.get_message(message_id)

    def mark_interrupted_replies(self) -> int:
        """At start-up: replies left "streaming" by a crash become "interrupted"."""
        with self._write() as db:
            cursor = db.execute("UPDATE messages SET status = 'interrupted', updated_at = ? "
                                "WHERE status = 'streaming'", (time.time(),))
            return cursor.rowcount

    def message_count(self, conversation_id: int) -> int:
        """Messages stored in the conversation, on every branch."""
        rows = self._query("SELECT count(*) FROM messages WHERE conversation_id = ?",
                           (conversation_id,))
        return int(rows[0][0])

    # -- the tree ---------------------------------------------------------
    def active_path(self, conversation_id: int) -> list[StoredMessage]:
        """The branch on screen: root first, active leaf last."""
        leaf = self.get_conversation(conversation_id).active_leaf_id
        return self.path_to(leaf) if leaf is not None else []

    def path_to(self, message_id: int) -> list[StoredMessage]:
        """Messages from the root down to `message_id`."""
        rows = self._query(
            f"""WITH RECURSIVE up(id, depth) AS (
                    SELECT ?, 0
                    UNION ALL
                    SELECT m.parent_id, up.depth + 1 FROM messages AS m JOIN up ON m.id = up.id
                    WHERE m.parent_id IS NOT NULL)
                SELECT {MESSAGE_COLUMNS} FROM messages JOIN up USING (id)
                ORDER BY up.depth DESC""", (message_id,))
        return [message_from_row(r) for r in rows]

    def siblings(self, message_id: int) -> list[StoredMessage]:
        """The message and its alternatives (same parent), oldest first."""
        message = self.get_message(message_id)
        rows = self._query(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? "
            "AND parent_id IS ? ORDER BY created_at, id",
            (message.conversation_id, message.parent_id))
        return [message_from_row(r) for r in rows]

    def children(self, message_id: int) -> list[StoredMessage]:
        rows = self._query(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE parent_id = ? "
                           "ORDER BY created_at, id", (message_id,))
        return [message_from_row(r) for r in rows]

    def switch_branch(self, message_id: int) -> int:
        """Show the branch through `message_id`: its newest leaf becomes active (returned)."""
        with self._write() as db:
            row = db.execute(
                """WITH RECURSIVE down(id) AS (
                       SELECT ? UNION ALL
                       SELECT m.id FROM messages AS m JOIN down ON m.parent_id = down.id)
                   SELECT m.id, m.conversation_id FROM messages AS m JOIN down USING (id)
                   WHERE NOT EXISTS (SELECT 1 FROM messages AS c WHERE c.parent_id = m.id)
                   ORDER BY m.created_at DESC, m.id DESC LIMIT 1""",
                (message_id,)).fetchone()
            if row is None:
                raise KeyError(f"no message {message_id}")
            db.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                       (row[0], row[1]))
            return int(row[0])

    # -- search -----------------------------------------------------------
    def search(self, query: str, *, limit: int = 50, start_mark: str = "[",
               end_mark: str = "]") -> list[SearchHit]:
        """Titles and messages of conversations not deleted; matches wrapped in the marks."""
        with self._lock:
            return fts.search(self._conn, query, limit=limit, start_mark=start_mark,
                              end_mark=end_mark)
