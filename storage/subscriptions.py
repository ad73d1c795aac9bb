"""Personal subscriptions (tags and keywords): who follows what, and which of a day's papers match.

A subscriber follows tags (matched on their normalized identity, `storage.tags.normalize_tag`)
and keywords (matched with the same full-text rules as search, `storage.search_query`; on
PostgreSQL by `storage.search.papers_matching`, search's own full-text machinery there). Each day
a subscriber gets at most one DM, which goes through the one delivery ledger (`storage.outbox`,
kind 'dm'); its rows cascade from the subscriber row like everything else about the user.

Knows nothing of Discord: user and guild ids are plain integers. Every write goes through
`storage.db.transaction` or `storage.db.write`.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections import defaultdict
from typing import Any, Literal

import aiosqlite
from pydantic import BaseModel

from storage import db, search
from storage._rows import any_of, fetch_all, id_list, load_papers, utc_now_text
from storage.db import transaction, write
from storage.models import StoredPaper
from storage.search_query import QueryError, QueryTooBroad, to_fts_query
from storage.tags import normalize_tag

log = logging.getLogger(__name__)

__all__ = [
    "AlreadySubscribed",
    "DayMatch",
    "Kind",
    "Subscriber",
    "Subscription",
    "TooManySubscriptions",
    "add_subscription",
    "clear_dm_closed",
    "delete_user",
    "export_user",
    "get_subscriber",
    "keyword_norm",
    "list_subscriptions",
    "mark_left_servers",
    "mark_dm_closed",
    "matches_on_day",
    "remove_subscription",
    "set_paused",
    "subscribers_to_deliver",
]

Kind = Literal["tag", "keyword"]


class AlreadySubscribed(Exception):
    """The user already follows this tag or keyword."""


class TooManySubscriptions(Exception):
    """The user reached the per-user cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} subscriptions per user")
        self.limit = limit


class Subscription(BaseModel):
    id: int
    user_id: int
    kind: Kind
    value: str
    guild_id: int | None = None
    created_at: dt.datetime

    @property
    def label(self) -> str:
        """How the subscription is named to its owner: `tag: Robotics`, `keyword: video diffusion`."""
        return f"{self.kind}: {self.value}"


class Subscriber(BaseModel):
    user_id: int
    paused: bool
    dm_closed: bool
    left_servers: bool = False  # found in none of the servers their subscriptions were made in
    guild_ids: list[int]  # servers the user's subscriptions were made in
    subscription_count: int


class DayMatch(BaseModel):
    """One paper of the day for one user, and the labels of the subscriptions that matched it."""

    paper: StoredPaper
    matched: list[str]


def keyword_norm(keyword: str) -> str:
    """A keyword's identity: casefolded, whitespace collapsed."""
    return " ".join(keyword.split()).casefold()


def _norm(kind: Kind, value: str) -> str:
    return normalize_tag(value) if kind == "tag" else keyword_norm(value)


def _subscription(row: Any) -> Subscription:
    created = dt.datetime.fromisoformat(row["created_at"])
    return Subscription(
        id=row["id"], user_id=row["user_id"], kind=row["kind"], value=row["value"], guild_id=row["guild_id"],
        created_at=created if created.tzinfo else created.replace(tzinfo=dt.UTC),
    )


# -- subscriptions ------------------------------------------------------------------------------


async def add_subscription(
    conn: aiosqlite.Connection, user_id: int, kind: Kind, value: str, *, guild_id: int | None, max_per_user: int
) -> Subscription:
    """Follow `value` (a resolved tag name, or a validated keyword). One transaction.

    Raises AlreadySubscribed (same tag in any spelling, same keyword in any case/spacing),
    TooManySubscriptions when the user already has `max_per_user`, or QueryError for a keyword
    search would refuse (too short a prefix, too many words, nothing to look for).
    """
    value = " ".join(value.split())
    if kind == "keyword":
        to_fts_query(value)  # the search rules and cost limits, checked when made: raises QueryError
    norm = _norm(kind, value)
    async with transaction(conn):
        now = utc_now_text()
        await conn.execute(
            "INSERT INTO subscribers (user_id, created_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
            (user_id, now),
        )
        if guild_id is not None:  # subscribing from a server: they are a member of it again
            await conn.execute("UPDATE subscribers SET left_servers_at = NULL WHERE user_id = ?", (user_id,))
        rows = await fetch_all(
            conn, "SELECT 1 FROM subscriptions WHERE user_id = ? AND kind = ? AND norm = ?", (user_id, kind, norm)
        )
        if rows:
            raise AlreadySubscribed(value)
        count = (await fetch_all(conn, "SELECT count(*) FROM subscriptions WHERE user_id = ?", (user_id,)))[0][0]
        if count >= max_per_user:
            raise TooManySubscriptions(max_per_user)
        inserted = await fetch_all(
            conn,
            "INSERT INTO subscriptions (user_id, kind, value, norm, guild_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (user_id, kind, value, norm, guild_id, now),
        )
        subscription_id = inserted[0][0]
    rows = await fetch_all(conn, "SELECT * FROM subscriptions WHERE id = ?", (subscription_id,))
    return _subscription(rows[0])


async def remove_subscription(conn: aiosqlite.Connection, user_id: int, kind: Kind, value: str) -> bool:
    """Stop following; False when the user did not follow it."""
    return await write(
        conn, "DELETE FROM subscriptions WHERE user_id = ? AND kind = ? AND norm = ?", (user_id, kind, _norm(kind, value))
    ) > 0


async def list_subscriptions(conn: aiosqlite.Connection, user_id: int) -> list[Subscription]:
    """The user's subscriptions, tags first, then keywords, each alphabetical."""
    rows = await fetch_all(
        conn, "SELECT * FROM subscriptions WHERE user_id = ? ORDER BY kind DESC, norm", (user_id,)
    )
    return [_subscription(row) for row in rows]


async def get_subscriber(conn: aiosqlite.Connection, user_id: int) -> Subscriber | None:
    rows = await fetch_all(conn, "SELECT user_id, paused, dm_closed_at, left_servers_at FROM subscribers WHERE user_id = ?", (user_id,))
    if not rows:
        return None
    return (await _subscribers(conn, rows))[0]


async def _subscribers(conn: aiosqlite.Connection, rows: list) -> list[Subscriber]:
    of_users, user_ids = any_of(conn, "user_id", [row["user_id"] for row in rows])
    guilds: dict[int, list[int]] = defaultdict(list)
    counts: dict[int, int] = defaultdict(int)
    for user_id, guild_id in await fetch_all(
        conn, f"SELECT user_id, guild_id FROM subscriptions WHERE {of_users} ORDER BY id", (user_ids,)
    ):
        counts[user_id] += 1
        if guild_id is not None and guild_id not in guilds[user_id]:
            guilds[user_id].append(guild_id)
    return [
        Subscriber(
            user_id=row["user_id"], paused=bool(row["paused"]), dm_closed=row["dm_closed_at"] is not None,
            left_servers=row["left_servers_at"] is not None,
            guild_ids=guilds[row["user_id"]], subscription_count=counts[row["user_id"]],
        )
        for row in rows
    ]


async def set_paused(conn: aiosqlite.Connection, user_id: int, paused: bool) -> bool:
    """Pause or resume the user's DMs; False when they have no subscriber row (nothing to pause)."""
    return await write(conn, "UPDATE subscribers SET paused = ? WHERE user_id = ?", (int(paused), user_id)) > 0


async def delete_user(conn: aiosqlite.Connection, user_id: int) -> int:
    """Delete every row about the user (subscriptions, settings, DM ledger, votes); returns subscriptions removed."""
    async with transaction(conn):
        count = (await fetch_all(conn, "SELECT count(*) FROM subscriptions WHERE user_id = ?", (user_id,)))[0][0]
        await conn.execute("DELETE FROM subscribers WHERE user_id = ?", (user_id,))  # cascades to the rest
        await conn.execute("DELETE FROM votes WHERE user_id = ?", (user_id,))  # in every server (migration 011)
    return count


async def export_user(conn: aiosqlite.Connection, user_id: int) -> dict[str, Any]:
    """The user's subscriptions and settings as plain JSON-able data."""
    subscriber = await get_subscriber(conn, user_id)
    return {
        "user_id": str(user_id),
        "paused": subscriber.paused if subscriber else False,
        "subscriptions": [
            {"kind": s.kind, "value": s.value, "server_id": str(s.guild_id) if s.guild_id else None,
             "created_at": s.created_at.isoformat()}
            for s in await list_subscriptions(conn, user_id)
        ],
    }


async def mark_dm_closed(conn: aiosqlite.Connection, user_id: int) -> None:
    """Discord refused to DM the user: stop sending until they use a subscription command again."""
    await write(
        conn,
        "UPDATE subscribers SET dm_closed_at = ? WHERE user_id = ? AND dm_closed_at IS NULL",
        (utc_now_text(), user_id),
    )


async def clear_dm_closed(conn: aiosqlite.Connection, user_id: int) -> bool:
    """Clear the mark; True when it was set (so the user should be told how to open their DMs)."""
    return await write(
        conn, "UPDATE subscribers SET dm_closed_at = NULL WHERE user_id = ? AND dm_closed_at IS NOT NULL", (user_id,)
    ) > 0


async def mark_left_servers(conn: aiosqlite.Connection, user_id: int, left: bool) -> bool:
    """Note (or clear) that the user is in none of their subscriptions' servers; True when it changed.

    While set, their DMs pause: a member who left a server should stop hearing from it.
    """
    if left:
        sql = "UPDATE subscribers SET left_servers_at = ? WHERE user_id = ? AND left_servers_at IS NULL"
        return await write(conn, sql, (utc_now_text(), user_id)) > 0
    sql = "UPDATE subscribers SET left_servers_at = NULL WHERE user_id = ? AND left_servers_at IS NOT NULL"
    return await write(conn, sql, (user_id,)) > 0


async def subscribers_to_deliver(conn: aiosqlite.Connection) -> list[Subscriber]:
    """Subscribers with at least one subscription, not paused and whose DMs are not marked closed."""
    rows = await fetch_all(
        conn,
        """SELECT user_id, paused, dm_closed_at, left_servers_at FROM subscribers s
           WHERE paused = 0 AND dm_closed_at IS NULL
             AND EXISTS (SELECT 1 FROM subscriptions WHERE user_id = s.user_id) ORDER BY user_id""",
    )
    return await _subscribers(conn, rows)


# -- matching -----------------------------------------------------------------------------------


async def matches_on_day(
    conn: aiosqlite.Connection, day: dt.date, user_ids: list[int]
) -> dict[int, list[DayMatch]]:
    """For each of `user_ids` with a match: `day`'s papers matching any subscription, in digest order.

    A paper appears once per user, with every matching subscription's label. Keywords are run
    through the search rules once each (a keyword that no longer parses matches nothing).
    """
    if not user_ids:
        return {}
    day_rows = await fetch_all(
        conn, "SELECT paper_id FROM appearances WHERE day = ? ORDER BY source, position", (day.isoformat(),)
    )
    day_ids = list(dict.fromkeys(row[0] for row in day_rows))
    if not day_ids:
        return {}
    of_users, users = any_of(conn, "user_id", user_ids)
    subs = await fetch_all(
        conn,
        f"SELECT user_id, kind, value, norm FROM subscriptions WHERE {of_users} ORDER BY user_id, kind DESC, norm",
        (users,),
    )
    # paper ids per tag norm and per keyword norm, computed once for all users
    tag_norms = {row["norm"] for row in subs if row["kind"] == "tag"}
    by_tag: dict[str, set[int]] = defaultdict(set)
    if tag_norms:
        of_norms, norms = any_of(conn, "t.norm", sorted(tag_norms))
        of_day, day_papers = any_of(conn, "pt.paper_id", day_ids)
        for paper_id, norm in await fetch_all(
            conn,
            f"""SELECT DISTINCT pt.paper_id, t.norm FROM paper_tags pt JOIN tags t ON t.id = pt.tag_id
                WHERE {of_norms} AND {of_day}""",
            (norms, day_papers),
        ):
            by_tag[norm].add(paper_id)
    by_keyword: dict[str, set[int]] = {}
    for row in subs:
        if row["kind"] == "keyword" and row["norm"] not in by_keyword:
            by_keyword[row["norm"]] = await _keyword_papers(conn, row["value"], day_ids)
    wanted: dict[int, dict[int, list[str]]] = defaultdict(dict)
    for row in subs:
        found = by_tag.get(row["norm"], set()) if row["kind"] == "tag" else by_keyword[row["norm"]]
        for paper_id in found:
            wanted[row["user_id"]].setdefault(paper_id, []).append(f"{row['kind']}: {row['value']}")
    all_ids = {paper_id for papers in wanted.values() for paper_id in papers}
    papers = await load_papers(conn, [paper_id for paper_id in day_ids if paper_id in all_ids])
    return {
        user_id: [DayMatch(paper=papers[p], matched=found[p]) for p in day_ids if p in found and p in papers]
        for user_id, found in wanted.items()
    }


async def _keyword_papers(conn: aiosqlite.Connection, keyword: str, paper_ids: list[int]) -> set[int]:
    """The day's papers matching a keyword, within one search's time budget (too costly: none, logged)."""
    try:
        with db.budget(db.QUERY_BUDGET_SECONDS):
            if db.dialect(conn) == "postgresql":
                return await search.papers_matching(conn, keyword, paper_ids)
            return await _fts5_keyword_papers(conn, keyword, paper_ids)
    except QueryTooBroad:
        log.warning("keyword subscription %r is too costly to match; it matched nothing today", keyword)
        return set()
    except QueryError:  # the rules changed since it was made: it matches nothing
        return set()


async def _fts5_keyword_papers(conn: aiosqlite.Connection, keyword: str, paper_ids: list[int]) -> set[int]:
    """SQLite: a plain `rowid IN (…)` would make FTS5 run the whole match once per paper; the rowid
    range lets it run once over the day's span, and `+rowid` keeps the day's ids a plain filter on top."""
    match = f"({to_fts_query(keyword)})"
    try:
        rows = await fetch_all(
            conn,
            """SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? AND rowid >= ? AND rowid <= ?
               AND +rowid IN (SELECT value FROM json_each(?))""",
            (match, min(paper_ids), max(paper_ids), id_list(paper_ids)),
        )
    except sqlite3.OperationalError:
        return set()
    return {row[0] for row in rows}
