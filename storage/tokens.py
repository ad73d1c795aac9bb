"""The full-text index's own tokenizer, for short texts in Python: `tokens("Diffusion Models") == ["diffus", "model"]`.

Ranking and did-you-mean compare what a member typed with the terms in the index. Those
terms come out of FTS5's `porter unicode61 remove_diacritics 2` tokenizer (migration 001);
any re-implementation would drift from it. So the text goes through that very tokenizer: a
private in-memory FTS5 table read back through an fts5vocab `instance` table. About 50 µs a
call; results are cached because queries repeat. On PostgreSQL too: ranking counts a query's words
in the candidates' text in Python with these terms, whatever stemmer the index itself uses.
"""

from __future__ import annotations

import functools
import sqlite3
import threading

TOKENIZER = "porter unicode61 remove_diacritics 2"  # as papers_fts (migrations 001 and 008)

_lock = threading.Lock()
_conn: sqlite3.Connection | None = None


def _connection() -> sqlite3.Connection:
    global _conn
    if _conn is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.execute(f"CREATE VIRTUAL TABLE text USING fts5 (body, tokenize = '{TOKENIZER}')")
        conn.execute("CREATE VIRTUAL TABLE text_terms USING fts5vocab (text, 'instance')")
        _conn = conn
    return _conn


@functools.lru_cache(maxsize=4096)
def tokens(text: str) -> tuple[str, ...]:
    """The index terms of `text`, in order (stemmed, folded, without diacritics)."""
    if not any(char.isalnum() for char in text):
        return ()
    with _lock:
        conn = _connection()
        conn.execute("BEGIN")
        try:
            conn.execute("INSERT INTO text (rowid, body) VALUES (1, ?)", (text,))
            rows = conn.execute("SELECT term FROM text_terms ORDER BY offset").fetchall()
        finally:
            conn.execute("ROLLBACK")
    return tuple(row[0] for row in rows)
