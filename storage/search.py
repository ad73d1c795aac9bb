"""Full-text search and tag browsing, returning pages of hits with Markdown snippets.

How results are ordered, and why not by FTS5's bm25(): bm25() first counts, for each
phrase of the query, the papers holding it anywhere in the library (its IDF). For a common
word in a million papers that alone takes 25–90 ms, however few papers the filters leave,
and ordering every match by it costs a row's work per match. So a search ranks a bounded
set of candidates:

- the newest RANKED_MATCHES matches (one cheap walk of the index, newest first, which also
  counts them), and
- the newest TITLE_MATCHES papers with every word in the title, however old (among the
  newest ~TITLE_SCAN matches): where a paper a member remembers by a few title words or its
  short name is (benchmarks/relevance.py).

Candidates with every word in the title come first, then the others; each group is ordered
by column-weighted BM25 (storage/ranking.py: FTS5's formula and weights title 10, authors 2,
summary 1, tags 3, from cached term statistics): every title match (at most TITLE_MATCHES),
and the newest others up to SCORED candidates in all; the rest follows newest first. The
older matches outside the candidates come after them, newest first, so every match is
reachable by paging. Beyond RANKED_MATCHES the total is a lower bound
(`SearchPage.total_is_exact`).

The trade: a title match older than the newest ~TITLE_SCAN matches of a very common query
is not pulled forward, and term counts are close to FTS5's, not equal (storage/ranking.py).

On PostgreSQL the same steps run on the search vector of migration postgres/001 (a GIN index;
title matches on the title vector of postgres/012; filters on the facet-token array), with the same
candidates, the same BM25 (storage/ranking.py) and ts_headline for snippets; each step says
both dialects side by side.

Snippets are plain text on one line with the matched words wrapped in `**`;
the text's own asterisks are dropped so every `**` is a marker. Escaping for a
display (Discord) is the client's job.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass

import aiosqlite
import asyncpg

from storage._rows import any_of, fetch_all, id_list, load_papers_in_order
from storage.models import SearchHit, SearchPage
from storage.db import budgeted, dialect
from storage.facets import CODE, date_range_tokens, facet_match, tag_token
from storage.ranking import bm25_scores, query_terms
from storage.search_query import QueryError, _group_terms, _lex, to_fts_query, to_tsquery_text
from storage.tokens import tokens
from storage.tags import tag_id

_MATCHES = "FROM papers_fts WHERE papers_fts MATCH ?"
_TSQUERY = "to_tsquery('paperbot_search', ?)"  # PostgreSQL: the query text of search_query.to_tsquery_text
_SUMMARY_COLUMN = 2
RANKED_MATCHES = 1_000  # see the module docstring
TITLE_MATCHES = 1_000
TITLE_SCAN = 10_000  # matches the title walk may pass through; see _newest_title_matches
SCORED = 200  # candidates scored by BM25 at least: every title match, then the newest others; see _ranked
SNIPPET_TOKENS = 24
_SNIPPETS_PER_STATEMENT = 100
_SNIPPET_GAP = 2_000  # rowids between two page ids read in one range rather than two
SUMMARY_PREVIEW_CHARS = 200
_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use markers, swapped for ** after cleaning the text


def one_line(text: str) -> str:
    """Text on one line, without asterisks, so the only `**` in a snippet are match markers."""
    return " ".join(text.replace("*", " ").split())


def _marked_snippet(raw: str) -> str:
    return one_line(raw).replace(_OPEN, "**").replace(_CLOSE, "**")


def summary_preview(summary: str) -> str:
    """The start of a summary, cut at a word, for lists that have no matched words to show."""
    text = one_line(summary)
    if len(text) > SUMMARY_PREVIEW_CHARS:
        text = text[:SUMMARY_PREVIEW_CHARS].rsplit(" ", 1)[0] + "…"
    return text


def _is_query_syntax_error(error: sqlite3.OperationalError | asyncpg.PostgresError) -> bool:
    message = str(error).lower()
    if isinstance(error, asyncpg.PostgresError):
        return "tsquery" in message
    return any(part in message for part in ("fts5", "syntax error", "no such column", "unterminated", "match"))


# What a database raises for a query it cannot parse (asyncpg: `syntax error in tsquery`).
_QUERY_ERRORS = (sqlite3.OperationalError, asyncpg.PostgresSyntaxError)


def _words(conn, query: str) -> str:
    """The user's words as the dialect's full-text expression (a MATCH expression, or tsquery text)."""
    if dialect(conn) == "postgresql":
        return f"({to_tsquery_text(query)})"
    return f"({to_fts_query(query)})"


async def _day_tokens(conn: aiosqlite.Connection, since: dt.date | None, until: dt.date | None) -> list[str]:
    """Facet tokens for appearance days in [since, until], clamped to the days the library has."""
    # Two subqueries, so each is one step along digests_by_day (migration 013) rather than a scan.
    first, last = (await fetch_all(conn, "SELECT (SELECT min(day) FROM digests), (SELECT max(day) FROM digests)"))[0]
    if first is None:
        return []
    start = max(since or dt.date.min, dt.date.fromisoformat(first))
    end = min(until or dt.date.max, dt.date.fromisoformat(last))
    return date_range_tokens(start, end) if start <= end else []


@dataclass(frozen=True)
class _Filters:
    """Search filters as facet terms (see storage/facets.py), added to any words expression.

    SQLite: FTS5 terms on the index's facets column (`match`). PostgreSQL: each group is "has
    any of these tokens" on the facet array's GIN index (`where`).
    """

    terms: tuple[str, ...] = ()
    without_code: bool = False
    token_groups: tuple[tuple[str, ...], ...] = ()

    def match(self, words: str) -> str:
        expression = " AND ".join((words, *self.terms))
        return f"({expression}) NOT {facet_match(CODE)}" if self.without_code else expression

    def where(self, words: str | None, in_title: str | None = None) -> tuple[str, list]:
        """PostgreSQL: papers matching the tsquery texts `words` (anywhere) and `in_title` (in the title)
        and the filters, as SQL and its parameters."""
        conditions, params = [], []
        for column, query in (("title_vector", in_title), ("search_vector", words)):
            if query is not None:
                conditions.append(f"{column} @@ {_TSQUERY}")
                params.append(query)
        for group in self.token_groups:
            conditions.append("string_to_array(facet_text, ' ') && ?::text[]")
            params.append(list(group))
        if self.without_code:
            conditions.append("NOT string_to_array(facet_text, ' ') @> ?::text[]")
            params.append([CODE])
        return " AND ".join(conditions), params


async def _filters(
    conn: aiosqlite.Connection,
    tag: str | None,
    since: dt.date | None,
    until: dt.date | None,
    has_code: bool | None,
) -> _Filters | None:
    """The filters as facet terms; None when no paper can pass them (an unknown tag, days outside the library)."""
    groups: list[tuple[str, ...]] = []
    if tag is not None:
        wanted_tag = await tag_id(conn, tag)
        if wanted_tag is None:
            return None
        groups.append((tag_token(wanted_tag),))
    if since is not None or until is not None:
        days = await _day_tokens(conn, since, until)
        if not days:
            return None
        groups.append(tuple(days))
    if has_code is True:
        groups.append((CODE,))
    terms = tuple(facet_match(*group) for group in groups)
    return _Filters(terms, without_code=has_code is False, token_groups=tuple(groups))


@budgeted
async def search(
    conn: aiosqlite.Connection,
    query: str,
    *,
    tag: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    has_code: bool | None = None,
    limit: int = 10,
    offset: int = 0,
) -> SearchPage:
    """Papers matching `query` (see search_query for the syntax), best first, one page at a time.

    "Best" and the total are as the module docstring says. Raises QueryError (a
    ValueError with a message for the user) when the query has nothing to search
    for or SQLite rejects it; never OperationalError for anything the user typed.
    """
    words = _words(conn, query)
    filters = await _filters(conn, tag, since, until, has_code)
    if filters is None:
        return SearchPage(hits=[], total=0)
    try:
        order = await _order(conn, query, words, filters)
        ids = await _page(conn, order, max(0, limit), max(0, offset))
        snippets = await _snippets(conn, words, ids)
    except _QUERY_ERRORS as error:
        if _is_query_syntax_error(error):
            raise QueryError("Sorry, that search could not be understood; try plain words.") from error
        raise
    papers = await load_papers_in_order(conn, ids)
    return SearchPage(
        hits=[SearchHit(paper=p, snippet=snippets.get(i, "")) for i, p in zip(ids, papers)],
        total=len(order.ranked),
        total_is_exact=order.total_is_exact,
    )


@dataclass(frozen=True)
class _Where:
    """PostgreSQL's counterpart of a MATCH expression: the words (tsquery text) and the filters."""

    words: str
    filters: _Filters

    def sql(self) -> tuple[str, list]:
        return self.filters.where(self.words)


@dataclass(frozen=True)
class _Order:
    """A search's order: the ranked candidates, then (`_page`) the older matches beyond the window."""

    match: str | _Where  # the words and filters as one MATCH expression (SQLite) or a _Where (PostgreSQL)
    ranked: list[int]
    window: list[int]
    total_is_exact: bool


async def _order(conn: aiosqlite.Connection, query: str, words: str, filters: _Filters) -> _Order:
    """The candidates of the module docstring, ranked; raises OperationalError as SQLite does."""
    match = _Where(words, filters) if dialect(conn) == "postgresql" else filters.match(words)
    newest = await _newest_matches(conn, match)
    window, total_is_exact = newest[:RANKED_MATCHES], len(newest) <= RANKED_MATCHES
    in_title = await _newest_title_matches(conn, query, words, filters, window, total_is_exact)
    if total_is_exact:  # the window holds every match: a title match outside it is not one
        matching = set(window)
        in_title = [paper_id for paper_id in in_title if paper_id in matching]
    return _Order(match, await _ranked(conn, query, window, in_title), window, total_is_exact)


async def _newest_matches(conn: aiosqlite.Connection, match: str | _Where) -> list[int]:
    """Ids of the newest RANKED_MATCHES + 1 matches, newest first: one walk that finds, and counts, the window."""
    if isinstance(match, _Where):
        where, params = match.sql()
        sql = f"SELECT id FROM papers WHERE {where} ORDER BY id DESC LIMIT {RANKED_MATCHES + 1:d}"
        return [row[0] for row in await fetch_all(conn, sql, params)]
    sql = f"SELECT rowid {_MATCHES} ORDER BY rowid DESC LIMIT {RANKED_MATCHES + 1:d}"
    return [row[0] for row in await fetch_all(conn, sql, [match])]


def _plain_title_words(query: str) -> str | None:
    """The query as a papers_titles expression when it is plain words (OR allowed), else None.

    papers_titles keeps no positions (detail=column): it cannot check a phrase, and a word the
    tokenizer splits (`LLaMA-Berry`) is a phrase; prefixes would need its own prefix indexes;
    words to leave out may be anywhere, not only in titles. Those queries take the walk instead.
    """
    groups, excluded = _group_terms(_lex(query))
    if excluded or not groups:
        return None
    for group in groups:
        for term in group:
            if term.prefix or len(tokens(term.text)) != 1:
                return None
    return " AND ".join(
        group[0].to_fts() if len(group) == 1 else "(" + " OR ".join(term.to_fts() for term in group) + ")"
        for group in groups
    )


async def _newest_title_matches(
    conn: aiosqlite.Connection, query: str, words: str, filters: _Filters, window: list[int], total_is_exact: bool
) -> list[int]:
    """The newest TITLE_MATCHES papers with every word in the title: where a remembered paper is, however old.

    Plain words are looked up in papers_titles (migration 012), whose short posting lists
    make this cheap at any size. Otherwise a title filter on papers_fts makes FTS5 read the
    words' positions in every match it passes, so when the matches go beyond the window the
    walk is kept to the newest ~TITLE_SCAN of them, a rowid span estimated from how many
    rowids the window's matches spread over.
    """
    plain = _plain_title_words(query)
    if dialect(conn) == "postgresql":
        return await _newest_title_matches_postgres(conn, query, words, filters, window, total_is_exact, plain is not None)
    if plain is not None:
        sql = f"""SELECT rowid FROM papers_titles WHERE papers_titles MATCH ?
                  ORDER BY rowid DESC LIMIT {TITLE_MATCHES:d}"""
        return [row[0] for row in await fetch_all(conn, sql, [filters.match(f"{{title}} : ({plain})")])]
    sql = f"SELECT rowid {_MATCHES} AND rowid >= ? ORDER BY rowid DESC LIMIT {TITLE_MATCHES:d}"
    oldest = 0
    if not total_is_exact and window:
        span = window[0] - window[-1] + 1
        oldest = max(0, window[0] - span * TITLE_SCAN // len(window))
    # Every word in the title implies every word anywhere, unless some are to be left out anywhere.
    in_title = f"{{title}} : {words}" if " NOT " not in words else f"{words} AND {{title}} : {words}"
    return [row[0] for row in await fetch_all(conn, sql, [filters.match(in_title), oldest])]


async def _newest_title_matches_postgres(
    conn, query: str, words: str, filters: _Filters, window: list[int], total_is_exact: bool, plain: bool
) -> list[int]:
    """PostgreSQL's _newest_title_matches: every word to look for in the title (the title vector of
    migration postgres/012), the words to leave out nowhere; the walk is bounded as SQLite's for all but plain words."""
    _, excluded = _group_terms(_lex(query))
    where, params = filters.where(words if excluded else None, in_title=to_tsquery_text(query, wanted_only=True))
    oldest = 0
    if not plain and not total_is_exact and window:
        span = window[0] - window[-1] + 1
        oldest = max(0, window[0] - span * TITLE_SCAN // len(window))
    sql = f"SELECT id FROM papers WHERE {where} AND id >= ? ORDER BY id DESC LIMIT {TITLE_MATCHES:d}"
    return [row[0] for row in await fetch_all(conn, sql, [*params, oldest])]


async def _ranked(conn: aiosqlite.Connection, query: str, window: list[int], in_title: list[int]) -> list[int]:
    """The candidates, those with every word in the title first, each group by BM25 (storage/ranking.py).

    Every title match is scored, however old: a remembered paper is among them, and a short name
    may start hundreds of newer titles. The other candidates fill the scoring up to SCORED, newest
    first; the rest of them follows the scored ones newest first.
    """
    candidates = list(dict.fromkeys(window + in_title))
    if len(candidates) < 2:
        return candidates
    title = set(in_title)
    others = [paper_id for paper_id in candidates if paper_id not in title]  # newest first, as the window
    scores = await bm25_scores(conn, query_terms(query), in_title + others[: max(0, SCORED - len(in_title))])
    unscored = float("inf")  # after the scored papers of their group, newest first
    return sorted(
        candidates,
        key=lambda paper_id: (paper_id not in title, -scores.get(paper_id, -unscored), -paper_id),
    )


async def _page(conn: aiosqlite.Connection, order: _Order, limit: int, offset: int) -> list[int]:
    """One page: from the ranked candidates, then the older matches beyond them (newest first), so every page is reachable."""
    ranked, window = order.ranked, order.window
    ids = ranked[offset : offset + limit]
    if len(ids) < limit and not order.total_is_exact and window:
        oldest_in_window = window[-1]
        already_ranked = [paper_id for paper_id in ranked if paper_id < oldest_in_window]
        rest = [limit - len(ids), max(0, offset - len(ranked))]
        if isinstance(order.match, _Where):
            where, params = order.match.sql()
            ranked_sql, ranked_param = any_of(conn, "id", already_ranked)
            sql = f"""SELECT id FROM papers WHERE {where} AND id < ? AND NOT ({ranked_sql})
                      ORDER BY id DESC LIMIT ? OFFSET ?"""
            params += [oldest_in_window, ranked_param, *rest]
        else:
            sql = f"""SELECT rowid {_MATCHES} AND rowid < ? AND +rowid NOT IN (SELECT value FROM json_each(?))
                      ORDER BY rowid DESC LIMIT ? OFFSET ?"""
            params = [order.match, oldest_in_window, id_list(already_ranked), *rest]
        ids += [row[0] for row in await fetch_all(conn, sql, params)]
    return ids


async def _snippets(conn: aiosqlite.Connection, match: str, ids: list[int]) -> dict[int, str]:
    """Snippets for one page only (snippet() is costly): the summary's if it has a match, else the best column's.

    `match` is the user's words without the filter terms, so facets are never shown. A plain
    `rowid IN (…)` would make FTS5 run the whole match once per id; a rowid range lets it run
    once over a narrow span, and `+rowid` keeps the page's ids a plain filter on top. A page
    may hold old title matches beside new papers, so each cluster of nearby ids gets its range.
    """
    if not ids:
        return {}
    if dialect(conn) == "postgresql":
        return await _snippets_postgres(conn, match, ids)
    one = f"""SELECT rowid,
                     snippet(papers_fts, {_SUMMARY_COLUMN}, ?, ?, '…', {SNIPPET_TOKENS}),
                     snippet(papers_fts, -1, ?, ?, '…', {SNIPPET_TOKENS})
              FROM papers_fts WHERE papers_fts MATCH ? AND rowid >= ? AND rowid <= ?
                   AND +rowid IN (SELECT value FROM json_each(?))"""
    clusters: list[list[int]] = []
    for paper_id in sorted(ids):
        if clusters and paper_id - clusters[-1][-1] <= _SNIPPET_GAP:
            clusters[-1].append(paper_id)
        else:
            clusters.append([paper_id])
    rows = []
    for start in range(0, len(clusters), _SNIPPETS_PER_STATEMENT):  # SQLite allows 500 SELECTs in a compound
        chunk = clusters[start : start + _SNIPPETS_PER_STATEMENT]
        params: list = []
        for cluster in chunk:
            params += [_OPEN, _CLOSE, _OPEN, _CLOSE, match, cluster[0], cluster[-1], id_list(cluster)]
        rows += await fetch_all(conn, " UNION ALL ".join([one] * len(chunk)), params)
    return {row[0]: _marked_snippet(row[1] if _OPEN in (row[1] or "") else row[2] or "") for row in rows}


_HEADLINE_OPTIONS = (
    f"StartSel={_OPEN}, StopSel={_CLOSE}, MaxWords={SNIPPET_TOKENS}, MinWords={SNIPPET_TOKENS // 2}, "
    "ShortWord=0, MaxFragments=1, FragmentDelimiter=…"
)


async def _snippets_postgres(conn, words: str, ids: list[int]) -> dict[int, str]:
    """PostgreSQL's snippets: ts_headline of the summary if it has a match, else of the first of title,
    tags, authors that has one; '…' where the text goes on, as FTS5's snippet()."""
    options = _HEADLINE_OPTIONS
    columns = ("summary", "title", "tag_text", "coalesce((SELECT string_agg(value, ', ') "
               "FROM json_array_elements_text(authors::json)), '')")
    heads = ", ".join(f"{column}, ts_headline('paperbot_search', {column}, q, ?)" for column in columns)
    where, param = any_of(conn, "id", ids)
    rows = await fetch_all(
        conn, f"SELECT id, {heads} FROM papers, {_TSQUERY} AS q WHERE {where}", [*[options] * len(columns), words, param]
    )
    snippets = {}
    for row in rows:
        pairs = [(row[i], row[i + 1] or "") for i in range(1, len(row), 2)]
        text, head = next(((text, head) for text, head in pairs if _OPEN in head), pairs[0])
        snippets[row[0]] = _with_ellipses(text or "", head)
    return snippets


def _with_ellipses(text: str, head: str) -> str:
    """A headline marked as snippet() marks it, with '…' where the text it was cut from goes on.

    ts_headline leaves out the punctuation around its words; what it left out at either end is
    put back when it is only punctuation, so a short text reads whole, as snippet() gives it.
    """
    whole, part = one_line(text), one_line(head.replace(_OPEN, "").replace(_CLOSE, ""))
    snippet = _marked_snippet(head)
    start = whole.find(part) if part else -1
    if start < 0:
        return snippet
    before, after = whole[:start], whole[start + len(part) :]
    snippet = ("…" if _has_words(before) else before) + snippet
    return snippet + ("…" if _has_words(after) else after)


def _has_words(text: str) -> bool:
    return any(char.isalnum() for char in text)


async def papers_matching(conn: aiosqlite.Connection, query: str, paper_ids: list[int]) -> set[int]:
    """Which of `paper_ids` match `query` (search's syntax): a keyword subscription's papers of the day.

    Raises QueryError as search does. SQLite: a plain `rowid IN (…)` would make FTS5 run the whole
    match once per paper; the rowid range lets it run once over the ids' span, and `+rowid` keeps
    the ids a plain filter on top. PostgreSQL: the ids first, then each one's search vector.
    """
    words = _words(conn, query)
    if not paper_ids:
        return set()
    if dialect(conn) == "postgresql":
        where, param = any_of(conn, "id", paper_ids)
        sql, params = f"SELECT id FROM papers WHERE {where} AND search_vector @@ {_TSQUERY}", [param, words]
    else:
        sql = f"{_MATCHES} AND rowid >= ? AND rowid <= ? AND +rowid IN (SELECT value FROM json_each(?))"
        sql, params = f"SELECT rowid {sql}", [words, min(paper_ids), max(paper_ids), id_list(paper_ids)]
    try:
        return {row[0] for row in await fetch_all(conn, sql, params)}
    except _QUERY_ERRORS as error:
        if _is_query_syntax_error(error):
            raise QueryError("Sorry, that search could not be understood; try plain words.") from error
        raise


@budgeted
async def papers_with_tag(conn: aiosqlite.Connection, tag: str, *, limit: int = 10, offset: int = 0) -> SearchPage:
    """Papers carrying `tag` (any case/spacing), most recently seen first; snippets are summary starts."""
    wanted_tag = await tag_id(conn, tag)
    if wanted_tag is None:
        return SearchPage(hits=[], total=0)
    total, library_size = (
        await fetch_all(conn, "SELECT paper_count, (SELECT max(id) FROM papers) FROM tags WHERE id = ?", (wanted_tag,))
    )[0]
    rows = await fetch_all(conn, _newest_with_tag_sql(total, library_size or 0, dialect(conn)), (wanted_tag, max(0, limit), max(0, offset)))
    papers = await load_papers_in_order(conn, [row[0] for row in rows])
    return SearchPage(hits=[SearchHit(paper=p, snippet=summary_preview(p.summary)) for p in papers], total=total)


def _newest_with_tag_sql(tag_papers: int, library_size: int, sql_dialect: str = "sqlite") -> str:
    """A common tag is found fastest walking papers newest first; a rare one by sorting its few papers.

    PostgreSQL's planner makes that choice itself from its statistics (it takes no index hints).
    """
    if sql_dialect == "postgresql":
        return """SELECT p.id FROM papers p
                  WHERE EXISTS (SELECT 1 FROM paper_tags pt WHERE pt.paper_id = p.id AND pt.tag_id = ?)
                  ORDER BY p.last_day DESC, p.id DESC LIMIT ? OFFSET ?"""
    if tag_papers * 50 >= library_size:
        return """SELECT p.id FROM papers p INDEXED BY papers_by_last_day
                  WHERE EXISTS (SELECT 1 FROM paper_tags pt WHERE pt.paper_id = p.id AND pt.tag_id = ?)
                  ORDER BY p.last_day DESC, p.id DESC LIMIT ? OFFSET ?"""
    return """SELECT p.id FROM papers p NOT INDEXED
              WHERE p.id IN (SELECT paper_id FROM paper_tags WHERE tag_id = ?)
              ORDER BY p.last_day DESC, p.id DESC LIMIT ? OFFSET ?"""


# ----- exports ---------------------------------------------------------------------------------

_EVERY = 2**62  # "no limit" as an SQLite LIMIT
_LOAD_CHUNK = 200  # papers turned into models at a time: ~10 ms of the event loop each


@budgeted
async def all_matches(conn: aiosqlite.Connection, query: str, *, limit: int | None = None) -> SearchPage:
    """Up to `limit` (None: all) papers matching `query`, in search's order, from one walk of the index.

    For exports: paging through `search` would re-run the whole search for every page. Hits
    carry no snippet (costly, and a file has no use for them); the total is search's.
    """
    words = _words(conn, query)
    try:
        order = await _order(conn, query, words, _Filters())
        ids = await _page(conn, order, _EVERY if limit is None else max(0, limit), 0)
    except _QUERY_ERRORS as error:
        if _is_query_syntax_error(error):
            raise QueryError("Sorry, that search could not be understood; try plain words.") from error
        raise
    papers = []
    for start in range(0, len(ids), _LOAD_CHUNK):  # the event loop serves others between chunks
        papers += await load_papers_in_order(conn, ids[start : start + _LOAD_CHUNK])
    return SearchPage(hits=[SearchHit(paper=p, snippet="") for p in papers], total=len(order.ranked),
                      total_is_exact=order.total_is_exact)
