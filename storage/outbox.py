"""The delivery ledger: every message Paperbot sends on its own, planned before it is sent.

One item per (kind, target, period): a channel's digest for a day (thread style, forum post and
empty-day note included), a channel's weekly roundup, a user's DM for a day. An item is planned
once (its messages rendered and stored in one transaction) and then replayed, never re-rendered,
until every message has a Discord message id: a restart or a crash sends exactly what was planned,
resuming at the first message Discord did not accept. Each message has a nonce, unique forever
(item ids are never reused), which the poster sends and also hides in the message as a marker, so
a message Discord created but whose answer was lost can be recognised in the channel later.

Item status: 'planned' -> 'done' (every message accepted) or 'skipped' (with the reason). What a
channel got is also kept per channel id in `channel_history`, which outlives `/digest remove`.

Several processes may share one library (PostgreSQL): each item is sent only by the process that
`claim`s it, so nothing is posted twice. A claim dies with its process, so an item a dead process
was sending is claimed and finished by another, or by the restart, resuming as above.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiosqlite
from pydantic import BaseModel

from storage._rows import any_of, fetch_all, to_day, utc_now_text
from storage.db import transaction, write

__all__ = [
    "Item",
    "Kind",
    "PlannedMessage",
    "claim",
    "finish",
    "get",
    "handled_targets",
    "history",
    "last_done",
    "last_periods",
    "last_recorded_message",
    "mark_sent",
    "mark_tried",
    "plan",
    "periods",
    "record_forum_post",
    "request_forum_post",
    "set_thread",
    "skip",
    "unfinished",
]

Kind = Literal["digest", "roundup", "dm"]
Status = Literal["planned", "done", "skipped"]
CHANNEL_KINDS: tuple[Kind, ...] = ("digest", "roundup")


class PlannedMessage(BaseModel):
    position: int
    payload: dict[str, Any]  # bot.render.payload_to_dict
    nonce: str
    in_thread: bool = False
    tried: bool = False  # a send was attempted: look for it before sending again
    look_after: int | None = None  # ... among the messages after this one (the newest when first tried)
    message_id: int | None = None  # None until Discord accepted it


class Item(BaseModel):
    id: int
    kind: Kind
    target_id: int  # the channel, or the user for DMs
    period: dt.date  # the day, or a roundup's own local day
    late: bool = False
    status: Status
    reason: str | None = None
    thread_id: int | None = None  # thread style and forums, once the thread (forum post) exists
    post_tags: list[str] | None = None  # forums: the day's tags, most frequent first (planned)
    post_requested: bool = False  # forums: the post was requested at least once (maybe created)
    messages: list[PlannedMessage] = []

    @property
    def day(self) -> dt.date:
        return self.period

    @property
    def finished(self) -> bool:
        return self.status != "planned"


def message_nonce(item_id: int, position: int) -> str:
    """Deterministic and unique (ids are never reused); Discord allows 25 characters."""
    return f"po{item_id}.{position}"


_ITEM_COLUMNS = "id, kind, target_id, period, late, status, reason, thread_id, post_tags, post_requested_at"


async def _load(conn: aiosqlite.Connection, rows: list) -> list[Item]:
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    messages: dict[int, list[PlannedMessage]] = {item_id: [] for item_id in ids}
    of_items, item_ids = any_of(conn, "item_id", ids)
    for row in await fetch_all(
        conn,
        f"""SELECT item_id, position, payload, nonce, in_thread, tried_at, look_after, message_id FROM outbox_messages
            WHERE {of_items} ORDER BY item_id, position""",
        (item_ids,),
    ):
        messages[row["item_id"]].append(
            PlannedMessage(
                position=row["position"], payload=json.loads(row["payload"]), nonce=row["nonce"],
                in_thread=bool(row["in_thread"]), tried=row["tried_at"] is not None, look_after=row["look_after"],
                message_id=row["message_id"],
            )
        )
    return [
        Item(
            id=row["id"], kind=row["kind"], target_id=row["target_id"], period=to_day(row["period"]),
            late=bool(row["late"]), status=row["status"], reason=row["reason"], thread_id=row["thread_id"],
            post_tags=json.loads(row["post_tags"]) if row["post_tags"] is not None else None,
            post_requested=row["post_requested_at"] is not None, messages=messages[row["id"]],
        )
        for row in rows
    ]


def _target_columns(kind: Kind, target_id: int) -> tuple[int | None, int | None]:
    """(channel_id, user_id): the row the item cascades from."""
    return (None, target_id) if kind == "dm" else (target_id, None)


async def get(conn: aiosqlite.Connection, kind: Kind, target_id: int, period: dt.date) -> Item | None:
    rows = await fetch_all(
        conn, f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE kind = ? AND target_id = ? AND period = ?",
        (kind, target_id, period.isoformat()),
    )
    found = await _load(conn, rows)
    return found[0] if found else None


async def plan(
    conn: aiosqlite.Connection,
    kind: Kind,
    target_id: int,
    period: dt.date,
    payloads: list[tuple[dict[str, Any], bool]],
    *,
    late: bool = False,
    post_tags: list[str] | None = None,
) -> Item:
    """The target's item for `period`: the stored one if any (unchanged), else a new planned one.

    `payloads` are (payload, in_thread) in posting order. One transaction, so an item never
    exists without all its messages, and two planners cannot both create one.
    """
    channel_id, user_id = _target_columns(kind, target_id)
    async with transaction(conn):
        rows = await fetch_all(
            conn, "SELECT id FROM outbox WHERE kind = ? AND target_id = ? AND period = ?",
            (kind, target_id, period.isoformat()),
        )
        if not rows:
            inserted = await fetch_all(
                conn,
                """INSERT INTO outbox (kind, target_id, channel_id, user_id, period, late, status, planned_at, post_tags)
                   VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?) RETURNING id""",
                (kind, target_id, channel_id, user_id, period.isoformat(), int(late), utc_now_text(),
                 json.dumps(post_tags, ensure_ascii=False) if post_tags is not None else None),
            )
            item_id = inserted[0][0]
            await conn.executemany(
                "INSERT INTO outbox_messages (item_id, position, payload, nonce, in_thread) VALUES (?, ?, ?, ?, ?)",
                [
                    (item_id, position, json.dumps(payload, ensure_ascii=False), message_nonce(item_id, position),
                     int(in_thread))
                    for position, (payload, in_thread) in enumerate(payloads)
                ],
            )
    item = await get(conn, kind, target_id, period)
    assert item is not None  # planned above; items go only with their channel or user
    return item


@asynccontextmanager
async def claim(conn: aiosqlite.Connection, item_id: int) -> AsyncIterator[bool]:
    """Yield True while this process alone may send item `item_id`; False if another holds it
    (leave the item alone: its holder, or whoever claims it after the holder died, sends it).

    Built on the library's `hold`: across processes on PostgreSQL (released when the holder's
    connection drops, so a killed process frees its items at once), within the process on SQLite.
    Claim first, then read the item again (`get`): its last holder may have sent more of it meanwhile.
    """
    async with conn.hold("outbox", item_id) as mine:
        yield mine


async def mark_tried(conn: aiosqlite.Connection, item_id: int, position: int, look_after: int | None) -> None:
    """About to send: from now on a resume looks for the message before sending it again, among the
    messages after `look_after` (the newest message known in its channel now)."""
    await write(
        conn,
        "UPDATE outbox_messages SET tried_at = ?, look_after = ? "
        "WHERE item_id = ? AND position = ? AND tried_at IS NULL",
        (utc_now_text(), look_after, item_id, position),
    )


async def mark_sent(conn: aiosqlite.Connection, item_id: int, position: int, message_id: int) -> None:
    """Discord accepted this message: never send it again. The first recorded id wins."""
    now = utc_now_text()
    await write(
        conn,
        "UPDATE outbox_messages SET message_id = ?, sent_at = ?, tried_at = coalesce(tried_at, ?) "
        "WHERE item_id = ? AND position = ? AND message_id IS NULL",
        (message_id, now, now, item_id, position),
    )


async def set_thread(conn: aiosqlite.Connection, item_id: int, thread_id: int) -> None:
    """The thread the item's `in_thread` messages go to, reused on resume."""
    await write(conn, "UPDATE outbox SET thread_id = ? WHERE id = ?", (thread_id, item_id))


async def request_forum_post(conn: aiosqlite.Connection, item_id: int) -> None:
    """About to ask Discord for the forum post: from now on a resume looks for it before creating one."""
    await write(
        conn, "UPDATE outbox SET post_requested_at = coalesce(post_requested_at, ?) WHERE id = ?",
        (utc_now_text(), item_id),
    )


async def record_forum_post(
    conn: aiosqlite.Connection, item_id: int, thread_id: int, header_position: int, header_message_id: int
) -> None:
    """The forum post exists: its thread and its first message (the header), in one transaction."""
    async with transaction(conn):
        await conn.execute("UPDATE outbox SET thread_id = ? WHERE id = ?", (thread_id, item_id))
        now = utc_now_text()
        await conn.execute(
            "UPDATE outbox_messages SET message_id = ?, sent_at = ?, tried_at = coalesce(tried_at, ?) "
            "WHERE item_id = ? AND position = ? AND message_id IS NULL",
            (header_message_id, now, now, item_id, header_position),
        )


async def _remember(conn: aiosqlite.Connection, item_id: int) -> None:
    """Copy a finished channel item into channel_history (inside the caller's transaction)."""
    await conn.execute(
        """INSERT INTO channel_history (channel_id, kind, period, status)
           SELECT target_id, kind, period, status FROM outbox
           WHERE id = ? AND kind IN ('digest', 'roundup') AND status != 'planned'
           ON CONFLICT (channel_id, kind, period) DO NOTHING""",
        (item_id,),
    )


async def finish(conn: aiosqlite.Connection, item_id: int) -> bool:
    """Mark a planned item done; False (and nothing changed) while a message is unsent."""
    async with transaction(conn):
        cursor = await conn.execute(
            """UPDATE outbox SET status = 'done', finished_at = ?
               WHERE id = ? AND status = 'planned'
                 AND NOT EXISTS (SELECT 1 FROM outbox_messages WHERE item_id = ? AND message_id IS NULL)""",
            (utc_now_text(), item_id, item_id),
        )
        changed = cursor.rowcount > 0
        if changed:
            await _remember(conn, item_id)
    return changed


async def skip(conn: aiosqlite.Connection, kind: Kind, target_id: int, period: dt.date, reason: str) -> None:
    """Record that `period` needs nothing (more) sent to the target (e.g. "no papers").

    Idempotent: a done or skipped item is left as it is; a planned one becomes skipped (its
    unsent messages are abandoned). A DM item needs the user's subscriber row (a user without
    one has nothing to skip); a channel item needs the channel row.
    """
    channel_id, user_id = _target_columns(kind, target_id)
    parent = ("SELECT 1 FROM subscribers WHERE user_id = ?" if kind == "dm"
              else "SELECT 1 FROM digest_channels WHERE channel_id = ?")
    now = utc_now_text()
    async with transaction(conn):
        if not await fetch_all(conn, parent, (target_id,)):
            return
        await conn.execute(
            """INSERT INTO outbox (kind, target_id, channel_id, user_id, period, late, status, reason, planned_at,
                                   finished_at)
               VALUES (?, ?, ?, ?, ?, 0, 'skipped', ?, ?, ?)
               ON CONFLICT (kind, target_id, period) DO UPDATE SET
                   status = 'skipped', reason = excluded.reason, finished_at = excluded.finished_at
               WHERE outbox.status = 'planned'""",
            (kind, target_id, channel_id, user_id, period.isoformat(), reason, now, now),
        )
        rows = await fetch_all(
            conn, "SELECT id FROM outbox WHERE kind = ? AND target_id = ? AND period = ?",
            (kind, target_id, period.isoformat()),
        )
        if rows:
            await _remember(conn, rows[0][0])


async def unfinished(conn: aiosqlite.Connection, kind: Kind) -> list[Item]:
    """Planned items of `kind`, oldest period first: what to resume at start-up."""
    rows = await fetch_all(
        conn, f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE status = 'planned' AND kind = ? ORDER BY period, id", (kind,)
    )
    return await _load(conn, rows)


async def periods(
    conn: aiosqlite.Connection, kind: Kind, target_id: int, since: dt.date, statuses: tuple[Status, ...]
) -> set[dt.date]:
    """Periods from `since` on whose item has one of `statuses`."""
    of_statuses, wanted = any_of(conn, "status", statuses)
    rows = await fetch_all(
        conn,
        f"SELECT period FROM outbox WHERE kind = ? AND target_id = ? AND period >= ? AND {of_statuses}",
        (kind, target_id, since.isoformat(), wanted),
    )
    return {to_day(row[0]) for row in rows}


async def history(conn: aiosqlite.Connection, kind: Kind, channel_id: int, since: dt.date) -> set[dt.date]:
    """Periods from `since` on that the channel id already got (done or skipped), also before a removal."""
    rows = await fetch_all(
        conn, "SELECT period FROM channel_history WHERE channel_id = ? AND kind = ? AND period >= ?",
        (channel_id, kind, since.isoformat()),
    )
    return {to_day(row[0]) for row in rows}


async def handled_targets(conn: aiosqlite.Connection, kind: Kind, period: dt.date) -> set[int]:
    """Targets that already have an item (of any status) for `period`."""
    rows = await fetch_all(
        conn, "SELECT target_id FROM outbox WHERE kind = ? AND period = ?", (kind, period.isoformat())
    )
    return {row[0] for row in rows}


async def last_periods(conn: aiosqlite.Connection, kind: Kind) -> dict[int, dt.date]:
    """Each target's newest period with an item (of any status): where its deliveries stand."""
    rows = await fetch_all(conn, "SELECT target_id, max(period) FROM outbox WHERE kind = ? GROUP BY target_id", (kind,))
    return {row[0]: to_day(row[1]) for row in rows}


async def last_recorded_message(conn: aiosqlite.Connection, kind: Kind, target_id: int) -> int | None:
    """The newest message id recorded for the target (any item of this family): where to start
    reading its history when looking for a message whose answer was lost."""
    of_kinds, kinds = any_of(conn, "o.kind", ("dm",) if kind == "dm" else CHANNEL_KINDS)
    rows = await fetch_all(
        conn,
        f"""SELECT max(m.message_id) FROM outbox_messages m JOIN outbox o ON o.id = m.item_id
            WHERE o.target_id = ? AND {of_kinds} AND m.in_thread = 0""",
        (target_id, kinds),
    )
    return rows[0][0]


async def last_done(conn: aiosqlite.Connection, kind: Kind, channel_id: int) -> dt.date | None:
    """The latest period the channel got in full (skipped ones do not count), also before a removal."""
    rows = await fetch_all(
        conn, "SELECT max(period) FROM channel_history WHERE channel_id = ? AND kind = ? AND status = 'done'",
        (channel_id, kind),
    )
    return to_day(rows[0][0]) if rows[0][0] else None
