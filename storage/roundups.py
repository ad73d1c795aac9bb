"""The weekly roundup ledger: each (channel, week) roundup is planned once and posted exactly once.

The same idea as `storage.deliveries`, for a single message: the roundup is rendered and stored
before it is sent, so a restart sends what was planned; it carries a stable nonce, so a send
Discord accepted but the ledger missed is dropped by Discord when repeated; and the message id is
recorded as soon as Discord accepts it, so it is never sent again.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import aiosqlite
from pydantic import BaseModel

from storage._rows import fetch_all, to_day, utc_now_text
from storage.db import write

__all__ = ["Roundup", "get_roundup", "mark_roundup_sent", "plan_roundup", "skip_roundup"]


class Roundup(BaseModel):
    id: int
    channel_id: int
    week_end: dt.date  # the local day of the roundup: the week is the seven days ending there
    payload: dict[str, Any]  # bot.render.payload_to_dict
    message_id: int | None = None  # None until Discord accepted it
    skipped_reason: str | None = None  # Discord rejected the message itself: not sent again

    @property
    def done(self) -> bool:
        return self.message_id is not None or self.skipped_reason is not None

    @property
    def nonce(self) -> str:
        """Unique (ids are never reused) and distinct from the daily digest's `pb<id>.<n>` nonces."""
        return f"pbr{self.id}"



async def get_roundup(conn: aiosqlite.Connection, channel_id: int, week_end: dt.date) -> Roundup | None:
    rows = await fetch_all(
        conn,
        "SELECT id, channel_id, week_end, payload, message_id, skipped_reason FROM roundups "
        "WHERE channel_id = ? AND week_end = ?",
        (channel_id, week_end.isoformat()),
    )
    if not rows:
        return None
    row = rows[0]
    return Roundup(
        id=row["id"], channel_id=row["channel_id"], week_end=to_day(row["week_end"]),
        payload=json.loads(row["payload"]), message_id=row["message_id"], skipped_reason=row["skipped_reason"],
    )


async def plan_roundup(
    conn: aiosqlite.Connection, channel_id: int, week_end: dt.date, payload: dict[str, Any]
) -> Roundup:
    """The channel's roundup for the week: the stored one if any (unchanged), else `payload`, stored now."""
    await write(
        conn,
        "INSERT INTO roundups (channel_id, week_end, payload, planned_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (channel_id, week_end) DO NOTHING",
        (channel_id, week_end.isoformat(), json.dumps(payload, ensure_ascii=False), utc_now_text()),
    )
    roundup = await get_roundup(conn, channel_id, week_end)
    assert roundup is not None  # planned above; rows go only with their channel
    return roundup


async def mark_roundup_sent(conn: aiosqlite.Connection, roundup_id: int, message_id: int) -> None:
    """Discord accepted the roundup: never send it again. The first recorded id wins."""
    await write(
        conn,
        "UPDATE roundups SET message_id = ?, sent_at = ? WHERE id = ? AND message_id IS NULL",
        (message_id, utc_now_text(), roundup_id),
    )


async def skip_roundup(conn: aiosqlite.Connection, roundup_id: int, reason: str) -> None:
    """Discord rejected the roundup itself: sending it again would fail again, so its week is done."""
    await write(
        conn,
        "UPDATE roundups SET skipped_reason = ? WHERE id = ? AND message_id IS NULL",
        (reason, roundup_id),
    )
