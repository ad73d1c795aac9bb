"""storage.fetches: the fetch log the daily fetch job writes, on a real SQLite file."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import db
from storage.fetches import day_is_missing, fetches_for_day, get_fetch, record_attempt, recent_fetches

SAT, SUN = dt.date(2025, 2, 22), dt.date(2025, 2, 23)
T0 = dt.datetime(2025, 2, 22, 6, 0, tzinfo=dt.UTC)


async def test_an_attempt_is_counted_and_keeps_its_first_time(conn):
    first = await record_attempt(conn, "timlrx", SAT, "markdown", "waiting", "HTTP 404", at=T0)
    assert (first.attempts, first.first_attempt_at, first.last_attempt_at) == (1, T0, T0)
    later = T0 + dt.timedelta(minutes=5)
    second = await record_attempt(conn, "timlrx", SAT, "markdown", "missing", "no digest for 2025-02-22", at=later)
    assert second.model_dump() == {
        "source": "timlrx", "day": SAT, "kind": "markdown", "status": "missing",
        "detail": "no digest for 2025-02-22", "attempts": 2, "first_attempt_at": T0, "last_attempt_at": later,
    }
    assert await get_fetch(conn, "timlrx", SAT, "markdown") == second
    assert await get_fetch(conn, "timlrx", SAT, "json") is None
    assert not conn.in_transaction


async def test_times_are_stored_in_utc(conn):
    paris = dt.datetime(2025, 2, 22, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    record = await record_attempt(conn, "timlrx", SAT, "json", "ingested", "18 papers", at=paris)
    assert record.first_attempt_at == T0 and record.first_attempt_at.utcoffset() == dt.timedelta(0)
    default = await record_attempt(conn, "other", SAT, "json", "waiting")
    assert abs(default.last_attempt_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        await record_attempt(conn, "timlrx", SAT, "json", "waiting", at=dt.datetime(2025, 2, 22))


@pytest.mark.parametrize(("kind", "status"), [("html", "waiting"), ("markdown", "done")])
async def test_unknown_kinds_and_statuses_are_refused(conn, kind, status):
    with pytest.raises(ValueError, match="unknown fetch"):
        await record_attempt(conn, "timlrx", SAT, kind, status, at=T0)
    assert await recent_fetches(conn) == []


async def test_a_days_fetches_and_the_most_recent_ones(conn):
    for minute, (source, day, kind) in enumerate(
        [("timlrx", SAT, "markdown"), ("timlrx", SAT, "json"), ("local", SAT, "folder"), ("timlrx", SUN, "markdown")]
    ):
        await record_attempt(conn, source, day, kind, "waiting", at=T0 + dt.timedelta(minutes=minute))
    assert [(r.source, r.kind) for r in await fetches_for_day(conn, SAT)] == [
        ("local", "folder"), ("timlrx", "json"), ("timlrx", "markdown"),
    ]
    assert await fetches_for_day(conn, dt.date(2025, 2, 21)) == []
    recent = await recent_fetches(conn, limit=2)
    assert [(r.day, r.source, r.kind) for r in recent] == [(SUN, "timlrx", "markdown"), (SAT, "local", "folder")]
    assert len(await recent_fetches(conn)) == 4
    assert await recent_fetches(conn, limit=0) == []


@pytest.mark.parametrize(
    ("statuses", "missing"),
    [
        ([], False),  # nobody tried yet
        (["missing"], True),
        (["missing", "missing"], True),
        (["missing", "failed"], True),
        (["missing", "waiting"], False),  # another file may still come
        (["missing", "ingested"], False),
        (["failed"], False),  # published or not, we could not tell
    ],
)
async def test_a_day_is_missing_once_the_job_gave_up_without_a_digest(conn, statuses, missing):
    for index, status in enumerate(statuses):
        await record_attempt(conn, f"source{index}", SAT, "markdown", status, at=T0)
    await record_attempt(conn, "timlrx", SUN, "markdown", "ingested", at=T0)
    assert await day_is_missing(conn, SAT) is missing


async def test_the_log_survives_reopening_and_the_schema_is_checked(tmp_path):
    path = tmp_path / "library.db"
    conn = await db.connect(path)
    await record_attempt(conn, "timlrx", SAT, "markdown", "missing", "no digest for 2025-02-22", at=T0)
    await conn.close()
    conn = await db.connect(path)
    try:
        assert (await get_fetch(conn, "timlrx", SAT, "markdown")).status == "missing"
        assert await db.integrity_check(conn) == []
        with pytest.raises(Exception, match="CHECK"):  # the schema refuses what the API would
            await conn.execute(
                "INSERT INTO fetches VALUES ('x', '2025-02-22', 'html', 'waiting', '', 1, 't', 't')"
            )
    finally:
        await conn.close()
