"""The library's public API: ingest digests, read papers and days, browse tags, search.

Every function takes the aiosqlite connection from `storage.db.connect`
first. Ingest, search and tags live in their own modules and are re-exported
here so callers need one import.
"""

from __future__ import annotations

import datetime as dt

import aiosqlite

from storage._rows import any_of, fetch_all, load_papers, load_papers_in_order, to_day
from storage.ingest import ingest_digest
from storage.models import StoredPaper, arxiv_id_from
from storage.search import all_matches, papers_with_tag, search
from storage.search_query import QueryError
from storage.tags import closest_tags, normalize_tag, resolve_tag, suggest_tags, tag_counts

__all__ = [
    "QueryError",
    "all_matches",
    "closest_tags",
    "digest_days",
    "get_paper",
    "ingest_digest",
    "latest_day",
    "papers_on_day",
    "papers_with_tag",
    "resolve_tag",
    "search",
    "suggest_tags",
    "tag_counts",
]


async def get_paper(conn: aiosqlite.Connection, arxiv_id: str) -> StoredPaper | None:
    """The paper with this arXiv id; a versioned id or an arXiv/HuggingFace URL works too."""
    wanted = arxiv_id_from(arxiv_id) or arxiv_id.strip()
    rows = await fetch_all(conn, "SELECT id FROM papers WHERE arxiv_id = ?", (wanted,))
    if not rows:
        return None
    return (await load_papers(conn, [rows[0][0]]))[rows[0][0]]


async def papers_on_day(
    conn: aiosqlite.Connection, day: dt.date, *, tags: list[str] | None = None
) -> list[StoredPaper]:
    """The papers listed on `day`, in digest order (sources alphabetically, a paper at its first listing).

    With `tags`, only papers carrying at least one of them (any case/spacing);
    None or [] means no tag filter.
    """
    sql = "SELECT a.paper_id FROM appearances a WHERE a.day = ?"
    params: list = [day.isoformat()]
    if tags:
        named, norms = any_of(conn, "t.norm", (normalize_tag(tag) for tag in tags))
        sql += f""" AND EXISTS (SELECT 1 FROM paper_tags pt JOIN tags t ON t.id = pt.tag_id
                                WHERE pt.paper_id = a.paper_id AND {named})"""
        params.append(norms)
    rows = await fetch_all(conn, sql + " ORDER BY a.source, a.position", params)
    return await load_papers_in_order(conn, list(dict.fromkeys(row[0] for row in rows)))


async def latest_day(conn: aiosqlite.Connection) -> dt.date | None:
    """The most recent day with at least one paper, or None for an empty library."""
    rows = await fetch_all(conn, "SELECT max(day) FROM digests WHERE paper_count > 0")
    return to_day(rows[0][0]) if rows[0][0] else None


async def digest_days(
    conn: aiosqlite.Connection, *, since: dt.date | None = None, until: dt.date | None = None
) -> list[dt.date]:
    """Days that have papers, oldest first, optionally within [since, until]."""
    rows = await fetch_all(
        conn,
        "SELECT DISTINCT day FROM digests WHERE paper_count > 0 AND day >= ? AND day <= ? ORDER BY day",
        (since.isoformat() if since else "0000-00-00", until.isoformat() if until else "9999-99-99"),
    )
    return [to_day(row[0]) for row in rows]
