"""Posting each channel's weekly roundup exactly once per week, driven by the roundup ledger.

The roundup is rendered and stored (`storage.roundups`) before it is sent; a restart sends the
stored message, with its stored nonce, so Discord drops a repeat of a send it had accepted; and
the message id is recorded as soon as Discord accepts it. *When* a roundup is due is the
scheduler's business (`bot.scheduler.last_roundup_day`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from typing import Literal

import discord

from bot import render
from bot.posting.daily import TRANSIENT_ERRORS, rejects_the_message
from storage import roundups, votes
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

    def __init__(self, bot: discord.Client) -> None:
        self.bot = bot
        self._channel_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def db(self):
        return self.bot.db

    async def post(self, channel: DigestChannel, week_end: dt.date) -> RoundupStatus:
        """The channel's roundup of the week ending `week_end`, unless the ledger says it was posted."""
        async with self._channel_locks[channel.channel_id]:
            roundup = await roundups.get_roundup(self.db, channel.channel_id, week_end)
            if roundup is None:
                payload = await self.render(channel, week_end)
                roundup = await roundups.plan_roundup(
                    self.db, channel.channel_id, week_end, render.payload_to_dict(payload)
                )
            if roundup.done:
                return "already_done"
            target = self.bot.get_partial_messageable(channel.channel_id, guild_id=channel.guild_id)
            try:
                payload = render.payload_from_dict(roundup.payload)
                message = await target.send(**payload.as_kwargs(), nonce=roundup.nonce)
            except discord.HTTPException as error:
                if rejects_the_message(error):  # the same message would be refused again
                    log.error("Discord rejected the roundup for %s in channel %s: %s",
                              week_end, channel.channel_id, error)
                    await roundups.skip_roundup(self.db, roundup.id, f"Discord rejected it: {error}")
                    return "refused"
                if error.status >= 500:
                    log.warning("roundup for %s in channel %s will be retried: %s", week_end, channel.channel_id, error)
                    return "retry_later"
                # A lost channel is reported to the server by the daily digest; the roundup only waits.
                log.warning("roundup for %s in channel %s refused: %s", week_end, channel.channel_id, error)
                return "refused"
            except TRANSIENT_ERRORS as error:
                log.warning("roundup for %s in channel %s will be retried: %s", week_end, channel.channel_id, error)
                return "retry_later"
            await roundups.mark_roundup_sent(self.db, roundup.id, message.id)
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
