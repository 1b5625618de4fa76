"""Full-text search over conversation titles and message text (SQLite FTS5).

User input never reaches MATCH as syntax: each word becomes a quoted FTS5
string, so quotes, `*`, `AND`, `NEAR` or brackets are searched for as text
(or ignored when they hold no letters or digits) and cannot raise an error.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A match: in a conversation's title (`message_id` None) or in one message."""

    conversation_id: int
    message_id: int | None
    title: str
    snippet: str


def match_expression(query: str, *, prefix_last: bool = True) -> str | None:
    """An FTS5 MATCH string that finds rows holding every word of `query`.

    Returns None when the query has no searchable word. The last word also
    matches as a prefix, so results appear while the user is still typing.
    """
    query = "".join(ch if ch.isprintable() else " " for ch in query)  # NUL ends C strings
    words = [w for w in query.split() if any(ch.isalnum() for ch in w)]
    if not words:
        return None
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    if prefix_last and query[-1:].isalnum():
        quoted[-1] += "*"
    return " ".join(quoted)


_TITLE_HITS = """
    SELECT c.id, NULL, c.title,
           snippet(conversations_fts, 0, :start, :end, '…', 12)
    FROM conversations_fts
    JOIN conversations AS c ON c.id = conversations_fts.rowid
    WHERE conversations_fts MATCH :match AND c.deleted_at IS NULL
    ORDER BY conversations_fts.rank, c.updated_at DESC
    LIMIT :limit
"""

_MESSAGE_HITS = """
    SELECT c.id, m.id, c.title,
           snippet(messages_fts, 0, :start, :end, '…', 12)
    FROM messages_fts
    JOIN messages AS m ON m.id = messages_fts.rowid
    JOIN conversations AS c ON c.id = m.conversation_id
    WHERE messages_fts MATCH :match AND c.deleted_at IS NULL
    ORDER BY messages_fts.rank, m.created_at DESC
    LIMIT :limit
"""


def search(conn: sqlite3.Connection, query: str, *, limit: int = 50,
           start_mark: str = "[", end_mark: str = "]") -> list[SearchHit]:
    """Title hits first (best first), then message hits (best first), at most `limit`."""
    match = match_expression(query)
    if match is None or limit <= 0:
        return []
    params = {"match": match, "start": start_mark, "end": end_mark, "limit": limit}
    rows = conn.execute(_TITLE_HITS, params).fetchall()
    if len(rows) < limit:
        params["limit"] = limit - len(rows)
        rows += conn.execute(_MESSAGE_HITS, params).fetchall()
    return [SearchHit(int(r[0]), None if r[1] is None else int(r[1]), str(r[2]), str(r[3]))
            for r in rows]
