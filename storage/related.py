"""Papers related to a paper: similar in content, computed from the library alone (no network).

"More like this" on the full-text index: the paper's most distinctive words (title and tags,
where a paper says what it is about; rarest in the library first, at most KEY_WORDS) become
a query for papers sharing at least two of them (or one, when too few share two); the newest
CANDIDATES of those are ranked by the same column-weighted BM25 as search
(storage/ranking.py) and the best `limit` kept. The cost is bounded like a search's: one
walk of the index, newest first, and one scoring pass. On PostgreSQL the same queries run on the
search vector (migration postgres/001) as tsqueries.
"""

from __future__ import annotations

import itertools
import re

import aiosqlite

from storage._rows import fetch_all, load_papers_in_order
from storage.db import dialect
from storage.models import StoredPaper
from storage.ranking import Term, bm25_scores, inverse_document_frequencies, word_term

RELATED = 5
KEY_WORDS = 5
CANDIDATES = 100
# Words that say nothing about a paper's subject, however rare the index makes them look.
STOP_WORDS = frozenset(
    """a an and are as at be by can do does for from how in into is it its more not of on or our over than
    that the their this through to toward towards under using via vs what when where which who why with
    without you your we beyond new towards based""".split()
)
_WORD = re.compile(r"[^\W_]+")


def _key_word_terms(title: str, tags: str) -> list[Term]:
    """The paper's candidate key words as terms, one per stem, in order."""
    terms: dict[bytes, Term] = {}
    for word in _WORD.findall(f"{title} {tags}".lower()):
        if len(word) < 3 or word in STOP_WORDS or word.isdigit():
            continue
        term = word_term(word)
        if term is not None:
            terms.setdefault(term.words[0][0], term)
    return list(terms.values())


async def related_papers(conn: aiosqlite.Connection, arxiv_id: str, *, limit: int = RELATED) -> list[StoredPaper]:
    """Up to `limit` papers most like `arxiv_id`, best first; [] for an unknown paper or one with nothing to go on."""
    rows = await fetch_all(conn, "SELECT id, title, tag_text FROM papers WHERE arxiv_id = ?", [arxiv_id])
    if not rows or limit <= 0:
        return []
    paper_id, title, tags = rows[0]
    terms = _key_word_terms(title, tags)
    idfs = await inverse_document_frequencies(conn, terms)
    # A word only this paper has finds nothing; a word in nearly every paper finds everything.
    ranked = sorted((idf, index) for index, idf in enumerate(idfs) if idf > 1e-6)
    keys = [terms[index] for _, index in sorted(ranked, key=lambda pair: (-pair[0], pair[1]))[:KEY_WORDS]]
    keys = [term for term in keys if await _found_elsewhere(conn, term, paper_id)]
    if not keys:
        return []
    candidates = await _candidates(conn, keys, paper_id)
    scores = await bm25_scores(conn, keys, candidates)
    best = sorted(candidates, key=lambda other: (-scores.get(other, 0.0), -other))[:limit]
    return await load_papers_in_order(conn, best)


def _matching(conn) -> str:
    """Papers matching the parameter (the dialect's expression) other than the one given next, as `rowid`."""
    if dialect(conn) == "postgresql":
        return "SELECT id AS rowid FROM papers WHERE search_vector @@ to_tsquery('paperbot_search', ?) AND id != ?"
    return "SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? AND rowid != ?"


async def _found_elsewhere(conn: aiosqlite.Connection, term: Term, paper_id: int) -> bool:
    rows = await fetch_all(conn, f"{_matching(conn)} LIMIT 1", [term.finder(conn), paper_id])
    return bool(rows)


async def _candidates(conn: aiosqlite.Connection, keys: list[Term], paper_id: int) -> list[int]:
    """The newest CANDIDATES papers sharing two key words, topped up with papers sharing one."""
    either, both = (" | ", " & ") if dialect(conn) == "postgresql" else (" OR ", " AND ")
    finders = [term.finder(conn) for term in keys]
    pairs = either.join(f"({a}{both}{b})" for a, b in itertools.combinations(finders, 2))
    found: list[int] = []
    for expression in filter(None, (pairs, either.join(finders))):
        rows = await fetch_all(
            conn, f"{_matching(conn)} ORDER BY rowid DESC LIMIT {CANDIDATES:d}", [expression, paper_id]
        )
        found += [row[0] for row in rows if row[0] not in found]
        if len(found) >= RELATED:
            break
    return found[:CANDIDATES]
