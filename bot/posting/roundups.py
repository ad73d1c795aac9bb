"""Each channel's weekly roundup: how it renders and where it goes.

The roundup is one planned message in `storage.outbox` (kind 'roundup', period = the roundup's
own local day), sent by the shared `Poster` (nonce, marker, immediate retries, look before
sending again), so each week is posted once. *When* a roundup is due is the scheduler's business
(`bot.scheduler.last_roundup_day`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from typing import Literal

import discord

from bot import render
from bot.posting.poster import Ambiguous, Poster, Refused, Rejected
from storage import outbox, votes
from storage.channels import DigestChannel

log = logging.getLogger(__name__)

__all__ = ["ROUNDUP_PAPERS", "RoundupPoster", "RoundupStatus", "week_start"]

ROUNDUP_PAPERS = 10  # top papers shown in a roundup
RoundupStatus = Literal["posted", "already_done", "refused", "retry_later"]


def week_start(week_end: dt.date) -> dt.date:
    """A roundup covers the seven days ending on its own day."""
    return week_end - dt.timedelta(days=6)


class RoundupPoster:
    """Posts roundups for one bot (a `discord.Client` with `.db`); one channel's posts never interleave."""

    def __init__(self, bot: discord.Client, *, poster: Poster | None = None) -> None:
        self.bot = bot
        self.poster = poster or Poster(bot)
        self._channel_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def db(self):
        return self.bot.db

    async def post(self, channel: DigestChannel, week_end: dt.date) -> RoundupStatus:
        """The channel's roundup of the week ending `week_end`, unless the ledger says it was handled."""
        async with self._channel_locks[channel.channel_id]:
            roundup = await outbox.get(self.db, "roundup", channel.channel_id, week_end)
            if roundup is None:
                if week_end in await outbox.history(self.db, "roundup", channel.channel_id, since=week_end):
                    return "already_done"  # posted before the channel was removed and set up again
                payload = await self.render(channel, week_end)
                roundup = await outbox.plan(
                    self.db, "roundup", channel.channel_id, week_end, [(render.payload_to_dict(payload), False)]
                )
            if roundup.finished:
                return "already_done"
            async with self.poster.claim(roundup) as claimed:
                if claimed is None:
                    return "retry_later"  # another process is sending it
                if claimed.finished:
                    return "already_done"
                return await self._send(channel, claimed)

    async def _send(self, channel: DigestChannel, roundup: outbox.Item) -> RoundupStatus:
        """Send the claimed roundup's message (unless sent) and finish it; failures sorted once."""
        week_end = roundup.period
        target = self.bot.get_partial_messageable(channel.channel_id, guild_id=channel.guild_id)
        try:
            await self.poster.send(roundup, roundup.messages[0], target)
        except Rejected as rejected:  # the same message would be refused again
            log.error("Discord rejected the roundup for %s in channel %s: %s", week_end, channel.channel_id, rejected)
            await outbox.skip(self.db, "roundup", channel.channel_id, week_end, f"Discord rejected it: {rejected}")
            return "refused"
        except Ambiguous as ambiguous:
            log.warning("roundup for %s in channel %s will be retried: %s", week_end, channel.channel_id, ambiguous)
            return "retry_later"
        except Refused as refused:  # the daily digest reports a lost channel; the roundup waits
            log.warning("roundup for %s in channel %s refused: %s", week_end, channel.channel_id, refused)
            return "refused"
        await outbox.finish(self.db, roundup.id)
        return "posted"

    async def render(self, channel: DigestChannel, week_end: dt.date) -> render.MessagePayload:
        """The week's top papers (votes, then newest) and busiest tags, within the channel's tags if it has any."""
        start, tags = week_start(week_end), channel.tags or None
        ranked = await votes.ranked_papers(
            self.db, guild_id=channel.guild_id, since=start, until=week_end, tags=tags, voted_only=False,
            limit=ROUNDUP_PAPERS,
        )
        busiest = await votes.busiest_tags(self.db, start, week_end, tags=tags)
        return render.roundup_message(start, week_end, ranked.papers, ranked.total, busiest)
