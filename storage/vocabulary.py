"""“Did you mean …?” for a search that found nothing, from the library's own words.

The words are those of every title and tag (migration 012: an FTS5 index with detail=none and
its fts5vocab table, kept by triggers). A query word no title or tag holds is replaced by
the closest word that does (edit distance counting a swap of neighbours as one edit, via
rapidfuzz: at most 1 edit for words of up to MAX_ONE_EDIT letters, 2 for longer ones; ties
go to the word in more papers). Only
words starting with the same letter are read: one range of the sorted vocabulary (cached a
while), and typos rarely hit the first letter. The correction is offered only if it finds papers.

On PostgreSQL the words are the `search_words` table (migration postgres/012: word and paper
count, kept by a trigger), read the same way.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import unicodedata
import weakref

import aiosqlite
from rapidfuzz import process
from rapidfuzz.distance import OSA

from storage._rows import fetch_all
from storage.db import dialect
from storage.search_query import QueryError, _lex

MAX_ONE_EDIT = 4
MIN_WORD = 3
MAX_TIED = 8  # equally close words whose paper counts are compared
CACHE_SECONDS = 600.0
_cache: weakref.WeakKeyDictionary[aiosqlite.Connection, dict[str, tuple[float, list[str]]]] = (
    weakref.WeakKeyDictionary()
)
_WORD = re.compile(r"[^\W_]+")


def _fold(word: str) -> str:
    """Lower case without diacritics, as the vocabulary's unicode61 tokenizer stores words."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def _vocabulary(conn) -> str:
    """The words and their paper counts as (term, doc), in the connection's dialect."""
    if dialect(conn) == "postgresql":
        return "(SELECT word AS term, papers AS doc FROM search_words) AS search_words_vocab"
    return "search_words_vocab"


async def _known(conn: aiosqlite.Connection, word: str) -> bool:
    return bool(await fetch_all(conn, f"SELECT 1 FROM {_vocabulary(conn)} WHERE term = ?", [word]))


async def _words_starting(conn: aiosqlite.Connection, letter: str) -> list[str]:
    """The library's words starting with `letter`, cached per connection for CACHE_SECONDS.

    fts5vocab reads every listed word's paper list to count it, whatever the query selects,
    so a range read grows with the library; one read per letter now and then keeps a typo's
    suggestion cheap, and counts are read only for the few closest words.
    """
    cache = _cache.setdefault(conn, {})
    cached = cache.get(letter)
    if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
        rows = await fetch_all(
            conn, f"SELECT term FROM {_vocabulary(conn)} WHERE term >= ? AND term < ?", [letter, letter + "\U0010ffff"]
        )
        cached = (time.monotonic(), [row[0] for row in rows])
        cache[letter] = cached
    return cached[1]


async def closest_word(conn: aiosqlite.Connection, word: str) -> str | None:
    """The library word closest to `word` (which no title or tag holds), or None if none is close."""
    limit = 1 if len(word) <= MAX_ONE_EDIT else 2
    words = [term for term in await _words_starting(conn, word[0]) if abs(len(term) - len(word)) <= limit]
    found = process.extract(word, words, scorer=OSA.distance, score_cutoff=limit, limit=None)
    if not found:
        return None
    nearest = min(distance for _, distance, _ in found)
    tied = sorted(term for term, distance, _ in found if distance == nearest)[:MAX_TIED]
    papers = {}
    for term in tied:
        rows = await fetch_all(conn, f"SELECT doc FROM {_vocabulary(conn)} WHERE term = ?", [term])
        papers[term] = rows[0][0] if rows else 0
    return min(tied, key=lambda term: (-papers[term], term))


async def did_you_mean(
    conn: aiosqlite.Connection,
    query: str,
    *,
    tag: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    has_code: bool | None = None,
) -> str | None:
    """`query` with its unknown words corrected, if that finds papers (with the same filters); else None."""
    from storage.search import search  # search imports the ranking; keep this module light to import

    corrected = query
    changed = False
    for item in _lex(query):
        if isinstance(item, str) or item.negated or item.prefix:
            continue
        for word in _WORD.findall(item.text):
            folded = _fold(word)
            if len(folded) < MIN_WORD or folded.isdigit() or await _known(conn, folded):
                continue
            better = await closest_word(conn, folded)
            if better is None:
                continue
            corrected = re.sub(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", better, corrected, count=1)
            changed = True
    if not changed:
        return None
    try:
        page = await search(conn, corrected, tag=tag, since=since, until=until, has_code=has_code, limit=1)
    except QueryError:
        return None
    return corrected if page.total else None
