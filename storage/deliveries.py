"""The delivery ledger: what each channel was sent for each day, message by message.

A delivery is planned once (its messages rendered and stored in one transaction) and then
replayed, never re-rendered, until every message has a Discord message id: so a restart or a
crash sends exactly what was planned, resuming at the first message Discord did not accept. Each
message has a stable nonce, so a send Discord accepted but the ledger missed is dropped by Discord
as a duplicate when it is repeated.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import aiosqlite
from pydantic import BaseModel

from storage._rows import fetch_all, to_day, utc_now_text
from storage.db import transaction, write

__all__ = [
    "Delivery",
    "PlannedMessage",
    "delivered_days",
    "finish_delivery",
    "get_delivery",
    "last_delivered_day",
    "mark_sent",
    "plan_delivery",
    "record_forum_post",
    "request_forum_post",
    "set_thread",
    "skip_day",
    "unfinished_deliveries",
]


class PlannedMessage(BaseModel):
    position: int
    payload: dict[str, Any]  # bot.render.payload_to_dict
    nonce: str
    in_thread: bool
    message_id: int | None = None  # None until Discord accepted it


class Delivery(BaseModel):
    id: int
    channel_id: int
    day: dt.date
    late: bool
    status: Literal["pending", "delivered", "skipped"]
    reason: str | None = None
    thread_id: int | None = None  # 'thread' style and forums, once the thread (forum post) exists
    post_tags: list[str] | None = None  # forums: the day's tags, most frequent first (planned)
    post_requested: bool = False  # forums: the post was requested at least once (maybe created)
    messages: list[PlannedMessage] = []


def message_nonce(delivery_id: int, position: int) -> str:
    """Deterministic and unique (delivery ids are never reused); Discord allows 25 characters."""
    return f"pb{delivery_id}.{position}"



_DELIVERY_COLUMNS = "id, channel_id, day, late, status, reason, thread_id, post_tags, post_requested_at"


async def _load(conn: aiosqlite.Connection, rows: list) -> list[Delivery]:
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    messages: dict[int, list[PlannedMessage]] = {delivery_id: [] for delivery_id in ids}
    for row in await fetch_all(
        conn,
        """SELECT delivery_id, position, payload, nonce, in_thread, message_id FROM delivery_messages
           WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY delivery_id, position""",
        (json.dumps(ids),),
    ):
        messages[row["delivery_id"]].append(
            PlannedMessage(
                position=row["position"],
                payload=json.loads(row["payload"]),
                nonce=row["nonce"],
                in_thread=bool(row["in_thread"]),
                message_id=row["message_id"],
            )
        )
    return [
        Delivery(
            id=row["id"],
            channel_id=row["channel_id"],
            day=to_day(row["day"]),
            late=bool(row["late"]),
            status=row["status"],
            reason=row["reason"],
            thread_id=row["thread_id"],
            post_tags=json.loads(row["post_tags"]) if row["post_tags"] is not None else None,
            post_requested=row["post_requested_at"] is not None,
            messages=messages[row["id"]],
        )
        for row in rows
    ]


async def get_delivery(conn: aiosqlite.Connection, channel_id: int, day: dt.date) -> Delivery | None:
    rows = await fetch_all(
        conn,
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE channel_id = ? AND day = ?",
        (channel_id, day.isoformat()),
    )
    found = await _load(conn, rows)
    return found[0] if found else None


async def plan_delivery(
    conn: aiosqlite.Connection,
    channel_id: int,
    day: dt.date,
    payload_dicts: list[tuple[dict[str, Any], bool]],
    *,
    late: bool,
    post_tags: list[str] | None = None,
) -> Delivery:
    """The channel's delivery for `day`: the stored one if any (unchanged), else a new pending one.

    `payload_dicts` are (payload, in_thread) in posting order; `post_tags` (forums) are the day's
    tags, most frequent first, to pick the post's forum tags from. Planning is one transaction, so a
    delivery never exists without all its messages, and two planners cannot both create one.
    """
    async with transaction(conn):
        rows = await fetch_all(
            conn, "SELECT id FROM deliveries WHERE channel_id = ? AND day = ?", (channel_id, day.isoformat())
        )
        if not rows:
            cursor = await conn.execute(
                "INSERT INTO deliveries (channel_id, day, late, status, planned_at, post_tags) "
                "VALUES (?, ?, ?, 'pending', ?, ?)",
                (channel_id, day.isoformat(), int(late), utc_now_text(),
                 json.dumps(post_tags, ensure_ascii=False) if post_tags is not None else None),
            )
            delivery_id = cursor.lastrowid
            await conn.executemany(
                "INSERT INTO delivery_messages (delivery_id, position, payload, nonce, in_thread) VALUES (?, ?, ?, ?, ?)",
                [
                    (delivery_id, position, json.dumps(payload, ensure_ascii=False), message_nonce(delivery_id, position),
                     int(in_thread))
                    for position, (payload, in_thread) in enumerate(payload_dicts)
                ],
            )
    delivery = await get_delivery(conn, channel_id, day)
    assert delivery is not None  # planned above, and deliveries are only deleted with their channel
    return delivery


async def mark_sent(conn: aiosqlite.Connection, delivery_id: int, position: int, message_id: int) -> None:
    """Discord accepted this message: never send it again. The first recorded id wins."""
    await write(
        conn,
        "UPDATE delivery_messages SET message_id = ?, sent_at = ? "
        "WHERE delivery_id = ? AND position = ? AND message_id IS NULL",
        (message_id, utc_now_text(), delivery_id, position),
    )


async def set_thread(conn: aiosqlite.Connection, delivery_id: int, thread_id: int) -> None:
    """The thread the delivery's `in_thread` messages go to, reused on resume."""
    await write(conn, "UPDATE deliveries SET thread_id = ? WHERE id = ?", (thread_id, delivery_id))


async def request_forum_post(conn: aiosqlite.Connection, delivery_id: int) -> None:
    """About to ask Discord for the forum post: from now on a resume looks for it before creating one."""
    await write(
        conn,
        "UPDATE deliveries SET post_requested_at = coalesce(post_requested_at, ?) WHERE id = ?",
        (utc_now_text(), delivery_id),
    )


async def record_forum_post(
    conn: aiosqlite.Connection, delivery_id: int, thread_id: int, header_position: int, header_message_id: int
) -> None:
    """The forum post exists: its thread and its first message (the header), in one transaction."""
    async with transaction(conn):
        await conn.execute("UPDATE deliveries SET thread_id = ? WHERE id = ?", (thread_id, delivery_id))
        await conn.execute(
            "UPDATE delivery_messages SET message_id = ?, sent_at = ? "
            "WHERE delivery_id = ? AND position = ? AND message_id IS NULL",
            (header_message_id, utc_now_text(), delivery_id, header_position),
        )


async def finish_delivery(conn: aiosqlite.Connection, delivery_id: int) -> bool:
    """Mark a pending delivery delivered; False (and nothing changed) while a message is unsent."""
    changed = await write(
        conn,
        """UPDATE deliveries SET status = 'delivered', finished_at = ?
           WHERE id = ? AND status = 'pending'
             AND NOT EXISTS (SELECT 1 FROM delivery_messages WHERE delivery_id = ? AND message_id IS NULL)""",
        (utc_now_text(), delivery_id, delivery_id),
    )
    return changed > 0


async def skip_day(conn: aiosqlite.Connection, channel_id: int, day: dt.date, reason: str) -> None:
    """Record that `day` needs nothing posted in the channel (e.g. "no papers").

    Idempotent: a delivered or skipped day is left as it is; a pending one becomes skipped (its
    unsent messages are abandoned).
    """
    now = utc_now_text()
    await write(
        conn,
        """INSERT INTO deliveries (channel_id, day, late, status, reason, planned_at, finished_at)
           VALUES (?, ?, 0, 'skipped', ?, ?, ?)
           ON CONFLICT (channel_id, day) DO UPDATE SET
               status = 'skipped', reason = excluded.reason, finished_at = excluded.finished_at
           WHERE status = 'pending'""",
        (channel_id, day.isoformat(), reason, now, now),
    )


async def last_delivered_day(conn: aiosqlite.Connection, channel_id: int) -> dt.date | None:
    """The latest day whose digest was posted in full (skipped days do not count)."""
    rows = await fetch_all(
        conn, "SELECT max(day) FROM deliveries WHERE channel_id = ? AND status = 'delivered'", (channel_id,)
    )
    return to_day(rows[0][0]) if rows[0][0] else None


async def unfinished_deliveries(conn: aiosqlite.Connection) -> list[Delivery]:
    """Pending deliveries, oldest day first: what to resume at start-up."""
    rows = await fetch_all(
        conn, f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' ORDER BY day, id"
    )
    return await _load(conn, rows)


async def pending_days(conn: aiosqlite.Connection, channel_id: int, since: dt.date) -> set[dt.date]:
    """Days from `since` on whose delivery was planned but not finished (a retry is owed)."""
    return await _days_with_status(conn, channel_id, since, ("pending",))


async def delivered_days(conn: aiosqlite.Connection, channel_id: int, since: dt.date) -> set[dt.date]:
    """Days from `since` on that need nothing more in the channel: delivered or skipped."""
    return await _days_with_status(conn, channel_id, since, ("delivered", "skipped"))


async def _days_with_status(
    conn: aiosqlite.Connection, channel_id: int, since: dt.date, statuses: tuple[str, ...]
) -> set[dt.date]:
    rows = await fetch_all(
        conn,
        "SELECT day FROM deliveries WHERE channel_id = ? AND day >= ? AND status IN (SELECT value FROM json_each(?))",
        (channel_id, since.isoformat(), json.dumps(statuses)),
    )
    return {to_day(row[0]) for row in rows}
