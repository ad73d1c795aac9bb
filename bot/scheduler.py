"""When things happen: one APScheduler job per digest channel, at its local time, one per weekly
roundup, at its local weekday and time, and the fetch job.

The jobs only decide *when*; what is due is computed from the ledger by
`due_days`, a pure function of the clock, so a restart, a missed run or a late
digest all end in the same place: every due day posted once, oldest first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.posting.daily import DigestPoster
from bot.posting.dms import SubscriptionPoster
from bot.posting.roundups import RoundupPoster
from digests import fetcher
from digests.fetcher import Clock, source_kinds, utc_now
from bot.shards import ShardSet
from settings import FetchSettings, Settings
from storage import channels, fetches, outbox, papers
from storage.channels import DigestChannel

log = logging.getLogger(__name__)

FETCH_JOB = "fetch"
#: How often a process waiting for another's fetch of a day looks for the day's digest in the library.
WATCH_SECONDS = 30.0
MISFIRE_GRACE = timedelta(hours=1)  # a job missed by less than this (busy loop, short pause) still runs
#: A day posted later than this after its post time (the bot was down, or the digest came late)
#: says so in its header: members expect the digest at the channel's time.
LATE_AFTER = MISFIRE_GRACE


def job_id(channel_id: int) -> str:
    return f"digest:{channel_id}"


def roundup_job_id(channel_id: int) -> str:
    return f"roundup:{channel_id}"


def roundup_trigger(channel: DigestChannel) -> CronTrigger:
    """Every week on the roundup's weekday (0 = Monday), at its wall-clock time in the channel's zone."""
    assert channel.roundup_weekday is not None and channel.roundup_time is not None
    return CronTrigger(
        day_of_week=channel.roundup_weekday, hour=channel.roundup_time.hour, minute=channel.roundup_time.minute,
        timezone=ZoneInfo(channel.timezone),
    )


def last_roundup_day(channel: DigestChannel, now: datetime) -> date | None:
    """The local day of the channel's latest roundup time at or before `now`: the one roundup still owed.

    None when the channel has no roundup, or that time passed before the roundup was turned on.
    Only this one is ever owed, so a bot that was down catches up on the last week only.
    """
    if channel.roundup_weekday is None or channel.roundup_time is None:
        return None
    zone = ZoneInfo(channel.timezone)
    local = now.astimezone(zone)
    day = local.date() - timedelta(days=(local.weekday() - channel.roundup_weekday) % 7)
    if day == local.date() and local.time() < channel.roundup_time:
        day -= timedelta(days=7)
    moment = datetime.combine(day, channel.roundup_time, tzinfo=zone)
    if channel.roundup_since is not None and moment < channel.roundup_since:
        return None
    return day


def post_trigger(channel: DigestChannel) -> CronTrigger:
    """Every day at the channel's wall-clock time in its zone, DST changes included."""
    return CronTrigger(
        hour=channel.post_time.hour, minute=channel.post_time.minute, timezone=ZoneInfo(channel.timezone)
    )


def last_due_day(channel: DigestChannel, now: datetime) -> date:
    """The newest day whose post time has passed in the channel's zone."""
    local = now.astimezone(ZoneInfo(channel.timezone))
    return local.date() if local.time() >= channel.post_time else local.date() - timedelta(days=1)


def first_day_for(channel: DigestChannel, last_due: date, catch_up_days: int) -> date:
    """A channel gets digests from the day it was set up, and never more than the catch-up window back."""
    set_up_on = channel.created_at.astimezone(ZoneInfo(channel.timezone)).date()
    return max(set_up_on, last_due - timedelta(days=catch_up_days))


def post_moment(channel: DigestChannel, day: date) -> datetime:
    """When `day`'s digest is due in the channel: its post time, that day, in its zone."""
    return datetime.combine(day, channel.post_time, tzinfo=ZoneInfo(channel.timezone))


def is_late(channel: DigestChannel, day: date, now: datetime) -> bool:
    """Posted more than LATE_AFTER after its post time: every day the bot was down for, the newest too."""
    return now - post_moment(channel, day) > LATE_AFTER


async def due_days(conn, channel: DigestChannel, now: datetime, catch_up_days: int) -> list[tuple[date, bool]]:
    """(day, late) pairs still owed to `channel`, oldest first (see `is_late`).

    A day the channel id already got is never owed again, also after `/digest remove` and a new
    `/digest setup` (the ledger's channel history outlives the channel row).
    """
    last_due = last_due_day(channel, now)
    first = first_day_for(channel, last_due, catch_up_days)
    if first > last_due:
        return []
    done = await outbox.periods(conn, "digest", channel.channel_id, first, ("done", "skipped"))
    done |= await outbox.history(conn, "digest", channel.channel_id, since=first)
    owed = {d for d in await papers.digest_days(conn, since=first, until=last_due) if d not in done}
    # Planned but unfinished (a transient failure): an empty-day note is owed again even though
    # the day has no digest, and so is any day a crash interrupted.
    owed |= {d for d in await outbox.periods(conn, "digest", channel.channel_id, first, ("planned",)) if d <= last_due}
    if channel.empty_day_note and last_due not in done and last_due not in owed:
        if await fetches.day_is_missing(conn, last_due):
            owed.add(last_due)  # the "no digest today" note, once the fetch gave up
    return [(day, is_late(channel, day, now)) for day in sorted(owed)]


def opened_fetch_days(now: datetime, fetch: FetchSettings, catch_up_days: int) -> list[date]:
    """Days whose fetch has opened by `now` (in the fetch zone), oldest first, within the catch-up window."""
    local = now.astimezone(ZoneInfo(fetch.timezone))
    latest = local.date() if local.time() >= fetch.start_time else local.date() - timedelta(days=1)
    return [latest - timedelta(days=back) for back in range(catch_up_days, -1, -1)]


class DailyScheduler:
    """Owns the APScheduler instance; the bot creates one in setup_hook and shuts it down on close."""

    def __init__(
        self, conn, poster: DigestPoster, settings: Settings, clock: Clock = utc_now,
        dm: SubscriptionPoster | None = None, roundups: RoundupPoster | None = None,
    ) -> None:
        self.conn = conn
        self.poster = poster
        self.dm = dm  # personal subscription DMs, sent after the channels' posts
        self.roundups = roundups  # weekly roundups; None: not scheduled
        self.settings = settings
        self.clock = clock  # what "now" is; tests replace it to move through days and zones
        self.shards = ShardSet.from_settings(settings.discord)  # a cluster posts for its own servers only
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        # Jobs wait for this: set by `start` (the bot is connected); never cleared. Without
        # `prepare` (tests driving the jobs directly) there is nothing to wait for.
        self.ready = asyncio.Event()
        self.ready.set()

    async def prepare(self) -> None:
        """Start APScheduler and schedule every channel, before the bot connects.

        Commands may arrive as soon as the gateway connects, before `on_ready`: `/digest setup`
        and `/digest status` then find a running scheduler with real next run times. Jobs that
        fire early wait for `start` (guilds are known only once the bot is ready).
        """
        if self.scheduler.running:
            return
        self.ready.clear()
        self.scheduler.start()
        for channel in await self._own_channels():
            self.schedule(channel)

    async def start(self, now: datetime | None = None) -> None:
        """Schedule every channel and the fetch job (if `prepare` did not), then resume and catch up."""
        if not self.scheduler.running:
            self.scheduler.start()
            for channel in await self._own_channels():
                self.schedule(channel)
        self.ready.set()
        if any(s.markdown_url or s.json_url or s.folder for s in self.settings.sources):
            fetch = self.settings.fetch
            trigger = CronTrigger(
                hour=fetch.start_time.hour, minute=fetch.start_time.minute, timezone=ZoneInfo(fetch.timezone)
            )
            self.scheduler.add_job(
                self.fetch_and_post, trigger, id=FETCH_JOB, replace_existing=True, coalesce=True,
                misfire_grace_time=int(MISFIRE_GRACE.total_seconds()),
            )
            await self.resume_fetches(now or self.clock())
        await self.poster.resume_unfinished()
        if self.dm is not None:
            await self.dm.resume_unfinished()
        await self.post_due(now)

    async def _own_channels(self) -> list[DigestChannel]:
        """The digest channels of the servers on this process's shards (all of them, unsharded)."""
        return [c for c in await channels.list_channels(self.conn) if self.shards.owns_guild(c.guild_id)]

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def schedule(self, channel: DigestChannel) -> None:
        """(Re)schedule a channel (and its roundup) after its settings changed; replaces its old jobs."""
        self.scheduler.add_job(
            self.post_channel, post_trigger(channel), args=[channel.channel_id], id=job_id(channel.channel_id),
            replace_existing=True, coalesce=True, misfire_grace_time=int(MISFIRE_GRACE.total_seconds()),
        )
        if self.roundups is None or channel.roundup_weekday is None:
            self._remove(roundup_job_id(channel.channel_id))
            return
        self.scheduler.add_job(
            self.post_roundup, roundup_trigger(channel), args=[channel.channel_id],
            id=roundup_job_id(channel.channel_id), replace_existing=True, coalesce=True,
            misfire_grace_time=int(MISFIRE_GRACE.total_seconds()),
        )

    def unschedule(self, channel_id: int) -> None:
        self._remove(job_id(channel_id))
        self._remove(roundup_job_id(channel_id))

    def _remove(self, job: str) -> None:
        if self.scheduler.get_job(job):
            self.scheduler.remove_job(job)

    def next_post_time(self, channel_id: int) -> datetime | None:
        job = self.scheduler.get_job(job_id(channel_id))
        return job.next_run_time if job else None

    def next_roundup_time(self, channel_id: int) -> datetime | None:
        job = self.scheduler.get_job(roundup_job_id(channel_id))
        return job.next_run_time if job else None

    async def post_roundup(self, channel_id: int, now: datetime | None = None) -> None:
        """The channel's weekly roundup job: post the roundup owed, if any."""
        await self.ready.wait()
        channel = await channels.get_channel(self.conn, channel_id)
        if channel is None or channel.roundup_weekday is None:
            self._remove(roundup_job_id(channel_id))
            return
        week_end = last_roundup_day(channel, now or self.clock())
        if self.roundups is not None and week_end is not None and channel.broken_reason is None:
            await self.roundups.post(channel, week_end)

    async def post_roundups_due(self, now: datetime | None = None) -> None:
        """Every channel's owed roundup: on start (a roundup missed while down) and retries after a failure."""
        if self.roundups is None:
            return
        now = now or self.clock()
        for channel in await self._own_channels():
            week_end = last_roundup_day(channel, now)
            if week_end is not None and channel.broken_reason is None:
                await self.roundups.post(channel, week_end)

    async def post_channel(self, channel_id: int, now: datetime | None = None) -> None:
        """The channel's daily job: post whatever is due to it."""
        await self.ready.wait()
        channel = await channels.get_channel(self.conn, channel_id)
        if channel is None:
            self.unschedule(channel_id)
            return
        for day, late in await due_days(self.conn, channel, now or self.clock(), self.catch_up_days):
            await self.poster.deliver(channel, day, late=late)

    async def post_due(self, now: datetime | None = None) -> None:
        """Everything due to every channel (digests, then roundups): on start and after new digests arrive."""
        now = now or self.clock()
        work = []
        for channel in await self._own_channels():
            if channel.broken_reason is None:
                work += [(channel, day, late) for day, late in await due_days(self.conn, channel, now, self.catch_up_days)]
        work.sort(key=lambda item: item[1])  # oldest first, across channels
        if work:
            await self.poster.deliver_many(work, concurrency=self.settings.delivery.concurrency)
        if self.dm is not None:  # subscribers: the latest day, once, within the catch-up window
            await self.dm.deliver_latest(now, self.catch_up_days, day_ready=self.day_fetched)
        await self.post_roundups_due(now)

    async def resume_fetches(self, now: datetime) -> None:
        """Fetch again, in the background, every opened day some source has no final word on.

        A bot stopped (or killed) while a day's fetch was waiting, or down when it was due, would
        otherwise never fetch that day: nothing posted and nobody told why. Past its deadline a
        day gets one final attempt, which records the digest, or why there is none.
        """
        for day in opened_fetch_days(now, self.settings.fetch, self.catch_up_days):
            if not await fetcher.day_is_settled(self.conn, self.settings.sources, day):
                log.info("the fetch of %s did not finish; fetching it again", day)
                self.scheduler.add_job(self.fetch_and_post, kwargs={"day": day}, id=f"{FETCH_JOB}:{day}",
                                       replace_existing=True)

    async def day_fetched(self, day: date) -> bool:
        """False while some configured file of `day` is still being fetched (logged, not final yet).

        A day this bot never fetched (imported another way) counts as fetched. Subscriber DMs wait
        for this: a day matched while its JSON twin was still on the way missed papers for good.
        """
        records = [
            await fetches.get_fetch(self.conn, source.name, day, kind)
            for source in self.settings.sources for kind in source_kinds(source)
        ]
        if all(record is None for record in records):
            return True
        return all(record is not None and record.status != "waiting" for record in records)

    async def fetch_and_post(self, now: datetime | None = None, day: date | None = None) -> None:
        """The daily fetch: ingest the day's digests (retrying until the deadline), then post what is due.

        Exactly one process fetches a day: the one holding the library's claim on it. The others
        wait for the holder to finish (or die: PostgreSQL releases a dead process's claims), then
        find the day settled in the shared library and only post. On SQLite (one process) the
        claim is in-process: a second fetch job of the same day waits for the first.
        """
        await self.ready.wait()
        fetch = self.settings.fetch
        day = day or (now or self.clock()).astimezone(ZoneInfo(fetch.timezone)).date()
        async with self._fetch_claim(day):
            if await fetcher.day_is_settled(self.conn, self.settings.sources, day):
                log.info("the fetch of %s is settled already (another process fetched it); posting", day)
            else:
                async with aiohttp.ClientSession() as session:
                    await fetcher.fetch_all(
                        self.conn, session, self.settings.sources, day, fetch, now=self.clock,
                        on_ingested=self._on_ingested,
                    )
        await self.post_due()

    @asynccontextmanager
    async def _fetch_claim(self, day: date) -> AsyncIterator[None]:
        """Hold the library's claim on fetching `day`, waiting for another process that holds it.

        The holder may wait hours for a late file (a JSON twin) after storing the day's digest,
        so a waiting process posts the digest as soon as it is in the library.
        """
        async with self.conn.hold(FETCH_JOB, day.toordinal()) as held:
            if held:
                yield
                return
        watcher = asyncio.create_task(self._post_when_stored_elsewhere(day), name=f"paperbot-watch-{day}")
        try:
            async with self.conn.hold(FETCH_JOB, day.toordinal(), wait=True):
                watcher.cancel()
                yield
        finally:
            watcher.cancel()

    async def _post_when_stored_elsewhere(self, day: date) -> None:
        """While another process holds `day`'s fetch: post once its digest is in the shared library."""
        try:
            while not await papers.digest_days(self.conn, since=day, until=day):
                await asyncio.sleep(WATCH_SECONDS)
            log.info("digest for %s stored by another process; posting where it is due", day)
            await self.post_due()
        except Exception:  # the holder's finish posts it anyway
            log.exception("watching for the digest of %s failed", day)

    async def _on_ingested(self, day: date) -> None:
        log.info("digest for %s ingested; posting where it is due", day)
        await self.post_due()

    @property
    def catch_up_days(self) -> int:
        return self.settings.delivery.catch_up_days
