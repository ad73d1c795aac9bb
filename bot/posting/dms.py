"""Subscriber DMs: how a member's daily DM renders and where it goes.

`storage.outbox` (kind 'dm') plans what a user gets for a day, once; the shared `Poster` sends
it exactly once (nonce, invisible marker, immediate retries of an ambiguous answer, a look at the
DM channel before sending again) and sorts failures once:
- *refused* (403/404, e.g. 50007 "Cannot send messages to this user"): the user is marked, no more
  DMs (the day is skipped) until they next use a subscription command, which tells them how to
  open their DMs and clears the mark;
- *rejected* (any other 4xx): the day is skipped with the reason, never retried;
- *ambiguous* (5xx, network): left planned for the next run.

DMs go only to members still in a server where they subscribed (issue #12): a member found in
none of them is paused (`/subscriptions list` says why) until they are back in one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import discord

from collections.abc import Awaitable, Callable

from bot import render
from bot.posting.poster import CLAIMED_ELSEWHERE, NETWORK_ERRORS, Ambiguous, Poster, Refused, Rejected, describe_error
from storage import outbox
from storage import papers as library
from storage import subscriptions as subs
from storage.outbox import Item
from storage.subscriptions import Subscriber

log = logging.getLogger(__name__)

__all__ = ["DmOutcome", "SubscriptionPoster"]

#: Discord's JSON error code for "Cannot send messages to this user".
CANNOT_DM = 50007

DmStatus = Literal[
    "delivered", "already_done", "no_matches", "not_reachable", "dm_closed", "rejected", "retry_later", "failed"
]
DayReady = Callable[[dt.date], Awaitable[bool]]


@dataclass(frozen=True)
class DmOutcome:
    user_id: int
    day: dt.date
    status: DmStatus
    sent: int = 0
    detail: str | None = None


class SubscriptionPoster:
    """Delivers subscription DMs for one bot (a `discord.Client` with `.db`). One per bot.

    Deliveries of one user are serialised, so a scheduled run and a resume cannot interleave.
    """

    def __init__(
        self, bot: discord.Client, *, poster: Poster | None = None,
        max_papers: int = render.DEFAULT_MAX_PAPERS_PER_POST, owns_guild=lambda guild_id: True,
    ) -> None:
        self.bot = bot
        self.max_papers = max_papers  # `[delivery] max_papers_per_post`: a huge day is sent capped
        self.poster = poster or Poster(bot)
        self.owns_guild = owns_guild  # servers on this process's shards: the only ones it can see
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def db(self):
        return self.bot.db

    def shares_a_server(self, subscriber: Subscriber) -> bool:
        """True while the bot is still in a server, on this process's shards, one of the user's
        subscriptions was made in (a process sends DMs only to subscribers of servers it sees)."""
        return any(self.bot.get_guild(guild_id) is not None for guild_id in subscriber.guild_ids)

    def sees_every_server(self, subscriber: Subscriber) -> bool:
        """Whether all the user's subscription servers are on this process's shards (always, unsharded)."""
        return all(self.owns_guild(guild_id) for guild_id in subscriber.guild_ids)

    async def still_a_member(self, subscriber: Subscriber) -> bool:
        """True while the user is a member of a server (the bot is in) where they subscribed.

        Asked of Discord (the bot has no member cache); an unclear answer counts as a member,
        so a Discord hiccup never pauses anyone. So does a server on another process's shards,
        which this process cannot see: only the servers it sees can say "left".
        """
        if not self.sees_every_server(subscriber):
            return True
        for guild_id in subscriber.guild_ids:
            guild = self.bot.get_guild(guild_id)
            if guild is None:
                continue
            if guild.get_member(subscriber.user_id) is not None:
                return True
            try:
                await self.poster.pacer.wait()
                await guild.fetch_member(subscriber.user_id)
                return True
            except discord.NotFound:
                continue
            except (discord.HTTPException, *NETWORK_ERRORS):
                return True
        return False

    # -- entry points ---------------------------------------------------------------------------

    async def deliver_day(self, day: dt.date, *, only: set[int] | None = None) -> list[DmOutcome]:
        """Give every eligible subscriber (of `only`, if given) their DM for `day`: planned once, resumed if pending."""
        outcomes: list[DmOutcome] = []
        for delivery in await outbox.unfinished(self.db, "dm"):
            if delivery.day == day and (only is None or delivery.target_id in only):
                outcomes.append(await self._logged(delivery.target_id, day))
        done = await outbox.handled_targets(self.db, "dm", day)
        eligible = [s.user_id for s in await subs.subscribers_to_deliver(self.db)
                    if s.user_id not in done and (only is None or s.user_id in only)]
        if not eligible:
            return outcomes
        for user_id in eligible:  # matched under each user's lock: never against an older view of the day
            outcomes.append(await self._logged(user_id, day))
        return outcomes

    async def deliver_latest(
        self, now: dt.datetime | None, catch_up_days: int, *, day_ready: DayReady | None = None
    ) -> list[DmOutcome]:
        """The latest digest day within the catch-up window (UTC days) of `now`, for every subscriber.

        A subscriber whose DMs stopped at an older day of the window (the bot restarted after the
        next day's digest arrived but before their DM was planned) first gets the days in between,
        oldest first, so no day is skipped after one they got. A new subscriber starts with the
        latest day. `day_ready(day)`: False while the day's files are still being fetched (a DM
        matched against half a day would be final and miss papers): then that day and later
        ones wait for the next run, which the fetch triggers when it is done.
        """
        try:
            today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
            days = await library.digest_days(self.db, since=today - dt.timedelta(days=catch_up_days), until=today)
            if day_ready is not None:
                for index, day in enumerate(days):
                    if not await day_ready(day):
                        days = days[:index]
                        break
            # DMs an earlier run left planned (a server error) go first, whatever their day: the
            # passes below only look at the latest days, so they would otherwise wait for a restart.
            outcomes: list[DmOutcome] = await self.resume_unfinished()
            if not days:
                return outcomes
            last_days = await outbox.last_periods(self.db, "dm")
            for day in days[:-1]:
                behind = {user_id for user_id, last in last_days.items() if last < day}
                if behind:
                    outcomes += await self.deliver_day(day, only=behind)
            return outcomes + await self.deliver_day(days[-1])
        except Exception:  # never let subscriptions break the channels' schedule; retried next run
            log.exception("subscription DMs failed")
            return []

    async def resume_unfinished(self) -> list[DmOutcome]:
        """Finish every DM delivery a crash or an error left pending (call once the bot is ready)."""
        return [await self._logged(d.target_id, d.day) for d in await outbox.unfinished(self.db, "dm")]

    async def deliver(self, user_id: int, day: dt.date, matches: list[subs.DayMatch] | None = None) -> DmOutcome:
        """The user's DM for `day` unless the ledger says it was handled. `matches` None: computed here."""
        async with self._user_locks[user_id]:
            delivery = await outbox.get(self.db, "dm", user_id, day)
            if delivery is not None and delivery.finished:
                return DmOutcome(user_id, day, "already_done", detail=delivery.reason)
            subscriber = await subs.get_subscriber(self.db, user_id)
            if subscriber is None:
                return DmOutcome(user_id, day, "not_reachable", detail="no subscriptions")
            if subscriber.dm_closed:
                return DmOutcome(user_id, day, "dm_closed")
            if not self.shares_a_server(subscriber):
                return DmOutcome(user_id, day, "not_reachable", detail="no shared server")
            if delivery is None:
                if subscriber.paused:
                    return DmOutcome(user_id, day, "not_reachable", detail="paused")
                member = await self.still_a_member(subscriber)
                if await subs.mark_left_servers(self.db, user_id, not member) and not member:
                    log.info("user %s left every server of their subscriptions; their DMs pause", user_id)
                if not member:
                    return DmOutcome(user_id, day, "not_reachable", detail="left every server")
                if matches is None:
                    matches = (await subs.matches_on_day(self.db, day, [user_id])).get(user_id, [])
                if not matches:
                    await outbox.skip(self.db, "dm", user_id, day, "no matches")
                    return DmOutcome(user_id, day, "no_matches")
                planned = await asyncio.to_thread(_render_dm, day, matches, self.max_papers)
                delivery = await outbox.plan(self.db, "dm", user_id, day, planned)
            async with self.poster.claim(delivery) as claimed:
                if claimed is None:
                    return DmOutcome(user_id, day, "retry_later", detail=CLAIMED_ELSEWHERE)
                if claimed.finished:
                    return DmOutcome(user_id, day, "already_done", detail=claimed.reason)
                return await self._send(claimed)

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, delivery: Item) -> DmOutcome:
        user_id, day = delivery.target_id, delivery.day
        sent = 0
        try:
            try:
                channel = await self.bot.create_dm(discord.Object(id=user_id))
            except (discord.HTTPException, *NETWORK_ERRORS) as error:
                raise (Refused if isinstance(error, discord.HTTPException) and 400 <= error.status < 500
                       else Ambiguous)(error) from error
            for planned in delivery.messages:
                if await self.poster.send(delivery, planned, channel) is not None:
                    sent += 1
        except Refused as refused:
            detail = describe_error(refused.error)
            log.info("user %s does not accept DMs (%s); subscription DMs stop until they return", user_id, detail)
            await subs.mark_dm_closed(self.db, user_id)
            await outbox.skip(self.db, "dm", user_id, day, "direct messages closed")
            return DmOutcome(user_id, day, "dm_closed", sent, detail)
        except Rejected as rejected:  # the same DM would be refused again: skip the day, never retry
            log.error("Discord rejected the DM for %s to user %s: %s", day, user_id, rejected)
            await outbox.skip(self.db, "dm", user_id, day, f"Discord rejected it: {rejected}")
            return DmOutcome(user_id, day, "rejected", sent, str(rejected))
        except Ambiguous as ambiguous:
            log.warning("subscription DM for %s to user %s will be retried: %s", day, user_id, ambiguous)
            return DmOutcome(user_id, day, "retry_later", sent, str(ambiguous))
        await outbox.finish(self.db, delivery.id)
        return DmOutcome(user_id, day, "delivered", sent)

    async def _logged(self, user_id: int, day: dt.date, matches: list[subs.DayMatch] | None = None) -> DmOutcome:
        try:
            return await self.deliver(user_id, day, matches)
        except Exception as error:  # one user's failure must not stop the others; it resumes later
            log.exception("subscription DM for %s to user %s failed", day, user_id)
            return DmOutcome(user_id, day, "failed", detail=describe_error(error))


def _render_dm(day: dt.date, matches: list[subs.DayMatch], max_papers: int) -> list[tuple[dict, bool]]:
    """The DM's planned messages (pure: run in a worker thread)."""
    payloads = render.subscription_digest_messages(day, [(m.paper, m.matched) for m in matches], max_papers=max_papers)
    return [(render.payload_to_dict(p), False) for p in payloads]
