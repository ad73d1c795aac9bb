"""Each day's digest in the channels that asked for it: how it renders and where it goes.

`storage.outbox` (kind 'digest') decides *what* a channel gets for a day (planned once, replayed
on resume); `bot.posting.poster.Poster` sends each planned message exactly once. This module only
renders the day (in a worker thread: a large day must not stall the event loop) and says where
each message goes: the channel, the thread started from the header ('thread' style), or a forum
post. An empty-day note is a one-message digest.

A forum channel gets one post per day: the post (a thread) is created with the header as its
first message and the day's matching forum tags, then each paper is a message in it. Creating a
forum post takes no nonce, so the ledger notes the request before it is made and records the
post's thread and first message right after; a resume after a lost answer looks the post up among
the forum's active and archived posts (named for the day, started by Paperbot) before creating one.

Failures are sorted once, by the poster: *refused* (403/404) marks the channel broken and the
server is told once; *rejected* (any other 4xx) skips the day with the reason; *ambiguous* (5xx,
network, timeouts) leaves the delivery planned for the next run, which looks before it sends. Per-channel rate
limits are discord.py's business (it follows the bucket headers); the global one is paced by the
poster's pacer, see `bot.posting.pacing`.
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
from bot.posting.poster import (
    CLAIMED_ELSEWHERE,
    DEFAULT_REQUESTS_PER_SECOND,
    Ambiguous,
    Failure,
    NETWORK_ERRORS,
    Poster,
    Refused,
    Rejected,
    RequestPacer,
    describe_error,
    sort_failure,
    with_marker,
)
from bot.posting.pacing import Pacer
from storage import channels, outbox
from storage.channels import DigestChannel
from storage.outbox import Item as Delivery
from storage.outbox import PlannedMessage
from storage.papers import papers_on_day
from storage.tags import normalize_tag

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_REQUESTS_PER_SECOND",
    "DeliveryOutcome",
    "DigestPoster",
    "RequestPacer",
    "describe_error",
]

#: Discord's JSON error code for "A thread has already been created for this message".
THREAD_ALREADY_CREATED = 160004
#: ... and for "Unknown Message" (the header was deleted before its thread was started).
UNKNOWN_MESSAGE = 10008
#: Discord's limits on a forum's tags, a post's applied tags and a tag's name.
MAX_FORUM_TAGS = 20
MAX_APPLIED_TAGS = 5
MAX_FORUM_TAG_NAME = 20

OutcomeStatus = Literal["delivered", "already_done", "skipped", "broken", "retry_later", "removed", "failed"]


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one `deliver` call did, for logs and the scheduler.

    `delivered`: every planned message is posted now (`sent` of them in this call).
    `already_done`: the day was delivered or skipped before; nothing was sent.
    `skipped`: nothing to post ("no papers") or the rest was abandoned (thread deleted).
    `broken`: Discord refuses the channel (now, or since an earlier run); see `detail`.
    `retry_later`: a transient failure; the delivery stays pending and resumes next time.
    `removed`: the channel no longer asks for the digest.
    `failed`: an unexpected error (only from `deliver_many`/`resume_unfinished`), logged.
    """

    channel_id: int
    day: dt.date
    status: OutcomeStatus
    sent: int = 0
    detail: str | None = None

    def describe(self) -> str:
        """One sentence for an admin: `#papers: <describe()>`."""
        day = self.day.isoformat()
        match self.status:
            case "delivered":
                return f"posted the digest for {day} ({self.sent} {'message' if self.sent == 1 else 'messages'})."
            case "already_done":
                return f"the digest for {day} was already handled" + (f" ({self.detail})." if self.detail else ".")
            case "skipped":
                return f"nothing posted for {day}: {self.detail}."
            case "broken":
                return f"not posted: {self.detail}."
            case "removed":
                return "this channel no longer gets the daily digest."
            case _:
                return f"the digest for {day} is not posted yet ({self.detail}); it will be retried."


@dataclass
class _Progress:
    sent: int = 0  # messages Discord accepted in this call, also when it ends in an error


class _ChannelRefused(Exception):
    """Discord answered 403/404 for the digest channel itself."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _DigestRemoved(Exception):
    """A moderator deleted the digest's thread or header message: the rest cannot be posted."""


class DigestPoster:
    """Delivers digests for one bot (a `discord.Client` with `.db`). Use one per bot.

    Deliveries of one channel are serialised (a scheduled run and a resume cannot interleave);
    different channels proceed concurrently up to `deliver_many`'s bound, and every message,
    thread and forum post they create waits for the poster's pacer (`bot.posting.pacing`).
    """

    def __init__(
        self, bot: discord.Client, *, requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        poster: Poster | None = None, pacer: Pacer | None = None, owns_guild=lambda guild_id: True,
        max_papers: int = render.DEFAULT_MAX_PAPERS_PER_POST,
    ) -> None:
        self.bot = bot
        self.max_papers = max_papers  # `[delivery] max_papers_per_post`: a huge day is posted capped
        self._channel_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.poster = poster or Poster(bot, requests_per_second=requests_per_second, pacer=pacer)
        self.owns_guild = owns_guild  # another process's shards' channels are its to post

    @property
    def pacer(self) -> Pacer:
        return self.poster.pacer

    @property
    def db(self):
        return self.bot.db

    # -- the public entry points -------------------------------------------------------------

    async def deliver(self, channel_row: DigestChannel, day: dt.date, *, late: bool = False) -> DeliveryOutcome:
        """Post `day`'s digest to the channel unless the ledger says it was already handled.

        The stored channel row is authoritative (it may have broken or changed since
        `channel_row` was read). An existing delivery is replayed as planned, whatever `late`.
        """
        channel_id = channel_row.channel_id
        async with self._channel_locks[channel_id]:
            channel = await channels.get_channel(self.db, channel_id)
            if channel is None:
                return DeliveryOutcome(channel_id, day, "removed")
            delivery = await outbox.get(self.db, "digest", channel_id, day)
            if delivery is not None and delivery.finished:
                return DeliveryOutcome(channel_id, day, "already_done", detail=delivery.reason)
            if channel.broken_reason:
                return DeliveryOutcome(channel_id, day, "broken", detail=channel.broken_reason)
            if delivery is None:
                planned = await self._plan(channel, day, late)
                if planned is None:
                    await outbox.skip(self.db, "digest", channel_id, day, "no papers")
                    return DeliveryOutcome(channel_id, day, "skipped", detail="no papers")
                delivery = planned
            async with self.poster.claim(delivery) as claimed:
                if claimed is None:
                    return DeliveryOutcome(channel_id, day, "retry_later", detail=CLAIMED_ELSEWHERE)
                if claimed.finished:
                    return DeliveryOutcome(channel_id, day, "already_done", detail=claimed.reason)
                return await self._send(channel, claimed)

    async def deliver_many(
        self, items: list[tuple[DigestChannel, dt.date, bool]], *, concurrency: int = 50
    ) -> list[DeliveryOutcome]:
        """Deliver (channel, day, late) items; outcomes in the items' order.

        At most `concurrency` channels at once; one channel's days go in the given order, so a
        catch-up never posts Tuesday before Monday. One channel failing never stops the others.
        The pacer, not `concurrency`, sets the rate: enough channels must be in flight to keep it
        busy while each waits on Discord's answer and on its own channel's 5-per-5-s bucket.
        """
        gate = asyncio.Semaphore(max(1, concurrency))
        by_channel: dict[int, list[int]] = defaultdict(list)
        for index, (channel, _day, _late) in enumerate(items):
            by_channel[channel.channel_id].append(index)
        outcomes: list[DeliveryOutcome | None] = [None] * len(items)

        async def one_channel(indexes: list[int]) -> None:
            async with gate:
                for index in indexes:
                    channel, day, late = items[index]
                    outcomes[index] = await self._deliver_logged(channel, day, late)

        await asyncio.gather(*(one_channel(indexes) for indexes in by_channel.values()))
        return [outcome for outcome in outcomes if outcome is not None]

    async def resume_unfinished(self, *, concurrency: int = 50) -> list[DeliveryOutcome]:
        """Finish every delivery a crash or an error left pending (call once the bot is ready)."""
        items: list[tuple[DigestChannel, dt.date, bool]] = []
        for delivery in await outbox.unfinished(self.db, "digest"):
            channel = await channels.get_channel(self.db, delivery.target_id)
            if channel is not None and self.owns_guild(channel.guild_id):
                items.append((channel, delivery.day, delivery.late))
        return await self.deliver_many(items, concurrency=concurrency)

    # -- planning -------------------------------------------------------------------------------

    async def _plan(self, channel: DigestChannel, day: dt.date, late: bool) -> Delivery | None:
        """Render the day for the channel and store it in the ledger; None when there is nothing to post."""
        papers = await papers_on_day(self.db, day, tags=channel.tags or None)
        if not papers and not channel.empty_day_note:
            return None
        roles = await self._roles_to_mention(channel, papers) if papers else []
        # Rendering a large day takes a while: off the event loop, so commands and heartbeats go on.
        planned, post_tags = await asyncio.to_thread(
            _render_day, channel.style, day, papers, late, roles, self.max_papers
        )
        return await outbox.plan(self.db, "digest", channel.channel_id, day, planned, late=late, post_tags=post_tags)

    async def _roles_to_mention(self, channel: DigestChannel, papers: list) -> list[int]:
        """The server's roles mapped to a tag that one of the day's papers carries."""
        mapped = await channels.tag_roles(self.db, channel.guild_id)
        present = {normalize_tag(tag) for paper in papers for tag in paper.tags}
        return [role_id for norm, (_, role_id) in mapped.items() if norm in present]

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, channel: DigestChannel, delivery: Delivery) -> DeliveryOutcome:
        channel_id, day = channel.channel_id, delivery.day
        progress = _Progress()
        try:
            await self._send_unsent(channel, delivery, progress)
        except _DigestRemoved as removed:
            await outbox.skip(self.db, "digest", channel_id, day, str(removed))
            return DeliveryOutcome(channel_id, day, "skipped", progress.sent, str(removed))
        except (_ChannelRefused, Refused) as refused:
            reason = self._broken_reason(channel, refused.error)
            log.warning("digest channel %s is broken: %s", channel_id, reason)
            if await channels.mark_broken(self.db, channel_id, reason):
                await self._tell_server(channel, reason)
            return DeliveryOutcome(channel_id, day, "broken", progress.sent, reason)
        except Rejected as rejected:  # sending the same message again can only fail again
            problem = str(rejected)
            await channels.record_error(self.db, channel_id, problem)
            log.error("Discord rejected the digest for %s in channel %s: %s", day, channel_id, problem)
            await outbox.skip(self.db, "digest", channel_id, day, f"Discord rejected it: {problem}")
            return DeliveryOutcome(channel_id, day, "skipped", progress.sent, problem)
        except Ambiguous as ambiguous:
            problem = str(ambiguous)
            await channels.record_error(self.db, channel_id, problem)
            log.warning("digest for %s in channel %s will be retried: %s", day, channel_id, problem)
            return DeliveryOutcome(channel_id, day, "retry_later", progress.sent, problem)
        await outbox.finish(self.db, delivery.id)
        await channels.record_error(self.db, channel_id, None)
        return DeliveryOutcome(channel_id, day, "delivered", progress.sent)

    async def _send_unsent(self, channel: DigestChannel, delivery: Delivery, progress: _Progress) -> None:
        """Send the planned messages Discord has not accepted yet, in order, counting them in `progress`."""
        if channel.style == "forum":
            return await self._send_forum(channel, delivery, progress)
        target = self.bot.get_partial_messageable(channel.channel_id, guild_id=channel.guild_id)
        thread_id = delivery.thread_id
        header: tuple[PlannedMessage, discord.Message | None] | None = None
        for planned in delivery.messages:
            if not planned.in_thread:
                message = await self._send_one(delivery, planned, target, in_thread=False)
                header = (planned, message)
                progress.sent += 1 if message is not None else 0
                continue
            if planned.message_id is not None:
                continue
            if thread_id is None:
                if header is None:
                    raise RuntimeError(f"delivery {delivery.id} has thread messages but no header before them")
                thread_id = await self._open_thread(channel, delivery, *header)
            thread = self.bot.get_partial_messageable(
                thread_id, guild_id=channel.guild_id, type=discord.ChannelType.public_thread
            )
            if await self._send_one(delivery, planned, thread, in_thread=True, after=thread_id) is not None:
                progress.sent += 1

    async def _send_one(
        self, delivery: Delivery, planned: PlannedMessage, target: discord.abc.Messageable, *, in_thread: bool,
        after: int | None = None,
    ) -> discord.Message | None:
        """Send one planned message unless already accepted (None then); the poster records it."""
        if in_thread and after is not None:  # in a thread: after the newest message recorded in it
            after = max([after] + [m.message_id for m in delivery.messages if m.in_thread and m.message_id])
        try:
            return await self.poster.send(delivery, planned, target, after=after)
        except Refused as refused:
            if in_thread and isinstance(refused.error, discord.NotFound):
                raise _DigestRemoved("the digest's thread was deleted") from refused
            raise

    async def _open_thread(
        self, channel: DigestChannel, delivery: Delivery, header: PlannedMessage, header_message: discord.Message | None
    ) -> int:
        """Start the digest's thread from its header message and remember it in the ledger."""
        name = render.digest_thread_name(delivery.day)
        header_id = header_message.id if header_message is not None else header.message_id
        assert header_id is not None  # the header is sent before any thread message
        try:
            if header_message is None or header_message.guild is None:  # sent in an earlier run
                parent = self.bot.get_channel(channel.channel_id) or await self.bot.fetch_channel(channel.channel_id)
                header_message = parent.get_partial_message(header_id)
            thread_id = (await self.poster.attempt(lambda: header_message.create_thread(name=name))).id
        except Failure as failure:
            error = failure.error
            if isinstance(error, discord.NotFound) and error.code == UNKNOWN_MESSAGE:
                raise _DigestRemoved("the digest's header message was deleted") from error
            if not isinstance(error, discord.HTTPException) or error.code != THREAD_ALREADY_CREATED:
                raise
            # Created by a run whose answer was lost; a message's thread has the message's id.
            thread_id = header_id
        except (discord.NotFound, discord.Forbidden) as error:  # fetching the channel
            raise _ChannelRefused(error) from error
        await outbox.set_thread(self.db, delivery.id, thread_id)
        return thread_id

    # -- forum channels ---------------------------------------------------------------------------

    async def _send_forum(self, channel: DigestChannel, delivery: Delivery, progress: _Progress) -> None:
        """The day's forum post (created once, with the header as its first message), then its messages."""
        header, rest = delivery.messages[0], delivery.messages[1:]
        thread_id = delivery.thread_id
        if thread_id is None or header.message_id is None:
            thread_id = await self._find_forum_post(channel, delivery) if delivery.post_requested else None
            if thread_id is None:
                thread_id = await self._create_forum_post(channel, delivery, header)
                progress.sent += 1
        thread = self.bot.get_partial_messageable(
            thread_id, guild_id=channel.guild_id, type=discord.ChannelType.public_thread
        )
        for planned in rest:
            if planned.message_id is None:
                if await self._send_one(delivery, planned, thread, in_thread=True, after=thread_id) is not None:
                    progress.sent += 1

    async def _forum(self, channel: DigestChannel) -> discord.ForumChannel:
        try:
            forum = self.bot.get_channel(channel.channel_id) or await self.bot.fetch_channel(channel.channel_id)
        except (discord.NotFound, discord.Forbidden) as error:
            raise _ChannelRefused(error) from error
        if not isinstance(forum, discord.ForumChannel):
            raise RuntimeError(f"digest channel {channel.channel_id} is set up as a forum but is not one")
        return forum

    async def _find_forum_post(self, channel: DigestChannel, delivery: Delivery) -> int | None:
        """The day's post an earlier run created but did not record (recorded now), if any.

        Searched among the server's active threads and the forum's archived posts: a post whose
        answer was lost may have been archived (by a moderator, or by Discord) before this run.
        """
        guild = self.bot.get_guild(channel.guild_id)
        if guild is None:
            raise RuntimeError(f"server {channel.guild_id} of digest channel {channel.channel_id} is not available yet")
        name = render.digest_thread_name(delivery.day)
        me = self.bot.user.id if self.bot.user is not None else None

        def ours(thread: discord.Thread) -> bool:
            return thread.parent_id == channel.channel_id and thread.name == name and thread.owner_id == me

        try:
            found = [thread for thread in await guild.active_threads() if ours(thread)]
            if not found:
                forum = await self._forum(channel)
                found = [thread async for thread in forum.archived_threads(limit=None) if ours(thread)]
        except (discord.HTTPException, *NETWORK_ERRORS) as error:
            raise sort_failure(error)(error) from error
        if not found:
            return None
        post = min(found, key=lambda thread: thread.id)
        # A forum post's first message has the post's id.
        await outbox.record_forum_post(self.db, delivery.id, post.id, delivery.messages[0].position, post.id)
        return post.id

    async def _create_forum_post(self, channel: DigestChannel, delivery: Delivery, header: PlannedMessage) -> int:
        forum = await self._forum(channel)
        applied = await self._post_tags(channel, forum, delivery.post_tags or [])
        kwargs = with_marker(render.payload_from_dict(header.payload).as_kwargs(), header.nonce)
        await outbox.request_forum_post(self.db, delivery.id)
        try:
            created = await self.poster.attempt(lambda: forum.create_thread(
                name=render.digest_thread_name(delivery.day), **kwargs, applied_tags=applied
            ), retry=False)
        except Ambiguous:
            # A retry without a nonce could create a second post: look for the first one instead.
            found = await self._find_forum_post(channel, delivery)
            if found is None:
                raise
            return found
        await outbox.record_forum_post(
            self.db, delivery.id, created.thread.id, header.position, created.message.id
        )
        return created.thread.id

    async def _post_tags(
        self, channel: DigestChannel, forum: discord.ForumChannel, wanted: list[str]
    ) -> list[discord.ForumTag]:
        """The forum's tags for the day's tags (most frequent first, at most 5), created first if allowed."""
        me = forum.guild.me
        may_moderate = me is not None and forum.permissions_for(me).manage_threads
        existing = {normalize_tag(tag.name): tag for tag in forum.available_tags}
        picked: list[str] = []  # normalized identities, in order
        to_create: list[str] = []
        for name in wanted:
            if len(picked) == MAX_APPLIED_TAGS:
                break
            norm = normalize_tag(name)
            tag = existing.get(norm)
            if tag is not None:
                if may_moderate or not tag.moderated:
                    picked.append(norm)
            elif (
                channel.create_forum_tags
                and len(name) <= MAX_FORUM_TAG_NAME
                and len(existing) + len(to_create) < MAX_FORUM_TAGS
            ):
                to_create.append(name)
                picked.append(norm)
        if to_create:
            tags = list(forum.available_tags) + [discord.ForumTag(name=name) for name in to_create]
            try:
                edited = await forum.edit(available_tags=tags, reason="Paperbot: tags for the daily digest posts")
            except discord.Forbidden as error:  # Manage Channels was taken away: post with the tags there are
                log.warning("could not create forum tags in channel %s: %s", channel.channel_id, describe_error(error))
                edited = None
            if edited is not None:
                forum = edited
            existing = {normalize_tag(tag.name): tag for tag in forum.available_tags}
        return [existing[norm] for norm in picked if norm in existing]

    # -- a broken channel -------------------------------------------------------------------------

    def _broken_reason(self, channel: DigestChannel, error: discord.HTTPException) -> str:
        known = self.bot.get_channel(channel.channel_id)
        where = f"#{known.name}" if getattr(known, "name", None) else f"channel {channel.channel_id}"
        if isinstance(error, discord.NotFound):
            return f"Paperbot can no longer find {where} ({error.text or 'Unknown Channel'})"
        return f"Paperbot lost access to {where} ({error.text or 'Missing Permissions'})"

    async def _tell_server(self, channel: DigestChannel, reason: str) -> None:
        """Once per breakage: the server's system channel if Paperbot may post there, else a DM to the admin."""
        guild = self.bot.get_guild(channel.guild_id)
        system = guild.system_channel if guild is not None else None
        if (
            system is not None
            and system.id != channel.channel_id
            and guild.me is not None
            and system.permissions_for(guild.me).send_messages
        ):
            try:
                await system.send(**render.broken_channel_notice(reason).as_kwargs())
                return
            except discord.HTTPException as error:
                log.warning("could not tell server %s in its system channel: %s",
                            channel.guild_id, describe_error(error))
        if channel.set_up_by is None:
            log.warning("nobody to tell that digest channel %s is broken", channel.channel_id)
            return
        try:
            dm = await self.bot.create_dm(discord.Object(id=channel.set_up_by))
            notice = render.broken_channel_notice(reason, server=guild.name if guild is not None else None)
            await dm.send(**notice.as_kwargs())
        except discord.HTTPException as error:
            log.warning("could not DM user %s about channel %s: %s", channel.set_up_by, channel.channel_id,
                        describe_error(error))

    async def _deliver_logged(self, channel: DigestChannel, day: dt.date, late: bool) -> DeliveryOutcome:
        try:
            return await self.deliver(channel, day, late=late)
        except Exception as error:  # one channel's crash must not stop the others; it resumes later
            log.exception("digest for %s in channel %s failed", day, channel.channel_id)
            return DeliveryOutcome(channel.channel_id, day, "failed", detail=describe_error(error))


def _render_day(
    style: str, day: dt.date, papers: list, late: bool, roles: list[int], max_papers: int
) -> tuple[list[tuple[dict, bool]], list[str] | None]:
    """The day's planned messages as (payload dict, in_thread) and, for forums, the day's tags.

    Pure (no I/O, no event loop): run in a worker thread.
    """
    if not papers:
        return [(render.payload_to_dict(render.empty_day_message(day)), False)], [] if style == "forum" else None
    as_thread = "thread" if style == "forum" else style  # a forum post is a thread
    payloads = render.digest_messages(day, papers, style=as_thread, late=late, mention_role_ids=roles,
                                      max_papers=max_papers)
    planned = [(render.payload_to_dict(p), as_thread == "thread" and i > 0) for i, p in enumerate(payloads)]
    return planned, render.day_tags_by_frequency(papers) if style == "forum" else None
