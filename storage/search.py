"""Full-text search and tag browsing, returning pages of hits with Markdown snippets.

Ranking is FTS5's bm25 with column weights, so a word in the title or the
tags outranks the same word buried in a summary. Snippets are plain text on
one line with the matched words wrapped in `**`; the text's own asterisks are
dropped so every `**` is a marker. Escaping for a display (Discord) is the
client's job.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import aiosqlite

from storage._rows import fetch_all, id_list, load_papers_in_order
from storage.models import SearchHit, SearchPage
from storage.search_query import QueryError, to_fts_query
from storage.facets import CODE, date_range_tokens, tag_token
from storage.tags import tag_id

# bm25 weights in papers_fts column order; facets hold filter tokens and never score.
RANK_WEIGHTS = {"title": 10.0, "authors": 3.0, "summary": 1.0, "tags": 6.0, "facets": 0.0}
_RANK = "bm25(papers_fts, {title}, {authors}, {summary}, {tags}, {facets})".format(**RANK_WEIGHTS)
_MATCHES = "FROM papers_fts WHERE papers_fts MATCH ?"
_SUMMARY_COLUMN = 2
RANKED_MATCHES = 5_000  # see _ranked_ids
SNIPPET_TOKENS = 24
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


def _is_query_syntax_error(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return any(part in message for part in ("fts5", "syntax error", "no such column", "unterminated", "match"))


async def _day_tokens(conn: aiosqlite.Connection, since: dt.date | None, until: dt.date | None) -> list[str]:
    """Facet tokens for appearance days in [since, until], clamped to the days the library has."""
    first, last = (await fetch_all(conn, "SELECT min(day), max(day) FROM digests"))[0]
    if first is None:
        return []
    start = max(since or dt.date.min, dt.date.fromisoformat(first))
    end = min(until or dt.date.max, dt.date.fromisoformat(last))
    return date_range_tokens(start, end) if start <= end else []


async def _match_with_filters(
    conn: aiosqlite.Connection,
    words: str,
    tag: str | None,
    since: dt.date | None,
    until: dt.date | None,
    has_code: bool | None,
) -> str | None:
    """The MATCH expression: the user's words on the text columns, filters as facet terms; None = no results."""
    expression = words
    if tag is not None:
        wanted_tag = await tag_id(conn, tag)
        if wanted_tag is None:
            return None
        expression += f' AND "{tag_token(wanted_tag)}"'
    if since is not None or until is not None:
        days = await _day_tokens(conn, since, until)
        if not days:
            return None
        expression += " AND (" + " OR ".join(f'"{token}"' for token in days) + ")"
    if has_code is True:
        expression += f' AND "{CODE}"'
    elif has_code is False:
        expression = f'({expression}) NOT "{CODE}"'
    return expression


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

    Raises QueryError (a ValueError with a message for the user) when the
    query has nothing to search for or SQLite rejects it; never OperationalError
    for anything the user typed.
    """
    words = f"({to_fts_query(query)})"
    match = await _match_with_filters(conn, words, tag, since, until, has_code)
    if match is None:
        return SearchPage(hits=[], total=0)
    try:
        total = (await fetch_all(conn, f"SELECT count(*) {_MATCHES}", [match]))[0][0]
        ids = await _ranked_ids(conn, match, total, limit, offset)
        snippets = await _snippets(conn, words, ids)
    except sqlite3.OperationalError as error:
        if _is_query_syntax_error(error):
            raise QueryError("Sorry, that search could not be understood; try plain words.") from error
        raise
    papers = await load_papers_in_order(conn, ids)
    return SearchPage(hits=[SearchHit(paper=p, snippet=snippets.get(i, "")) for i, p in zip(ids, papers)], total=total)


async def _ranked_ids(conn: aiosqlite.Connection, match: str, total: int, limit: int, offset: int) -> list[int]:
    """One page of match ids, best first.

    bm25 costs about a microsecond per match, so a word found in most of a
    million papers would take a second to rank. Beyond RANKED_MATCHES matches
    only the newest RANKED_MATCHES are ranked (a recency bias that suits a daily
    digest); the older rest follow, newest first, so every page stays reachable.
    """
    limit, offset = max(0, limit), max(0, offset)
    if total <= RANKED_MATCHES:
        sql = f"SELECT rowid {_MATCHES} ORDER BY {_RANK}, rowid DESC LIMIT ? OFFSET ?"
        return [row[0] for row in await fetch_all(conn, sql, [match, limit, offset])]
    ids = []
    if offset < RANKED_MATCHES:
        sql = f"""SELECT id FROM (SELECT rowid AS id, {_RANK} AS score {_MATCHES}
                                  ORDER BY rowid DESC LIMIT {RANKED_MATCHES:d})
                  ORDER BY score, id DESC LIMIT ? OFFSET ?"""
        ids = [row[0] for row in await fetch_all(conn, sql, [match, limit, offset])]
    if len(ids) < limit:
        sql = f"SELECT rowid {_MATCHES} ORDER BY rowid DESC LIMIT ? OFFSET ?"
        rest = await fetch_all(conn, sql, [match, limit - len(ids), max(offset, RANKED_MATCHES)])
        ids += [row[0] for row in rest]
    return ids


async def _snippets(conn: aiosqlite.Connection, match: str, ids: list[int]) -> dict[int, str]:
    """Snippets for one page only (snippet() is costly): the summary's if it has a match, else the best column's.

    `match` is the user's words without the filter terms, so facets are never shown. A plain
    `rowid IN (…)` would make FTS5 run the whole match once per id; a rowid range lets it run
    once over a narrow span, and `+rowid` keeps the page's ids a plain filter on top.
    """
    if not ids:
        return {}
    rows = await fetch_all(
        conn,
        f"""SELECT rowid,
                   snippet(papers_fts, {_SUMMARY_COLUMN}, ?, ?, '…', {SNIPPET_TOKENS}),
                   snippet(papers_fts, -1, ?, ?, '…', {SNIPPET_TOKENS})
            FROM papers_fts WHERE papers_fts MATCH ? AND rowid >= ? AND rowid <= ?
                 AND +rowid IN (SELECT value FROM json_each(?))""",
        (_OPEN, _CLOSE, _OPEN, _CLOSE, match, min(ids), max(ids), id_list(ids)),
    )
    return {row[0]: _marked_snippet(row[1] if _OPEN in (row[1] or "") else row[2] or "") for row in rows}


async def papers_with_tag(conn: aiosqlite.Connection, tag: str, *, limit: int = 10, offset: int = 0) -> SearchPage:
    """Papers carrying `tag` (any case/spacing), most recently seen first; snippets are summary starts."""
    wanted_tag = await tag_id(conn, tag)
    if wanted_tag is None:
        return SearchPage(hits=[], total=0)
    total, library_size = (
        await fetch_all(conn, "SELECT paper_count, (SELECT max(id) FROM papers) FROM tags WHERE id = ?", (wanted_tag,))
    )[0]
    rows = await fetch_all(conn, _newest_with_tag_sql(total, library_size or 0), (wanted_tag, max(0, limit), max(0, offset)))
    papers = await load_papers_in_order(conn, [row[0] for row in rows])
    return SearchPage(hits=[SearchHit(paper=p, snippet=summary_preview(p.summary)) for p in papers], total=total)


def _newest_with_tag_sql(tag_papers: int, library_size: int) -> str:
    """A common tag is found fastest walking papers newest first; a rare one by sorting its few papers."""
    if tag_papers * 50 >= library_size:
        return """SELECT p.id FROM papers p INDEXED BY papers_by_last_day
                  WHERE EXISTS (SELECT 1 FROM paper_tags pt WHERE pt.paper_id = p.id AND pt.tag_id = ?)
                  ORDER BY p.last_day DESC, p.id DESC LIMIT ? OFFSET ?"""
    return """SELECT p.id FROM papers p NOT INDEXED
              WHERE p.id IN (SELECT paper_id FROM paper_tags WHERE tag_id = ?)
              ORDER BY p.last_day DESC, p.id DESC LIMIT ? OFFSET ?"""
