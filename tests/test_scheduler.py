"""When digests are due: local post times, time zones, DST, catch-up windows, setup day."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from settings import FetchSettings, SourceSettings
from bot.scheduler import due_days, last_due_day, opened_fetch_days, post_trigger
from digests import fetcher
from storage import channels, fetches, outbox
from storage.channels import DigestChannel
from tests.conftest import CORPUS
from tests.world import World


def channel(zone: str = "Europe/Berlin", at: time = time(9, 0), created: datetime | None = None, **extra) -> DigestChannel:
    return DigestChannel(
        channel_id=extra.pop("channel_id", 1), guild_id=10, post_time=at, timezone=zone, tags=[], style="compact",
        empty_day_note=extra.pop("empty_day_note", False), set_up_by=None,
        created_at=created or datetime(2025, 1, 1, tzinfo=UTC), **extra,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fire_times(row: DigestChannel, start: datetime, count: int) -> list[datetime]:
    trigger, times, previous = post_trigger(row), [], None
    now = start
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, now)
        times.append(previous)
        now = previous + timedelta(seconds=1)
    return times


def test_posts_at_local_time_across_a_dst_change() -> None:
    # Europe/Berlin leaves CET (UTC+1) for CEST (UTC+2) at 02:00 on 2025-03-30.
    times = fire_times(channel(), utc(2025, 3, 28, 12), 4)
    assert [t.astimezone(UTC).hour for t in times] == [8, 7, 7, 7]
    assert all(t.hour == 9 and t.tzinfo.key == "Europe/Berlin" for t in times)
    assert [t.date() for t in times] == [date(2025, 3, 29), date(2025, 3, 30), date(2025, 3, 31), date(2025, 4, 1)]


def test_no_drift_over_a_year() -> None:
    times = fire_times(channel("America/New_York", time(18, 30)), utc(2025, 1, 1), 365)
    assert all((t.hour, t.minute) == (18, 30) for t in times)
    assert len({t.date() for t in times}) == 365


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        ("Europe/Berlin", utc(2025, 3, 18, 7, 59), date(2025, 3, 17)),  # 08:59 local: not yet
        ("Europe/Berlin", utc(2025, 3, 18, 8, 0), date(2025, 3, 18)),  # 09:00 local: due
        ("America/New_York", utc(2025, 3, 18, 8, 0), date(2025, 3, 17)),  # 04:00 local
        ("Asia/Tokyo", utc(2025, 3, 18, 0, 0), date(2025, 3, 18)),  # 09:00 local
    ],
)
def test_last_due_day_follows_the_channel_zone(zone: str, now: datetime, expected: date) -> None:
    assert last_due_day(channel(zone), now) == expected


async def test_due_days_start_on_the_setup_day(library) -> None:
    row = channel(created=utc(2025, 3, 18, 5))
    await channels.save_channel(library, row)
    assert await due_days(library, row, utc(2025, 3, 18, 9), catch_up_days=30) == [(date(2025, 3, 18), False)]


async def test_catch_up_is_oldest_first_late_and_bounded(library) -> None:
    row = channel(created=utc(2025, 3, 1))
    await channels.save_channel(library, row)
    owed = await due_days(library, row, utc(2025, 3, 18, 9), catch_up_days=3)
    assert [d for d, _ in owed] == sorted(d for d, _ in owed)
    assert owed[-1] == (date(2025, 3, 18), False)
    assert all(late for _, late in owed[:-1]) and owed[:-1]
    assert owed[0][0] >= date(2025, 3, 15)


async def test_delivered_and_skipped_days_are_not_owed_again(library) -> None:
    row = channel(created=utc(2025, 3, 1))
    await channels.save_channel(library, row)
    owed = await due_days(library, row, utc(2025, 3, 18, 9), catch_up_days=3)
    await outbox.skip(library, "digest", row.channel_id, owed[0][0], "no papers")
    assert owed[0] not in await due_days(library, row, utc(2025, 3, 18, 9), catch_up_days=3)


async def test_a_day_without_a_digest_is_owed_only_as_an_opted_in_note_once_the_fetch_gave_up(library) -> None:
    from storage import fetches

    weekend = date(2025, 3, 22)  # a Saturday: no producer publishes
    quiet, noted = channel(created=utc(2025, 3, 20)), channel(channel_id=2, created=utc(2025, 3, 20), empty_day_note=True)
    for row in (quiet, noted):
        await channels.save_channel(library, row)
    saturday_morning = utc(2025, 3, 22, 9)

    assert weekend not in [d for d, _ in await due_days(library, noted, saturday_morning, catch_up_days=3)]
    await fetches.record_attempt(library, "timlrx", weekend, "markdown", "waiting", "not published yet")
    assert weekend not in [d for d, _ in await due_days(library, noted, saturday_morning, catch_up_days=3)]

    await fetches.record_attempt(library, "timlrx", weekend, "markdown", "missing", "no digest for 2025-03-22")
    assert (weekend, False) in await due_days(library, noted, saturday_morning, catch_up_days=3)
    assert weekend not in [d for d, _ in await due_days(library, quiet, saturday_morning, catch_up_days=3)]


async def test_a_planned_but_unfinished_day_is_owed_again_even_without_a_digest(library) -> None:
    """An empty-day note that hit a 503 is retried by the next run, not only after a restart."""
    weekend = date(2025, 3, 22)
    row = channel(created=utc(2025, 3, 20), empty_day_note=True)
    await channels.save_channel(library, row)
    note = {"content": "No digest today.", "embeds": []}
    await outbox.plan(library, "digest", row.channel_id, weekend, [(note, False)], late=False)

    assert (weekend, False) in await due_days(library, row, utc(2025, 3, 22, 9), catch_up_days=3)
    assert (weekend, True) in await due_days(library, row, utc(2025, 3, 23, 9), catch_up_days=3)
    assert weekend not in [d for d, _ in await due_days(library, row, utc(2025, 3, 29, 9), catch_up_days=3)]


def test_the_opened_fetch_days_reach_back_over_the_catch_up_window() -> None:
    fetch = FetchSettings(start_time=time(6, 0), timezone="Europe/Berlin")
    assert opened_fetch_days(utc(2025, 3, 18, 4, 30), fetch, 0) == [date(2025, 3, 17)]  # 05:30 in Berlin
    assert opened_fetch_days(utc(2025, 3, 18, 5, 30), fetch, 2) == [date(2025, 3, 16), date(2025, 3, 17),
                                                                    date(2025, 3, 18)]


async def _fetch_status(world: World, source: str, day: date) -> str | None:
    for _ in range(200):  # the fetch runs as a scheduler job; give it up to 10 s
        record = await fetches.get_fetch(world.bot.db, source, day, "folder")
        if record is not None and record.status != "waiting":
            return record.status
        await asyncio.sleep(0.05)
    return None


async def test_a_fetch_cut_short_by_a_restart_is_fetched_again_on_start(world: World, tmp_path: Path) -> None:
    day = date(2025, 2, 21)
    month = tmp_path / "clone" / "archive" / "2025" / "02"
    month.mkdir(parents=True)
    shutil.copyfile(CORPUS / "timlrx" / "archive" / "2025" / "02" / "21.md", month / "21.md")
    world.bot.settings.sources = [SourceSettings(name="local", folder=tmp_path / "clone")]
    world.bot.settings.delivery.catch_up_days = 1
    # The bot was killed while the day's fetch was waiting: the log's last word is "waiting".
    await fetches.record_attempt(world.bot.db, "local", day, "folder", "waiting", "not published yet")
    now = utc(2025, 2, 21, 12)

    await world.bot.daily.resume_fetches(now)

    assert await _fetch_status(world, "local", day) == "ingested"
    assert await _fetch_status(world, "local", day - timedelta(days=1)) == "missing"  # down that day too: told why


async def test_settled_fetch_days_are_not_fetched_again(world: World, tmp_path: Path) -> None:
    day = date(2025, 2, 21)
    world.bot.settings.sources = [SourceSettings(name="local", folder=tmp_path)]
    world.bot.settings.delivery.catch_up_days = 0
    await fetches.record_attempt(world.bot.db, "local", day, "folder", "missing", "no digest for 2025-02-21")

    await world.bot.daily.resume_fetches(utc(2025, 2, 21, 12))

    assert [job.id for job in world.bot.daily.scheduler.get_jobs() if job.id.startswith("fetch:")] == []


class FetchCounter:
    """Stands in for `fetcher.fetch_all`: counts the days fetched (the network is not the point here)."""

    def __init__(self) -> None:
        self.days: list[date] = []

    async def __call__(self, conn, session, sources, day, settings, **options) -> list:
        self.days.append(day)
        return []


async def test_a_day_another_process_fetched_is_only_posted(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processes of a cluster share one library: the claim's holder fetches, the others wait,
    then find the day settled and post it without fetching again."""
    day = date(2025, 2, 21)
    world.bot.settings.sources = [SourceSettings(name="local", folder=tmp_path)]
    fetch_all = FetchCounter()
    monkeypatch.setattr(fetcher, "fetch_all", fetch_all)
    posted = asyncio.Event()
    monkeypatch.setattr(world.bot.daily, "post_due", lambda now=None: posted.set() or asyncio.sleep(0))

    async with world.bot.db.hold("fetch", day.toordinal()) as held:  # the holder: another process
        assert held
        waiting = asyncio.create_task(world.bot.daily.fetch_and_post(day=day))
        # The holder stored the day's digest (the library has it) and waits for a late twin: post meanwhile.
        await asyncio.wait_for(posted.wait(), 10)
        assert not waiting.done() and fetch_all.days == []  # waits for the holder
        await fetches.record_attempt(world.bot.db, "local", day, "folder", "ingested", "18 papers")
        posted.clear()
    await waiting

    assert fetch_all.days == [] and posted.is_set()
    await world.bot.daily.fetch_and_post(day=day + timedelta(days=1))  # not settled: fetched, by whoever holds it
    assert fetch_all.days == [day + timedelta(days=1)]
