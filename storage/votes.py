"""Votes for papers, and rankings by them: `/papers top` and the weekly roundup.

Votes belong to the server they were cast in (migration 011): every function takes the server's
id (`guild_id`; None = a direct message, stored as 0), and counts and rankings see only that
server's votes. A member has at most one vote per paper per server (clicking again takes it back). Rankings are over the
papers listed in the digests of a span of days: most votes first, ties newest first (the latest
day the paper was listed in the span, then the newest row).
"""

from __future__ import annotations

import datetime as dt

import aiosqlite
from pydantic import BaseModel

from storage._rows import any_of, fetch_all, load_papers_in_order, utc_now_text
from storage.db import transaction
from storage.models import StoredPaper, TagCount
from storage.tags import normalize_tag

__all__ = [
    "RankedPage", "RankedPaper", "Vote", "busiest_tags", "ranked_papers", "toggle_vote", "vote_counts",
]

#: Bounds for "every day" when a span is open at one end; days are ISO text, so these sort outside any day.
_FIRST, _LAST = "0000-01-01", "9999-12-31"
DIRECT_MESSAGE = 0  # the guild_id of votes cast outside any server


def _server(guild_id: int | None) -> int:
    return DIRECT_MESSAGE if guild_id is None else guild_id


class Vote(BaseModel):
    """What a click did: whether the member's vote now stands, and the paper's new count."""

    voted: bool
    count: int


class RankedPaper(BaseModel):
    paper: StoredPaper
    votes: int


class RankedPage(BaseModel):
    """One page of a ranking and how many papers it has in all."""

    papers: list[RankedPaper]
    total: int



async def toggle_vote(
    conn: aiosqlite.Connection, arxiv_id: str, user_id: int, *, guild_id: int | None
) -> Vote | None:
    """Add the member's vote for the paper in this server, or take it back; None for an unknown paper.

    One transaction: two quick clicks cannot both add (or both remove) a vote.
    """
    async with transaction(conn):
        rows = await fetch_all(conn, "SELECT id FROM papers WHERE arxiv_id = ?", (arxiv_id,))
        if not rows:
            return None
        paper_id = rows[0][0]
        server = _server(guild_id)
        removed = await conn.execute(
            "DELETE FROM votes WHERE paper_id = ? AND guild_id = ? AND user_id = ?", (paper_id, server, user_id)
        )
        if removed.rowcount == 0:
            await conn.execute(
                "INSERT INTO votes (paper_id, guild_id, user_id, voted_at) VALUES (?, ?, ?, ?)",
                (paper_id, server, user_id, utc_now_text()),
            )
        count = (
            await fetch_all(conn, "SELECT count(*) FROM votes WHERE paper_id = ? AND guild_id = ?", (paper_id, server))
        )[0][0]
    return Vote(voted=removed.rowcount == 0, count=count)


async def vote_counts(conn: aiosqlite.Connection, arxiv_ids: list[str], *, guild_id: int | None) -> dict[str, int]:
    """This server's votes per arXiv id (0 for papers without votes or unknown ids)."""
    of_papers, wanted = any_of(conn, "p.arxiv_id", arxiv_ids)
    rows = await fetch_all(
        conn,
        f"""SELECT p.arxiv_id, count(v.user_id) FROM papers p
            LEFT JOIN votes v ON v.paper_id = p.id AND v.guild_id = ?
            WHERE {of_papers} GROUP BY p.id""",
        (_server(guild_id), wanted),
    )
    counts = {arxiv_id: 0 for arxiv_id in arxiv_ids}
    counts.update({row[0]: row[1] for row in rows})
    return counts


def _listed(
    conn: aiosqlite.Connection, since: dt.date | None, until: dt.date | None, tags: list[str] | None
) -> tuple[str, list]:
    """SQL for (paper_id, day): each paper listed in [since, until] (with one of `tags`), at its latest day there."""
    sql = "SELECT a.paper_id, max(a.day) AS day FROM appearances a WHERE a.day >= ? AND a.day <= ?"
    params: list = [since.isoformat() if since else _FIRST, until.isoformat() if until else _LAST]
    if tags:
        of_tags, norms = any_of(conn, "t.norm", [normalize_tag(tag) for tag in tags])
        sql += f""" AND EXISTS (SELECT 1 FROM paper_tags pt JOIN tags t ON t.id = pt.tag_id
                                WHERE pt.paper_id = a.paper_id AND {of_tags})"""
        params.append(norms)
    return sql + " GROUP BY a.paper_id", params


async def ranked_papers(
    conn: aiosqlite.Connection,
    *,
    guild_id: int | None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    tags: list[str] | None = None,
    voted_only: bool = True,
    limit: int = 10,
    offset: int = 0,
) -> RankedPage:
    """The papers listed in the digests of [since, until] (None: open-ended), most of this server's votes first,
    ties newest first.

    `voted_only`: leave out papers nobody voted for (`/papers top`); the roundup keeps them, so a
    week without votes still shows its newest papers. `tags`: only papers with one of them.
    """
    listed, params = _listed(conn, since, until, tags)
    ranked = f"""WITH listed AS ({listed})
                 SELECT * FROM (SELECT l.paper_id, l.day,
                                       (SELECT count(*) FROM votes v
                                        WHERE v.paper_id = l.paper_id AND v.guild_id = ?) AS votes
                                FROM listed l) counted
                 {"WHERE votes > 0" if voted_only else ""}"""
    params = [*params, _server(guild_id)]
    total = (await fetch_all(conn, f"SELECT count(*) FROM ({ranked}) ranked", params))[0][0]
    rows = await fetch_all(
        conn, ranked + " ORDER BY votes DESC, day DESC, paper_id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
    )
    votes = {row["paper_id"]: row["votes"] for row in rows}
    found = await load_papers_in_order(conn, list(votes))
    return RankedPage(
        papers=[RankedPaper(paper=paper, votes=count) for paper, count in zip(found, votes.values(), strict=True)],
        total=total,
    )


async def busiest_tags(
    conn: aiosqlite.Connection, since: dt.date, until: dt.date, *, tags: list[str] | None = None, limit: int = 10
) -> list[TagCount]:
    """The tags carried by most papers listed in [since, until], most first (ties alphabetical)."""
    listed, params = _listed(conn, since, until, tags)
    rows = await fetch_all(
        conn,
        f"""SELECT t.name, count(DISTINCT pt.paper_id) AS papers
            FROM paper_tags pt JOIN tags t ON t.id = pt.tag_id
            WHERE pt.paper_id IN (SELECT paper_id FROM ({listed}) listed)
            GROUP BY t.id ORDER BY papers DESC, t.norm LIMIT ?""",
        [*params, limit],
    )
    return [TagCount(name=row[0], count=row[1]) for row in rows]
