"""Direct-message delivery of personal subscriptions, exactly once, driven by the DM ledger.

Mirrors `bot.posting.daily` for channels: `storage.subscriptions` plans what a user gets for a day
(once, in SQLite, with a nonce per message); this module sends the planned messages that have no
message id yet, in order, each with its nonce, and records every accepted message before sending
the next. A crash resumes at the first message Discord did not accept; a message Discord accepted
but the ledger missed is dropped by Discord as a duplicate of its nonce.

Discord refusing the DM (403, e.g. 50007 "Cannot send messages to this user") marks the user: no
more DMs (the day is skipped) until they next use a subscription command, which tells them how to
open their DMs and clears the mark. 5xx and network errors leave the delivery pending for the
next run. A user none of whose subscription servers the bot is still in gets nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import discord

from bot import render
from bot.posting.daily import TRANSIENT_ERRORS, describe_error
from storage import papers as library
from storage import subscriptions as subs
from storage.subscriptions import DmDelivery, Subscriber

log = logging.getLogger(__name__)

__all__ = ["DmOutcome", "SubscriptionPoster"]

#: Discord's JSON error code for "Cannot send messages to this user".
CANNOT_DM = 50007

DmStatus = Literal["delivered", "already_done", "no_matches", "not_reachable", "dm_closed", "retry_later", "failed"]


@dataclass(frozen=True)
class DmOutcome:
    user_id: int
    day: dt.date
    status: DmStatus
    sent: int = 0
    detail: str | None = None


class _DmRefused(Exception):
    def __init__(self, error: discord.HTTPException) -> None:
        super().__init__(str(error))
        self.error = error


class SubscriptionPoster:
    """Delivers subscription DMs for one bot (a `discord.Client` with `.db`). One per bot.

    Deliveries of one user are serialised, so a scheduled run and a resume cannot interleave.
    """

    def __init__(self, bot: discord.Client) -> None:
        self.bot = bot
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def db(self):
        return self.bot.db

    def shares_a_server(self, subscriber: Subscriber) -> bool:
        """True while the bot is still in a server one of the user's subscriptions was made in."""
        return any(self.bot.get_guild(guild_id) is not None for guild_id in subscriber.guild_ids)

    # -- entry points ---------------------------------------------------------------------------

    async def deliver_day(self, day: dt.date, *, only: set[int] | None = None) -> list[DmOutcome]:
        """Give every eligible subscriber (of `only`, if given) their DM for `day`: planned once, resumed if pending."""
        outcomes: list[DmOutcome] = []
        for delivery in await subs.unfinished_dm_deliveries(self.db):
            if delivery.day == day and (only is None or delivery.user_id in only):
                outcomes.append(await self._logged(delivery.user_id, day))
        done = await subs.handled_users(self.db, day)
        eligible = [s.user_id for s in await subs.subscribers_to_deliver(self.db)
                    if s.user_id not in done and (only is None or s.user_id in only)]
        if not eligible:
            return outcomes
        matches = await subs.matches_on_day(self.db, day, eligible)
        for user_id in eligible:
            outcomes.append(await self._logged(user_id, day, matches.get(user_id, [])))
        return outcomes

    async def deliver_latest(self, now: dt.datetime | None, catch_up_days: int) -> list[DmOutcome]:
        """The latest digest day within the catch-up window (UTC days) of `now`, for every subscriber.

        A subscriber whose DMs stopped at an older day of the window (the bot restarted after the
        next day's digest arrived but before their DM was planned) first gets the days in between,
        oldest first, so no day is skipped after one they got. A new subscriber starts with the
        latest day.
        """
        try:
            today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
            days = await library.digest_days(self.db, since=today - dt.timedelta(days=catch_up_days), until=today)
            if not days:
                return []
            outcomes: list[DmOutcome] = []
            last_days = await subs.last_handled_days(self.db)
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
        return [await self._logged(d.user_id, d.day) for d in await subs.unfinished_dm_deliveries(self.db)]

    async def deliver(self, user_id: int, day: dt.date, matches: list[subs.DayMatch] | None = None) -> DmOutcome:
        """The user's DM for `day` unless the ledger says it was handled. `matches` None: computed here."""
        async with self._user_locks[user_id]:
            delivery = await subs.get_dm_delivery(self.db, user_id, day)
            if delivery is not None and delivery.status != "pending":
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
                if matches is None:
                    matches = (await subs.matches_on_day(self.db, day, [user_id])).get(user_id, [])
                if not matches:
                    await subs.skip_dm_day(self.db, user_id, day, "no matches")
                    return DmOutcome(user_id, day, "no_matches")
                payloads = render.subscription_digest_messages(day, [(m.paper, m.matched) for m in matches])
                delivery = await subs.plan_dm_delivery(
                    self.db, user_id, day, [render.payload_to_dict(p) for p in payloads]
                )
            return await self._send(delivery)

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, delivery: DmDelivery) -> DmOutcome:
        user_id, day = delivery.user_id, delivery.day
        sent = 0
        try:
            channel = await self.bot.create_dm(discord.Object(id=user_id))
            for planned in delivery.messages:
                if planned.message_id is not None:
                    continue
                payload = render.payload_from_dict(planned.payload)
                try:
                    message = await channel.send(**payload.as_kwargs(), nonce=planned.nonce)
                except (discord.Forbidden, discord.NotFound) as error:
                    raise _DmRefused(error) from error
                await subs.mark_dm_sent(self.db, delivery.id, planned.position, message.id)
                sent += 1
        except _DmRefused as refused:
            detail = describe_error(refused.error)
            log.info("user %s does not accept DMs (%s); subscription DMs stop until they return", user_id, detail)
            await subs.mark_dm_closed(self.db, user_id)
            await subs.skip_dm_day(self.db, user_id, day, "direct messages closed")
            return DmOutcome(user_id, day, "dm_closed", sent, detail)
        except TRANSIENT_ERRORS as error:
            problem = describe_error(error)
            log.warning("subscription DM for %s to user %s will be retried: %s", day, user_id, problem)
            return DmOutcome(user_id, day, "retry_later", sent, problem)
        await subs.finish_dm_delivery(self.db, delivery.id)
        return DmOutcome(user_id, day, "delivered", sent)

    async def _logged(self, user_id: int, day: dt.date, matches: list[subs.DayMatch] | None = None) -> DmOutcome:
        try:
            return await self.deliver(user_id, day, matches)
        except Exception as error:  # one user's failure must not stop the others; it resumes later
            log.exception("subscription DM for %s to user %s failed", day, user_id)
            return DmOutcome(user_id, day, "failed", detail=describe_error(error))
