"""The fetch log: one row per (source, day, kind) saying what the daily fetch job last found.

The fetch job retries a day's files for hours; this log is how anyone (an admin, the scheduler,
a test) sees whether a day's digest was ingested, is still awaited, was never published
(weekends, holidays: `missing` is normal) or could not be fetched (`failed`, with the reason).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

import aiosqlite
from pydantic import BaseModel, ConfigDict

from storage.db import write_lock
from storage._rows import fetch_all

__all__ = [
    "FetchKind",
    "FetchRecord",
    "FetchStatus",
    "day_is_missing",
    "fetches_for_day",
    "get_fetch",
    "record_attempt",
    "recent_fetches",
]

FetchKind = Literal["markdown", "json", "folder"]
# waiting: not there yet, will retry; missing: not published by the deadline (not an error);
# failed: could not be fetched or was not a digest by the deadline; ingested: stored.
FetchStatus = Literal["ingested", "missing", "failed", "waiting"]
KINDS: tuple[str, ...] = get_args(FetchKind)
STATUSES: tuple[str, ...] = get_args(FetchStatus)

_COLUMNS = "source, day, kind, status, detail, attempts, first_attempt_at, last_attempt_at"


class FetchRecord(BaseModel):
    """What the fetch job knows about one file of one source's day."""

    model_config = ConfigDict(frozen=True)

    source: str
    day: dt.date
    kind: FetchKind
    status: FetchStatus
    detail: str
    attempts: int
    first_attempt_at: dt.datetime  # UTC
    last_attempt_at: dt.datetime  # UTC


def _from_row(row) -> FetchRecord:
    return FetchRecord(
        source=row[0],
        day=dt.date.fromisoformat(row[1]),
        kind=row[2],
        status=row[3],
        detail=row[4],
        attempts=row[5],
        first_attempt_at=dt.datetime.fromisoformat(row[6]),
        last_attempt_at=dt.datetime.fromisoformat(row[7]),
    )


def _utc_text(moment: dt.datetime | None) -> str:
    """UTC ISO text; an injected clock (tests, the fetch job's `now`) may give any aware time."""
    if moment is None:
        moment = dt.datetime.now(dt.UTC)
    elif moment.tzinfo is None:
        raise ValueError("fetch times must be timezone-aware")
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


async def record_attempt(
    conn: aiosqlite.Connection,
    source: str,
    day: dt.date,
    kind: FetchKind,
    status: FetchStatus,
    detail: str = "",
    *,
    at: dt.datetime | None = None,
) -> FetchRecord:
    """Count one more attempt for (source, day, kind) and set its outcome; returns the row.

    One statement, so it is atomic on an autocommit connection. `at` (default: now) is the
    attempt's time, so a fake clock in tests gives predictable timestamps.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown fetch kind {kind!r}; expected one of {', '.join(KINDS)}")
    if status not in STATUSES:
        raise ValueError(f"unknown fetch status {status!r}; expected one of {', '.join(STATUSES)}")
    when = _utc_text(at)
    async with write_lock(conn):
        rows = await fetch_all(
            conn,
            f"""INSERT INTO fetches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1, ?, ?)
            ON CONFLICT (source, day, kind) DO UPDATE SET
                status = excluded.status, detail = excluded.detail, attempts = fetches.attempts + 1,
                last_attempt_at = excluded.last_attempt_at
            RETURNING {_COLUMNS}""",
            (source, day.isoformat(), kind, status, detail, when, when),
        )
    return _from_row(rows[0])


async def get_fetch(conn: aiosqlite.Connection, source: str, day: dt.date, kind: FetchKind) -> FetchRecord | None:
    rows = await fetch_all(
        conn,
        f"SELECT {_COLUMNS} FROM fetches WHERE source = ? AND day = ? AND kind = ?",
        (source, day.isoformat(), kind),
    )
    return _from_row(rows[0]) if rows else None


async def fetches_for_day(conn: aiosqlite.Connection, day: dt.date) -> list[FetchRecord]:
    """Every source's files for `day`, by source then kind."""
    rows = await fetch_all(
        conn, f"SELECT {_COLUMNS} FROM fetches WHERE day = ? ORDER BY source, kind", (day.isoformat(),)
    )
    return [_from_row(row) for row in rows]


async def recent_fetches(conn: aiosqlite.Connection, limit: int = 20) -> list[FetchRecord]:
    """The most recently attempted files, newest first: what an admin looks at when a digest is late."""
    rows = await fetch_all(
        conn,
        f"SELECT {_COLUMNS} FROM fetches ORDER BY last_attempt_at DESC, day DESC, source, kind LIMIT ?",
        (max(0, int(limit)),),
    )
    return [_from_row(row) for row in rows]


async def day_is_missing(conn: aiosqlite.Connection, day: dt.date) -> bool:
    """True once the fetch job gave up on `day` without a digest: "no digest for DAY".

    That is: some file was recorded `missing`, and none is `ingested` or still `waiting`.
    A day nobody tried to fetch is not missing (the job may not have run yet); `failed`
    files alone are not either (the producer may have published and we could not read it).
    """
    rows = await fetch_all(
        conn,
        """SELECT count(*) FILTER (WHERE status = 'missing'), count(*) FILTER (WHERE status IN ('ingested', 'waiting'))
           FROM fetches WHERE day = ?""",
        (day.isoformat(),),
    )
    missing, pending_or_done = rows[0]
    return missing > 0 and pending_or_done == 0
