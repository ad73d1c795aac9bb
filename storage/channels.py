"""The channels that asked for the daily digest, with their settings and health.

A channel Discord refuses (403/404) is marked broken: deliveries stop until its settings are
saved again, and the server is told once (`mark_broken` says when). Transient failures are only
recorded (`record_error`) so admins can see why a digest is late.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Literal

import aiosqlite
from pydantic import BaseModel, Field, field_validator

from storage._rows import fetch_all, to_json, utc_now_text
from storage.db import write
from storage.tags import normalize_tag

__all__ = [
    "DigestChannel",
    "get_channel",
    "list_channels",
    "mark_broken",
    "record_error",
    "remove_channel",
    "save_channel",
    "set_roundup",
]


class DigestChannel(BaseModel):
    """One channel's digest settings (what an admin chose) and health (what Discord said)."""

    channel_id: int
    guild_id: int
    post_time: dt.time  # local time of day, minutes precision
    timezone: str  # IANA name
    tags: list[str] = Field(default_factory=list)  # [] = every paper
    #: `forum`: the channel is a forum; each day is one post (thread) with a message per paper.
    style: Literal["compact", "thread", "forum"] = "compact"
    empty_day_note: bool = False
    create_forum_tags: bool = False  # forums: may Paperbot create forum tags for the papers' tags
    set_up_by: int | None = None
    broken_reason: str | None = None
    broken_notified: bool = False
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    # When the digest was first set up (the scheduler owes no day before it); None = now, on save.
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None  # set by save_channel
    # The weekly roundup, set by `set_roundup` (save_channel leaves it alone): a local weekday
    # (0 = Monday) and time, None = off, and when it was turned on (no earlier roundup is owed).
    roundup_weekday: int | None = Field(default=None, ge=0, le=6)
    roundup_time: dt.time | None = None
    roundup_since: dt.datetime | None = None

    @field_validator("post_time", "roundup_time")
    @classmethod
    def _minutes_only(cls, value: dt.time | None) -> dt.time | None:
        return value.replace(second=0, microsecond=0, tzinfo=None) if value is not None else None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Paris'") from None
        return value

    @field_validator("created_at", "updated_at", "last_error_at", "roundup_since")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        """Stored times are UTC; a naive one is taken to be UTC already."""
        return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(tag.strip() for tag in value if tag.strip()))


_COLUMNS = (
    "channel_id, guild_id, post_time, timezone, tags, style, empty_day_note, set_up_by, "
    "broken_reason, broken_notified, last_error, last_error_at, created_at, updated_at, forum, create_forum_tags, "
    "roundup_weekday, roundup_time, roundup_since"
)



def _utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _utc_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _from_row(row) -> DigestChannel:
    return DigestChannel(
        channel_id=row["channel_id"],
        guild_id=row["guild_id"],
        post_time=dt.time.fromisoformat(row["post_time"]),
        timezone=row["timezone"],
        tags=json.loads(row["tags"]),
        style="forum" if row["forum"] else row["style"],  # see migration 006
        empty_day_note=bool(row["empty_day_note"]),
        create_forum_tags=bool(row["create_forum_tags"]),
        set_up_by=row["set_up_by"],
        broken_reason=row["broken_reason"],
        broken_notified=bool(row["broken_notified"]),
        last_error=row["last_error"],
        last_error_at=_utc_time(row["last_error_at"]),
        created_at=_utc_time(row["created_at"]),
        updated_at=_utc_time(row["updated_at"]),
        roundup_weekday=row["roundup_weekday"],
        roundup_time=dt.time.fromisoformat(row["roundup_time"]) if row["roundup_time"] else None,
        roundup_since=_utc_time(row["roundup_since"]),
    )


async def save_channel(conn: aiosqlite.Connection, channel: DigestChannel) -> None:
    """Insert or update the channel's settings.

    Saving is how an admin says "fixed": it clears `broken_reason` and `broken_notified`, so
    deliveries resume and a later breakage is reported again. Health fields of `channel` are
    ignored (`last_error` is kept), and so is `updated_at`; `created_at` is written when given,
    else set to now for a new channel and kept for an existing one.
    """
    now = utc_now_text()
    created_at = _utc_text(channel.created_at) if channel.created_at is not None else None
    await write(
        conn,
        """INSERT INTO digest_channels
               (channel_id, guild_id, post_time, timezone, tags, style, empty_day_note, set_up_by,
                created_at, updated_at, broken_reason, broken_notified, forum, create_forum_tags)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, coalesce(?, ?), ?, NULL, 0, ?, ?)
           ON CONFLICT (channel_id) DO UPDATE SET
               created_at = coalesce(?, digest_channels.created_at),
               guild_id = excluded.guild_id, post_time = excluded.post_time,
               timezone = excluded.timezone, tags = excluded.tags, style = excluded.style,
               empty_day_note = excluded.empty_day_note, set_up_by = excluded.set_up_by,
               updated_at = excluded.updated_at, broken_reason = NULL, broken_notified = 0,
               forum = excluded.forum, create_forum_tags = excluded.create_forum_tags""",
        (
            channel.channel_id,
            channel.guild_id,
            channel.post_time.strftime("%H:%M"),
            channel.timezone,
            to_json(channel.tags),
            "thread" if channel.style == "forum" else channel.style,  # a forum is a flag, see migration 006
            int(channel.empty_day_note),
            channel.set_up_by,
            created_at,
            now,
            now,
            int(channel.style == "forum"),
            int(channel.create_forum_tags and channel.style == "forum"),
            created_at,
        ),
    )


async def set_roundup(
    conn: aiosqlite.Connection,
    channel_id: int,
    weekday: int | None,
    at: dt.time | None = None,
    *,
    since: dt.datetime | None = None,
) -> bool:
    """Turn the channel's weekly roundup on (local `weekday`, 0 = Monday, at `at`) or off (None).

    False if the channel gets no digest. Turning it on (again) sets `roundup_since` (default now),
    so a roundup whose time passed before then is not owed.
    """
    if weekday is None:
        sql, params = (
            "UPDATE digest_channels SET roundup_weekday = NULL, roundup_time = NULL, roundup_since = NULL "
            "WHERE channel_id = ?",
            (channel_id,),
        )
    else:
        if at is None:
            raise ValueError("a roundup needs a time of day")
        sql, params = (
            "UPDATE digest_channels SET roundup_weekday = ?, roundup_time = ?, roundup_since = ? WHERE channel_id = ?",
            (weekday, at.strftime("%H:%M"), _utc_text(since) if since else utc_now_text(), channel_id),
        )
    return await write(conn, sql, params) > 0


async def remove_channel(conn: aiosqlite.Connection, channel_id: int) -> bool:
    """Stop the digest in a channel (its delivery history goes too); False if it had none."""
    return await write(conn, "DELETE FROM digest_channels WHERE channel_id = ?", (channel_id,)) > 0


async def get_channel(conn: aiosqlite.Connection, channel_id: int) -> DigestChannel | None:
    rows = await fetch_all(conn, f"SELECT {_COLUMNS} FROM digest_channels WHERE channel_id = ?", (channel_id,))
    return _from_row(rows[0]) if rows else None


async def list_channels(conn: aiosqlite.Connection, *, guild_id: int | None = None) -> list[DigestChannel]:
    """Every digest channel (or one server's), by channel id."""
    if guild_id is None:
        rows = await fetch_all(conn, f"SELECT {_COLUMNS} FROM digest_channels ORDER BY channel_id")
    else:
        rows = await fetch_all(
            conn, f"SELECT {_COLUMNS} FROM digest_channels WHERE guild_id = ? ORDER BY channel_id", (guild_id,)
        )
    return [_from_row(row) for row in rows]


async def mark_broken(conn: aiosqlite.Connection, channel_id: int, reason: str) -> bool:
    """Record why Discord refuses the channel. True exactly once per breakage: tell the server now.

    The test-and-set is one UPDATE, so two deliveries failing at once cannot both notify.
    """
    claimed = await write(
        conn,
        "UPDATE digest_channels SET broken_reason = ?, broken_notified = 1 "
        "WHERE channel_id = ? AND broken_notified = 0",
        (reason, channel_id),
    )
    if claimed > 0:
        return True
    await write(conn, "UPDATE digest_channels SET broken_reason = ? WHERE channel_id = ?", (reason, channel_id))
    return False


async def record_error(conn: aiosqlite.Connection, channel_id: int, error: str | None) -> None:
    """Remember the last transient failure (None after a success clears it)."""
    await write(
        conn,
        "UPDATE digest_channels SET last_error = ?, last_error_at = ? WHERE channel_id = ?",
        (error, utc_now_text() if error is not None else None, channel_id),
    )


async def set_tag_role(conn: aiosqlite.Connection, guild_id: int, tag: str, role_id: int | None) -> bool:
    """Map `tag` to a role in a server (None removes the mapping); False if there was nothing to remove."""
    if role_id is None:
        return await write(
            conn, "DELETE FROM tag_roles WHERE guild_id = ? AND tag_norm = ?", (guild_id, normalize_tag(tag))
        ) > 0
    await write(
        conn,
        "INSERT INTO tag_roles (guild_id, tag_norm, tag_name, role_id) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (guild_id, tag_norm) DO UPDATE SET tag_name = excluded.tag_name, role_id = excluded.role_id",
        (guild_id, normalize_tag(tag), tag, role_id),
    )
    return True


async def tag_roles(conn: aiosqlite.Connection, guild_id: int) -> dict[str, tuple[str, int]]:
    """A server's mappings: normalized tag -> (display name, role id)."""
    rows = await fetch_all(
        conn, "SELECT tag_norm, tag_name, role_id FROM tag_roles WHERE guild_id = ? ORDER BY tag_name", (guild_id,)
    )
    return {row[0]: (row[1], row[2]) for row in rows}
