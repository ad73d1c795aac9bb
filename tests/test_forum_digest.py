"""Forum digest channels end to end: the real Paperbot client on the fake Discord, the real corpus.

A forum gets one post per day (a thread whose first message is the day's header) with one message
per paper, carrying the forum's tags that match the day's papers (created when the admin allowed
it, within Discord's limits), exactly once through errors and crashes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bot import render
from bot.posting.daily import MAX_APPLIED_TAGS, MAX_FORUM_TAGS, DigestPoster
from storage import channels, outbox
from storage.channels import DigestChannel
from storage.papers import papers_on_day
from storage.tags import normalize_tag
from testing import FakeDiscord, Perm, running_bot
from testing.state import Channel, ChannelType, Guild, User
from tests.world import QuickBot, World, assert_private_error, every_try, seen, settings_for

DAY = dt.date(2025, 2, 20)  # 20 papers; most frequent tags: Natural Language Processing, Question Answering, ...
SMALL_DAY = dt.date(2024, 11, 7)  # 2 papers
MESSAGES = "/channels/{channel_id}/messages"
FORUM_POSTS = "/channels/{channel_id}/threads"
EDIT_CHANNEL = "/channels/{channel_id}"
ACTIVE_THREADS = "/guilds/{guild_id}/threads/active"
FILLERS = tuple(f"filler {n}" for n in range(17))


@dataclass
class Forums:
    fake: FakeDiscord
    bot: QuickBot
    poster: DigestPoster
    guild: Guild
    tagged: Channel  # has tags matching some of DAY's papers' tags (in other spellings) and others
    bare: Channel  # no tags; Paperbot may manage it
    crowded: Channel  # 17 unrelated tags + "multimodal"; Paperbot may manage it
    admin: User

    async def digest_in(self, forum: Channel, **settings) -> DigestChannel:
        row = DigestChannel(channel_id=forum.id, guild_id=self.guild.id, post_time=dt.time(9, 0),
                            timezone="UTC", set_up_by=self.admin.id, style="forum", **settings)
        await channels.save_channel(self.bot.db, row)
        return await channels.get_channel(self.bot.db, forum.id)

    def posts_in(self, forum: Channel) -> list[Channel]:
        return [t for t in self.fake.state.threads_of(self.guild) if t.parent_id == forum.id]

    def tag_names(self, forum: Channel, post: Channel) -> list[str]:
        names = {int(t["id"]): t["name"] for t in self.fake.state.channel(forum.id).available_tags}
        return [names[t] for t in post.applied_tags]

    async def expected(self, day: dt.date) -> list[dict]:
        papers = await papers_on_day(self.bot.db, day)
        return [render.payload_to_dict(p) for p in render.digest_messages(day, papers, style="thread")]


@pytest_asyncio.fixture
async def forums(fake_discord: FakeDiscord, library_path: Path):
    guild = fake_discord.add_guild("Research", channels=("general",))
    tagged = fake_discord.add_forum_channel(
        guild, "digest", tags=("natural language processing", "MULTIMODAL", "computer-vision", "Astronomy")
    )
    bare = fake_discord.add_forum_channel(guild, "bare")
    crowded = fake_discord.add_forum_channel(guild, "crowded", tags=FILLERS + ("multimodal",))
    for forum in (bare, crowded):
        fake_discord.set_channel_permissions(forum, fake_discord.bot_user.id, allow=Perm.MANAGE_CHANNELS)
    admin = fake_discord.add_user("admin")
    fake_discord.add_member(guild, admin)
    async with running_bot(fake_discord, lambda: QuickBot(settings_for(library_path), guild_ready_timeout=0.01)) as bot:
        yield Forums(fake_discord, bot, DigestPoster(bot), guild, tagged, bare, crowded, admin)


def view(message: dict) -> tuple:
    return (message.get("content") or None, message.get("embeds") or [])


def planned_view(payload: dict) -> tuple:
    return (payload["content"], payload["embeds"])


# ----- posting -------------------------------------------------------------------------------


async def test_a_forum_gets_one_post_per_day_with_a_message_per_paper_and_matching_tags(forums: Forums) -> None:
    row = await forums.digest_in(forums.tagged)
    expected = await forums.expected(DAY)

    outcome = await forums.poster.deliver(row, DAY)

    assert (outcome.status, outcome.sent) == ("delivered", 21)
    [post] = forums.posts_in(forums.tagged)
    assert post.name == render.digest_thread_name(DAY) == "Papers for 2025-02-20"
    assert post.owner_id == forums.bot.user.id
    posted = seen(forums.fake.messages_in(post))
    assert [view(m) for m in posted] == [planned_view(p) for p in expected]
    assert posted[0]["content"] == "📄 Papers for 2025-02-20 (20 papers)"
    assert int(posted[0]["id"]) == post.id  # the header is the post's first message
    # The forum's own tags that match the day's tags, most frequent first; "Astronomy" is not one of them.
    assert forums.tag_names(forums.tagged, post) == ["natural language processing", "MULTIMODAL", "computer-vision"]
    assert forums.fake.requests_to("PATCH", EDIT_CHANNEL) == []  # creating tags was not allowed
    paper_sends = forums.fake.requests_to("POST", MESSAGES)
    assert len(paper_sends) == 20 and all(r.json["enforce_nonce"] and r.json["nonce"] for r in paper_sends)

    delivery = await outbox.get(forums.bot.db, "digest", forums.tagged.id, DAY)
    assert delivery.status == "done" and delivery.thread_id == post.id
    assert [m.message_id for m in delivery.messages] == [int(m["id"]) for m in posted]

    assert (await forums.poster.deliver(row, DAY)).status == "already_done"
    assert (await forums.poster.deliver(row, SMALL_DAY)).status == "delivered"
    assert sorted(p.name for p in forums.posts_in(forums.tagged)) == ["Papers for 2024-11-07", "Papers for 2025-02-20"]
    assert len(forums.fake.requests_to("POST", FORUM_POSTS)) == 2


async def test_forum_tags_are_created_when_allowed_at_most_five_per_post(forums: Forums) -> None:
    row = await forums.digest_in(forums.bare, create_forum_tags=True)

    assert (await forums.poster.deliver(row, DAY)).status == "delivered"

    [post] = forums.posts_in(forums.bare)
    applied = forums.tag_names(forums.bare, post)
    assert len(applied) == MAX_APPLIED_TAGS
    # "Natural Language Processing" is the day's most frequent tag but longer than a forum tag may be.
    assert applied == ["Question Answering", "Multimodal", "Text Generation", "Machine Learning", "Computer Vision"]
    papers = await papers_on_day(forums.bot.db, DAY)
    day_tags = {normalize_tag(t) for p in papers for t in p.tags}
    assert {normalize_tag(t) for t in applied} <= day_tags
    [edit] = forums.fake.requests_to("PATCH", EDIT_CHANNEL)
    assert edit.status == 200 and edit.reason
    assert [t["name"] for t in forums.fake.state.channel(forums.bare.id).available_tags] == applied


async def test_created_forum_tags_never_exceed_twenty(forums: Forums) -> None:
    row = await forums.digest_in(forums.crowded, create_forum_tags=True)

    assert (await forums.poster.deliver(row, DAY)).status == "delivered"

    tags = forums.fake.state.channel(forums.crowded.id).available_tags
    assert len(tags) == MAX_FORUM_TAGS
    assert [t["name"] for t in tags[-3:]] == ["multimodal", "Question Answering", "Text Generation"]
    [post] = forums.posts_in(forums.crowded)
    assert forums.tag_names(forums.crowded, post) == ["Question Answering", "multimodal", "Text Generation"]


async def test_no_forum_tags_are_created_unless_allowed(forums: Forums) -> None:
    row = await forums.digest_in(forums.bare)

    assert (await forums.poster.deliver(row, DAY)).status == "delivered"

    [post] = forums.posts_in(forums.bare)
    assert post.applied_tags == []
    assert forums.fake.state.channel(forums.bare.id).available_tags == []
    assert forums.fake.requests_to("PATCH", EDIT_CHANNEL) == []


# ----- errors and crashes -------------------------------------------------------------------------


async def test_a_post_created_but_not_recorded_is_found_not_created_again(forums: Forums, monkeypatch) -> None:
    row = await forums.digest_in(forums.tagged)
    real_record = outbox.record_forum_post
    crashed = []

    async def crash_once(conn, delivery_id, thread_id, position, message_id):
        if not crashed:
            crashed.append(thread_id)
            raise RuntimeError("killed before the ledger was written")
        await real_record(conn, delivery_id, thread_id, position, message_id)

    monkeypatch.setattr(outbox, "record_forum_post", crash_once)
    with pytest.raises(RuntimeError, match="killed"):
        await forums.poster.deliver(row, DAY)
    assert len(forums.posts_in(forums.tagged)) == 1
    assert forums.fake.requests_to("POST", MESSAGES) == []

    [outcome] = await DigestPoster(forums.bot).resume_unfinished()  # as after a restart

    assert outcome.status == "delivered"
    [post] = forums.posts_in(forums.tagged)
    assert post.id == crashed[0]
    assert len(forums.fake.requests_to("POST", FORUM_POSTS)) == 1
    assert len(forums.fake.requests_to("GET", ACTIVE_THREADS)) == 1
    posted = seen(forums.fake.messages_in(post))
    assert [view(m) for m in posted] == [planned_view(p) for p in await forums.expected(DAY)]
    delivery = await outbox.get(forums.bot.db, "digest", forums.tagged.id, DAY)
    assert delivery.thread_id == post.id and delivery.messages[0].message_id == post.id


async def test_a_members_post_named_for_the_day_is_not_taken_for_paperbots(forums: Forums) -> None:
    row = await forums.digest_in(forums.tagged)
    member_post = forums.fake.state.add_thread(forums.fake.state.channel(forums.tagged.id),
                                               render.digest_thread_name(DAY), owner=forums.admin)
    forums.fake.fail_next("POST", FORUM_POSTS, status=503)  # requested, maybe created: look it up next time
    assert (await forums.poster.deliver(row, DAY)).status == "retry_later"

    assert (await forums.poster.deliver(row, DAY)).status == "delivered"

    assert len(forums.fake.requests_to("GET", ACTIVE_THREADS)) == 2  # right after the lost answer, and on resume
    [post] = [p for p in forums.posts_in(forums.tagged) if p.id != member_post.id]
    assert post.owner_id == forums.bot.user.id and len(forums.fake.messages_in(post)) == 21
    assert forums.fake.messages_in(member_post) == []


async def test_a_failed_post_creation_is_retried_and_creates_one_post(forums: Forums) -> None:
    row = await forums.digest_in(forums.tagged)
    forums.fake.fail_next("POST", FORUM_POSTS, status=503)

    first = await forums.poster.deliver(row, DAY)
    assert (first.status, first.sent) == ("retry_later", 0)
    assert forums.posts_in(forums.tagged) == []

    assert (await forums.poster.deliver(row, DAY)).status == "delivered"
    [post] = forums.posts_in(forums.tagged)
    assert len(forums.fake.messages_in(post)) == 21


async def test_a_server_error_on_a_paper_message_resumes_in_the_same_post(forums: Forums) -> None:
    row = await forums.digest_in(forums.tagged)
    forums.fake.fail_next(
        "POST", MESSAGES, status=503, times=every_try(),
        when=lambda req: sum(len(forums.fake.messages_in(p)) for p in forums.posts_in(forums.tagged)) == 4,
    )

    first = await forums.poster.deliver(row, DAY)
    assert (first.status, first.sent) == ("retry_later", 4)
    [post] = forums.posts_in(forums.tagged)

    [second] = await forums.poster.resume_unfinished()

    assert (second.status, second.sent) == ("delivered", 17)
    assert forums.posts_in(forums.tagged) == [post]
    posted = seen(forums.fake.messages_in(post))
    assert [view(m) for m in posted] == [planned_view(p) for p in await forums.expected(DAY)]
    assert len(forums.fake.requests_to("POST", FORUM_POSTS)) == 1


async def test_a_forbidden_forum_is_marked_broken(forums: Forums) -> None:
    row = await forums.digest_in(forums.tagged)
    forums.fake.set_channel_forbidden(forums.tagged)

    outcome = await forums.poster.deliver(row, DAY)

    assert outcome.status == "broken" and "#digest" in outcome.detail
    assert forums.posts_in(forums.tagged) == []


# ----- /digest setup with a forum -----------------------------------------------------------------


async def _forum_in_world(world: World, name: str = "paper-posts") -> Channel:
    forum = await world.fake.create_text_channel(world.guild, name, type=ChannelType.FORUM)
    await world.fake.wait_for(lambda: world.bot.get_channel(forum.id) is not None, what="the forum to reach the bot")
    return forum


async def _setup(world: World, forum: Channel, **options) -> dict:
    _, response = await world.command("digest", "setup", user=world.owner, channel=forum.id, **options)
    return response


async def test_setup_accepts_a_forum_and_implies_forum_style(world: World) -> None:
    forum = await _forum_in_world(world)

    response = await _setup(world, forum)

    assert "one forum post per day" in response["data"]["content"]
    row = await channels.get_channel(world.bot.db, forum.id)
    assert row.style == "forum" and row.create_forum_tags is False
    assert_private_error(await _setup(world, forum, style="compact"), "forum")


@pytest.mark.parametrize(
    ("deny", "named"),
    [
        (Perm.SEND_MESSAGES_IN_THREADS, "Send Messages in Threads"),
        (Perm.SEND_MESSAGES, "Create Posts"),
        (Perm.EMBED_LINKS, "Embed Links"),
    ],
)
async def test_setup_refuses_a_forum_without_a_needed_permission(world: World, deny: int, named: str) -> None:
    forum = await _forum_in_world(world)
    await world.fake.change_channel_permissions(forum, world.guild.everyone, deny=deny)
    await world.fake.wait_for(
        lambda: world.bot.get_channel(forum.id).overwrites, what="the permission change to reach the bot"
    )

    text = assert_private_error(await _setup(world, forum), named)

    assert await channels.get_channel(world.bot.db, forum.id) is None
    assert text.count("Manage Channels") == 0


async def test_creating_forum_tags_needs_manage_channels(world: World) -> None:
    forum = await _forum_in_world(world)

    assert_private_error(await _setup(world, forum, create_forum_tags=True), "Manage Channels")
    assert await channels.get_channel(world.bot.db, forum.id) is None

    await world.fake.change_channel_permissions(forum, world.fake.bot_user.id, allow=Perm.MANAGE_CHANNELS)
    await world.fake.wait_for(
        lambda: world.bot.get_channel(forum.id).permissions_for(world.bot.get_guild(world.guild.id).me).manage_channels,
        what="the permission change to reach the bot",
    )
    response = await _setup(world, forum, create_forum_tags=True)
    assert "forum tags created as needed" in response["data"]["content"]
    assert (await channels.get_channel(world.bot.db, forum.id)).create_forum_tags is True


async def test_create_forum_tags_is_refused_for_a_text_channel(world: World) -> None:
    _, response = await world.command("digest", "setup", user=world.owner, channel=world.channel.id,
                                      create_forum_tags=True)
    assert_private_error(response, "only for forum")


async def test_a_post_created_with_a_lost_answer_then_archived_is_found_not_posted_again(forums: Forums) -> None:
    row = await forums.digest_in(forums.tagged)
    forums.fake.answer_lost("POST", FORUM_POSTS, status=503)  # the post is created; the answer is a 503
    forums.fake.fail_next("GET", ACTIVE_THREADS, status=503)  # and the look right after fails too

    first = await forums.poster.deliver(row, DAY)

    assert first.status == "retry_later"
    [post] = forums.posts_in(forums.tagged)
    post.archived = True  # archived before the next run (a moderator, or Discord's auto-archive)

    [outcome] = await DigestPoster(forums.bot).resume_unfinished()

    assert outcome.status == "delivered"
    assert forums.posts_in(forums.tagged) == [post]
    assert len(forums.fake.requests_to("POST", FORUM_POSTS)) == 1
    assert forums.fake.requests_to("GET", "/channels/{channel_id}/threads/archived/public")
    posted = seen(forums.fake.messages_in(post))
    assert [view(m) for m in posted] == [planned_view(p) for p in await forums.expected(DAY)]
