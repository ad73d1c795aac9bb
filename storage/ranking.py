"""Scoring search candidates with column-weighted BM25 from cheap term statistics.

FTS5's own bm25() walks every query term's whole posting list to count its papers, on every
search: 25–90 ms for a common word at a million papers, before ranking a single row. Here
the same formula (FTS5's, with the weights COLUMN_WEIGHTS) is computed in Python for a
bounded set of candidates (see storage/search.py) from:

- each term's paper count, estimated from its newest ESTIMATE_FROM matches (exact when it has
  fewer; otherwise the rowid span they cover, scaled to the library) and cached per
  connection until the library grows by REFRESH_GROWTH;
- the candidates' lengths in index terms, from FTS5's own docsize table, and the average
  length from its averages record;
- term counts per column: how often a word starting with the term's index stem
  (storage/tokens.py) occurs in the candidate's text, counted with bytes.count (the stem
  "model" counts models and modelling; a phrase counts as its rarest word). Close to
  FTS5's own counts at a fraction of the cost.

On PostgreSQL the statistics come from the search vector of migration postgres/001: paper
counts from its GIN index the same way, lengths from `search_length` (the vector's word count)
and the average length from all papers' (cached as above); the formula and term counts are the same.

Pure computation and a few SQL reads; no writes.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass

import aiosqlite

from storage._rows import any_of, fetch_all, id_list
from storage.db import dialect
from storage.search_query import _group_terms, _lex, _lexeme, _stem_safe_prefix
from storage.tokens import tokens

K1, B = 1.2, 0.75
# title, authors, summary, tags: where a member's remembered words count most.
COLUMN_WEIGHTS = (10.0, 2.0, 1.0, 3.0)
RANKED_COLUMNS = len(COLUMN_WEIGHTS)  # the facets column after them is filter tokens, not text
ESTIMATE_FROM = 2_000
REFRESH_GROWTH = 0.05
STATS_SECONDS = 10.0
CACHED_TERMS = 20_000  # paper counts kept per connection (~2 MB); the cache starts over beyond it


@dataclass(frozen=True)
class Term:
    """One positive term of the query as FTS5 sees it: a word, a phrase or a prefix."""

    fts: str  # the FTS5 expression that finds its papers
    words: tuple[tuple[bytes, ...], ...]  # per word of the term, the word starts (b" stem") that count as it
    tsquery: str = ""  # the tsquery text that finds its papers (PostgreSQL)

    def finder(self, conn) -> str:
        """The expression that finds its papers, in the connection's dialect."""
        return self.tsquery if dialect(conn) == "postgresql" else self.fts


def query_terms(user_text: str) -> list[Term]:
    """The query's positive terms (OR groups flattened); the terms to leave out do not score."""
    groups, _ = _group_terms(_lex(user_text))
    terms: list[Term] = []
    for group in groups:
        for term in group:
            if term.prefix:
                starts = [start for start in (term.text.lower().strip(), _stem_safe_prefix(term.text)) if start]
                if starts:
                    words = (tuple(b" " + start.encode() for start in starts),)
                    terms.append(Term(term.to_fts(), words, term.to_tsquery()))
                continue
            stems = tokens(term.text)
            if stems:
                terms.append(Term(term.to_fts(), tuple((b" " + stem.encode(),) for stem in stems), term.to_tsquery()))
    return terms


def _fts_varints(blob: bytes) -> list[int]:
    """The integers in an FTS5 record (docsize, averages): SQLite's big-endian varints."""
    values, i = [], 0
    while i < len(blob):
        value = 0
        for j in range(9):
            byte = blob[i]
            i += 1
            if j == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
    return values


@dataclass
class _Stats:
    papers: int
    average_length: float
    paper_counts: dict[str, int]
    read_at: float = 0.0


_stats: weakref.WeakKeyDictionary[aiosqlite.Connection, _Stats] = weakref.WeakKeyDictionary()


def _text_length(sizes: bytes) -> int:
    """A docsize record's token counts of the text columns, summed (sizes never need 9-byte varints)."""
    total = value = seen = 0
    for byte in sizes:
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            total += value
            value = 0
            seen += 1
            if seen == RANKED_COLUMNS:
                break
    return total


async def _library_stats(conn: aiosqlite.Connection) -> _Stats:
    """Rows and average text length from FTS5's averages record, read at most every STATS_SECONDS.

    The paper counts cached with them start over when the library has grown by REFRESH_GROWTH.
    """
    cached = _stats.get(conn)
    if cached is not None and time.monotonic() - cached.read_at < STATS_SECONDS:
        return cached
    if dialect(conn) == "postgresql":
        papers, average_length = (await fetch_all(conn, "SELECT count(*), avg(search_length)::float8 FROM papers"))[0]
        average = average_length or 1.0
    else:
        rows = await fetch_all(conn, "SELECT block FROM papers_fts_data WHERE id = 1")
        values = _fts_varints(rows[0][0]) if rows and rows[0][0] else [0]
        papers = values[0]
        totals = values[1 : 1 + RANKED_COLUMNS]
        average = sum(totals) / papers if papers else 1.0
    if cached is None or abs(papers - cached.papers) > REFRESH_GROWTH * max(cached.papers, 1):
        cached = _Stats(papers, average, {})
        _stats[conn] = cached
    cached.average_length, cached.read_at = average, time.monotonic()
    return cached


async def _paper_count(conn: aiosqlite.Connection, stats: _Stats, term: Term) -> int:
    if term.fts not in stats.paper_counts:
        if len(stats.paper_counts) >= CACHED_TERMS:
            stats.paper_counts.clear()
        newest = (
            f"""(SELECT id AS rowid FROM papers WHERE search_vector @@ to_tsquery('paperbot_search', ?)
                 ORDER BY id DESC LIMIT {ESTIMATE_FROM:d}) AS newest"""
            if dialect(conn) == "postgresql"
            else f"(SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? ORDER BY rowid DESC LIMIT {ESTIMATE_FROM:d})"
        )
        rows = await fetch_all(conn, f"SELECT count(*), min(rowid), (SELECT max(id) FROM papers) FROM {newest}", [term.finder(conn)])
        found, oldest, newest = rows[0]
        if found < ESTIMATE_FROM or not oldest:
            estimate = found
        else:
            estimate = round(found * newest / max(1, newest - oldest + 1))
        stats.paper_counts[term.fts] = min(estimate, stats.papers)
    return stats.paper_counts[term.fts]


def _idf(papers: int, with_term: int) -> float:
    """FTS5's idf, floored as FTS5 floors it so a word in most papers still counts a little."""
    return max(1e-6, math.log((papers - with_term + 0.5) / (with_term + 0.5)))


# Every ASCII byte that is not a letter or digit becomes a space, so b" " + stem finds word starts
# (bytes.translate: a table lookup per byte, far cheaper than str.translate).
_WORD_STARTS = bytes(c if c >= 128 or c == 1 or chr(c).isalnum() else 32 for c in range(256))  # \x01 splits columns


def word_term(word: str) -> Term | None:
    """A single plain word as a Term (for queries built from a paper's own words)."""
    stems = tokens(word)
    if not stems or not word.isalnum():
        return None
    return Term(f'"{word}"', tuple((b" " + stem.encode(),) for stem in stems), f"({_lexeme(word)})")


def _counter(words: tuple[tuple[bytes, ...], ...]):
    """How often a term occurs in a column's text: a word's count, a phrase's rarest word's, a prefix's starts summed."""
    if len(words) == 1 and len(words[0]) == 1:
        start = words[0][0]
        return lambda column: column.count(start)
    if all(len(group) == 1 for group in words):
        starts = [group[0] for group in words]
        return lambda column: min(map(column.count, starts))
    return lambda column: min(sum(map(column.count, group)) for group in words)


async def inverse_document_frequencies(conn: aiosqlite.Connection, terms: list[Term]) -> list[float]:
    """Each term's IDF from its (estimated, cached) paper count."""
    stats = await _library_stats(conn)
    return [_idf(stats.papers, await _paper_count(conn, stats, term)) for term in terms]


async def bm25_scores(conn: aiosqlite.Connection, terms: list[Term], ids: list[int]) -> dict[int, float]:
    """Column-weighted BM25 (FTS5's formula and COLUMN_WEIGHTS) of each candidate for `terms`.

    Term counts are word starts: the stem "model" counts models and modelling, a phrase
    counts as its rarest word. Close to FTS5's counts, at a fraction of the cost.
    """
    if not ids or not terms:
        return {}
    stats = await _library_stats(conn)
    idfs = await inverse_document_frequencies(conn, terms)
    # The four columns as one UTF-8 text, each after "\x01 ", so one lower/translate serves them all
    # (bytes.lower folds ASCII only; the index folds the rest to ASCII stems anyway).
    if dialect(conn) == "postgresql":  # lengths: the search vector's word count (migration postgres/001)
        where, param = any_of(conn, "p.id", ids)
        sql = f"""SELECT p.id, convert_to(concat_ws(chr(1) || ' ', p.title, p.authors, p.summary, p.tag_text), 'UTF8'),
                         p.search_length
                  FROM papers p WHERE {where}"""
        rows = await fetch_all(conn, sql, [param])
    else:
        rows = await fetch_all(
            conn,
            """SELECT p.id, CAST(p.title || char(1, 32) || p.authors || char(1, 32) || p.summary || char(1, 32) || p.tag_text
                           AS BLOB), d.sz
               FROM papers p JOIN papers_fts_docsize d ON d.id = p.id
               WHERE p.id IN (SELECT value FROM json_each(?))""",
            [id_list(ids)],
        )
    average = stats.average_length or 1.0
    base, per_length = K1 * (1 - B), K1 * B / average
    title_weight, authors_weight, summary_weight, tags_weight = COLUMN_WEIGHTS
    # Per term, how to count it in a column (this loop runs for up to 1,000 candidates a search):
    # a word is one count; a phrase counts as its rarest word; a prefix sums its word starts.
    counters = [(idf, _counter(term.words)) for term, idf in zip(terms, idfs)]
    scores: dict[int, float] = {}
    for paper_id, text, sizes in rows:
        # Each column starts with a space, so b" " + stem finds the words starting with it.
        title, authors, summary, tags = (b" " + text.lower().translate(_WORD_STARTS)).split(b"\x01", 3)
        norm = base + per_length * (sizes if isinstance(sizes, int) else _text_length(sizes))
        score = 0.0
        for idf, count in counters:
            tf = (title_weight * count(title) + authors_weight * count(authors)
                  + summary_weight * count(summary) + tags_weight * count(tags))
            if tf:
                score += idf * tf * (K1 + 1) / (tf + norm)
        scores[paper_id] = score
    return scores
