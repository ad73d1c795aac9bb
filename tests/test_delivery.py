"""Daily digest delivery end to end: the real Paperbot client on the fake Discord, the real corpus.

Every assertion reads what reached the fake Discord: each day's digest must appear in each channel
exactly once, through errors, crashes between two messages and crashes after Discord accepted a
message the ledger did not record yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bot import render
from bot.posting.daily import DigestPoster
from storage import channels, outbox
from storage.channels import DigestChannel
from storage.papers import papers_on_day
from testing import FakeDiscord, Perm, running_bot
from testing.state import Channel, Guild, User
from tests.world import QuickBot, every_try, seen, settings_for

BIG_DAY = dt.date(2025, 3, 21)  # 38 papers: three compact messages
DAY = dt.date(2025, 2, 20)  # 20 papers: two compact messages
SMALL_DAY = dt.date(2024, 11, 7)  # 2 papers
NO_PAPERS = dt.date(2000, 1, 1)
MESSAGES = "/channels/{channel_id}/messages"
THREADS = "/channels/{channel_id}/messages/{message_id}/threads"


@dataclass
class Town:
    fake: FakeDiscord
    bot: QuickBot
    poster: DigestPoster
    guild: Guild
    papers: Channel
    robotics: Channel
    general: Channel  # the server's system channel
    admin: User

    async def digest_in(self, channel: Channel, **settings) -> DigestChannel:
        row = DigestChannel(channel_id=channel.id, guild_id=self.guild.id, post_time=dt.time(9, 0),
                            timezone="UTC", set_up_by=self.admin.id, **settings)
        await channels.save_channel(self.bot.db, row)
        return await channels.get_channel(self.bot.db, channel.id)

    def posted(self, channel: Channel | int) -> list[dict]:
        return seen(self.fake.messages_in(channel))

    def posts_to(self, channel: Channel | int) -> list:
        channel_id = str(getattr(channel, "id", channel))
        return [r for r in self.fake.requests_to("POST", MESSAGES) if r.params.get("channel_id") == channel_id]

    async def expected(self, day: dt.date, style: str = "compact", tags: list[str] | None = None) -> list[dict]:
        papers = await papers_on_day(self.bot.db, day, tags=tags)
        return [render.payload_to_dict(p) for p in render.digest_messages(day, papers, style=style)]


@pytest_asyncio.fixture
async def town(fake_discord: FakeDiscord, library_path: Path, request: pytest.FixtureRequest):
    """A server whose system channel is #general; `indirect` param {"system_send": False} closes it to the bot."""
    options = getattr(request, "param", {})
    guild = fake_discord.add_guild("Research", channels=("papers", "robotics", "general"))
    papers, robotics, general = (fake_discord.state.channel(c) for c in guild.channel_ids)
    admin = fake_discord.add_user("admin")
    fake_discord.add_member(guild, admin)
    plain_guild_dict = fake_discord.state.guild_dict

    def with_system_channel(g: Guild) -> dict:
        return {**plain_guild_dict(g), "system_channel_id": str(general.id) if g.id == guild.id else None}

    fake_discord.state.guild_dict = with_system_channel  # the fake has no system channel setting of its own
    if not options.get("system_send", True):
        fake_discord.set_channel_permissions(general, guild.everyone, deny=Perm.SEND_MESSAGES)
    async with running_bot(fake_discord, lambda: QuickBot(settings_for(library_path), guild_ready_timeout=0.01)) as bot:
        yield Town(fake_discord, bot, DigestPoster(bot), guild, papers, robotics, general, admin)


def content_and_embeds(message: dict) -> tuple:
    return (message.get("content") or None, message.get("embeds") or [])


def planned_view(payload: dict) -> tuple:
    return (payload["content"], payload["embeds"])


# ----- posting -------------------------------------------------------------------------------


async def test_compact_digest_is_posted_as_planned_without_pings(town: Town) -> None:
    row = await town.digest_in(town.papers)
    expected = await town.expected(BIG_DAY)
    assert len(expected) == 3

    outcome = await town.poster.deliver(row, BIG_DAY)

    assert (outcome.status, outcome.sent) == ("delivered", 3)
    posted = town.posted(town.papers)
    assert [content_and_embeds(m) for m in posted] == [planned_view(p) for p in expected]
    assert posted[0]["content"] == "📄 Papers for 2025-03-21 (38 papers)"
    requests = town.posts_to(town.papers)
    assert [r.json["allowed_mentions"] for r in requests] == [{"parse": []}] * 3
    assert all(r.json["enforce_nonce"] is True and r.json["nonce"] for r in requests)
    assert len({r.json["nonce"] for r in requests}) == 3

    delivery = await outbox.get(town.bot.db, "digest", town.papers.id, BIG_DAY)
    assert delivery.status == "done"
    assert [m.message_id for m in delivery.messages] == [int(m["id"]) for m in posted]
    assert outcome.describe() == "posted the digest for 2025-03-21 (3 messages)."


async def test_the_same_day_twice_posts_nothing_the_second_time(town: Town) -> None:
    row = await town.digest_in(town.papers)
    assert (await town.poster.deliver(row, DAY)).status == "delivered"
    before = len(town.fake.requests)

    again = await town.poster.deliver(row, DAY)
    in_parallel = await asyncio.gather(*(DigestPoster(town.bot).deliver(row, DAY) for _ in range(3)))

    assert again.status == "already_done" and {o.status for o in in_parallel} == {"already_done"}
    assert town.fake.requests[before:] == []
    assert len(town.posted(town.papers)) == len(await town.expected(DAY))


async def test_thread_style_posts_a_header_and_one_message_per_paper_in_a_thread(town: Town) -> None:
    row = await town.digest_in(town.papers, style="thread")
    expected = await town.expected(DAY, "thread")

    outcome = await town.poster.deliver(row, DAY)

    assert (outcome.status, outcome.sent) == ("delivered", 21)
    header, = town.posted(town.papers)
    assert header["content"] == "📄 Papers for 2025-02-20 (20 papers)"
    thread, = town.fake.state.threads_of(town.guild)
    assert thread.name == "Papers for 2025-02-20" and thread.parent_id == town.papers.id
    assert thread.id == int(header["id"])
    in_thread = town.posted(thread)
    assert len(in_thread) == 20 and all(len(m["embeds"]) == 1 for m in in_thread)
    assert [content_and_embeds(m) for m in [header, *in_thread]] == [planned_view(p) for p in expected]
    assert in_thread[-1]["embeds"][0]["footer"]["text"].startswith("20/20")
    assert (await outbox.get(town.bot.db, "digest", town.papers.id, DAY)).thread_id == thread.id

    assert (await town.poster.deliver(row, DAY)).status == "already_done"
    assert len(town.posted(thread)) == 20 and len(town.fake.state.threads_of(town.guild)) == 1


async def test_tags_limit_the_papers(town: Town) -> None:
    everything = await papers_on_day(town.bot.db, DAY)
    vision = await papers_on_day(town.bot.db, DAY, tags=["computer vision"])
    assert 0 < len(vision) < len(everything)
    row = await town.digest_in(town.robotics, tags=["computer vision"], style="thread")

    await town.poster.deliver(row, DAY)

    header, = town.posted(town.robotics)
    assert header["content"] == f"📄 Papers for 2025-02-20 ({len(vision)} papers)"
    thread, = town.fake.state.threads_of(town.guild)
    titles = [m["embeds"][0]["title"] for m in town.posted(thread)]
    assert len(titles) == len(vision)
    assert titles == [e["embeds"][0]["title"] for e in (await town.expected(DAY, "thread", ["computer vision"]))[1:]]


async def test_late_digests_say_so(town: Town) -> None:
    row = await town.digest_in(town.papers)
    await town.poster.deliver(row, SMALL_DAY, late=True)
    assert town.posted(town.papers)[0]["content"].endswith("· posted late")


# ----- days without papers -----------------------------------------------------------------------


async def test_a_day_without_papers_posts_a_short_note_when_asked(town: Town) -> None:
    row = await town.digest_in(town.papers, empty_day_note=True)

    outcome = await town.poster.deliver(row, NO_PAPERS)

    assert outcome.status == "delivered"
    note, = town.posted(town.papers)
    assert note["content"] == "📄 No new papers for 2000-01-01." and not note["embeds"]
    assert town.posts_to(town.papers)[0].json["allowed_mentions"] == {"parse": []}
    assert (await town.poster.deliver(row, NO_PAPERS)).status == "already_done"
    assert len(town.posted(town.papers)) == 1


async def test_a_day_without_papers_is_skipped_silently_by_default(town: Town) -> None:
    row = await town.digest_in(town.papers)
    outcome = await town.poster.deliver(row, NO_PAPERS)
    assert (outcome.status, outcome.detail) == ("skipped", "no papers")
    skipped = await outbox.get(town.bot.db, "digest", town.papers.id, NO_PAPERS)
    assert (skipped.status, skipped.reason) == ("skipped", "no papers")
    assert (await town.poster.deliver(row, NO_PAPERS)).status == "already_done"
    assert town.posts_to(town.papers) == [] and town.posted(town.papers) == []


# ----- errors and crashes -------------------------------------------------------------------------


async def test_a_server_error_between_messages_resumes_at_the_first_unaccepted_one(town: Town) -> None:
    row = await town.digest_in(town.papers)
    expected = await town.expected(BIG_DAY)
    town.fake.fail_next("POST", MESSAGES, status=503, channel_id=town.papers.id, times=every_try(),
                        when=lambda req: len(town.posted(town.papers)) == 1)

    first = await town.poster.deliver(row, BIG_DAY)

    assert (first.status, first.sent) == ("retry_later", 1)
    assert len(town.posted(town.papers)) == 1
    failing = await channels.get_channel(town.bot.db, town.papers.id)
    assert "503" in failing.last_error and failing.broken_reason is None
    pending, = await outbox.unfinished(town.bot.db, "digest")
    assert [m.message_id is not None for m in pending.messages] == [True, False, False]

    resumed = await DigestPoster(town.bot).resume_unfinished()  # as after a restart

    assert [(o.status, o.sent) for o in resumed] == [("delivered", 2)]
    assert [content_and_embeds(m) for m in town.posted(town.papers)] == [planned_view(p) for p in expected]
    assert (await channels.get_channel(town.bot.db, town.papers.id)).last_error is None
    assert await outbox.unfinished(town.bot.db, "digest") == []


async def test_a_message_discord_rejects_skips_the_day_instead_of_retrying_forever(town: Town) -> None:
    row = await town.digest_in(town.papers)
    town.fake.fail_next("POST", MESSAGES, status=400, code=50035, channel_id=town.papers.id)

    outcome = await town.poster.deliver(row, BIG_DAY)

    assert outcome.status == "skipped" and "400" in outcome.detail
    stored = await outbox.get(town.bot.db, "digest", town.papers.id, BIG_DAY)
    assert stored.status == "skipped" and "rejected" in stored.reason
    channel = await channels.get_channel(town.bot.db, town.papers.id)
    assert channel.broken_reason is None and "400" in channel.last_error  # /digest status shows why
    assert await outbox.unfinished(town.bot.db, "digest") == []
    assert (await town.poster.deliver(row, BIG_DAY)).status == "already_done"


async def test_a_restart_replays_the_plan_even_if_the_library_changed(town: Town) -> None:
    row = await town.digest_in(town.papers)
    town.fake.fail_next("POST", MESSAGES, status=503, times=every_try(),
                        when=lambda req: len(town.posted(town.papers)) == 1)
    await town.poster.deliver(row, DAY)
    planned = await outbox.get(town.bot.db, "digest", town.papers.id, DAY)
    await town.bot.db.execute("DELETE FROM appearances WHERE day = ?", (DAY.isoformat(),))  # a re-ingest, say

    assert (await town.poster.deliver(row, DAY)).status == "delivered"
    assert [content_and_embeds(m) for m in town.posted(town.papers)] == [
        planned_view(m.payload) for m in planned.messages
    ]


async def test_a_message_accepted_but_not_recorded_is_not_posted_twice(town: Town, monkeypatch) -> None:
    """A crash right after Discord accepted message 2: the resume finds it in the channel by its marker."""
    row = await town.digest_in(town.papers)
    real_mark_sent = outbox.mark_sent
    crashed = []

    async def crash_once_on_the_second(conn, delivery_id, position, message_id):
        if position == 1 and not crashed:
            crashed.append(message_id)
            raise RuntimeError("killed before the ledger was written")
        await real_mark_sent(conn, delivery_id, position, message_id)

    monkeypatch.setattr(outbox, "mark_sent", crash_once_on_the_second)
    with pytest.raises(RuntimeError, match="killed"):
        await town.poster.deliver(row, BIG_DAY)
    assert len(town.posted(town.papers)) == 2

    assert (await DigestPoster(town.bot).deliver(row, BIG_DAY)).status == "delivered"

    posted = town.posted(town.papers)
    assert [content_and_embeds(m) for m in posted] == [planned_view(p) for p in await town.expected(BIG_DAY)]
    requests = town.posts_to(town.papers)
    assert len(requests) == 3  # message 2 was sent once: the resume read the channel and found it
    assert town.fake.requests_to("GET", MESSAGES) and int(posted[1]["id"]) == crashed[0]
    stored = await outbox.get(town.bot.db, "digest", town.papers.id, BIG_DAY)
    assert [m.message_id for m in stored.messages] == [int(m["id"]) for m in posted]


# A bot process that logs in over REST only and delivers one day: enough for DigestPoster.
DELIVER_IN_A_PROCESS = textwrap.dedent("""
    import asyncio, datetime, sys
    import discord
    from bot.posting.daily import DigestPoster
    from storage import channels, db

    async def main(api_url, token, path, channel_id, day):
        discord.http.Route.BASE = api_url
        client = discord.Client(intents=discord.Intents.none())
        client.db = await db.connect(path)
        await client.login(token)
        row = await channels.get_channel(client.db, int(channel_id))
        print(await DigestPoster(client).deliver(row, datetime.date.fromisoformat(day)), flush=True)

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_kill_9_between_two_messages_then_restart_posts_each_message_once(
    town: Town, library_path: Path
) -> None:
    await town.digest_in(town.papers)
    second_is_slow = town.fake.fail_next(
        "POST", MESSAGES, status=None, delay=1.0, when=lambda req: len(town.posted(town.papers)) == 1
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DELIVER_IN_A_PROCESS, town.fake.api_url, town.fake.token, str(library_path),
        str(town.papers.id), BIG_DAY.isoformat(), cwd=Path(__file__).parent.parent,
    )
    try:
        await town.fake.wait_for(lambda: second_is_slow.hits, timeout=30, what="the second message to be on its way")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    await asyncio.sleep(1.2)  # let the fake finish that request (Discord may accept a message whose sender died)

    resumed = await DigestPoster(town.bot).resume_unfinished()

    assert [o.status for o in resumed] == ["delivered"]
    posted = town.posted(town.papers)
    assert [content_and_embeds(m) for m in posted] == [planned_view(p) for p in await town.expected(BIG_DAY)]
    stored = await outbox.get(town.bot.db, "digest", town.papers.id, BIG_DAY)
    assert [m.message_id for m in stored.messages] == [int(m["id"]) for m in posted]
    # The dead process's second message was accepted (or not): either way it was resent with its nonce.
    nonces = [r.json["nonce"] for r in town.posts_to(town.papers)]
    assert nonces[:2] == [m.nonce for m in stored.messages[:2]] and nonces[-2:] == [m.nonce for m in stored.messages[1:]]


async def test_a_thread_whose_creation_failed_is_started_on_resume(town: Town) -> None:
    row = await town.digest_in(town.papers, style="thread")
    town.fake.fail_next("POST", THREADS, status=503, times=every_try())

    assert (await town.poster.deliver(row, SMALL_DAY)).status == "retry_later"
    assert len(town.posted(town.papers)) == 1 and town.fake.state.threads_of(town.guild) == []

    assert (await DigestPoster(town.bot).deliver(row, SMALL_DAY)).status == "delivered"
    header, = town.posted(town.papers)
    thread, = town.fake.state.threads_of(town.guild)
    assert thread.id == int(header["id"]) and len(town.posted(thread)) == 2


async def test_a_thread_created_but_not_recorded_is_reused(town: Town, monkeypatch) -> None:
    row = await town.digest_in(town.papers, style="thread")
    real_set_thread = outbox.set_thread

    async def crash(conn, delivery_id, thread_id):
        monkeypatch.setattr(outbox, "set_thread", real_set_thread)
        raise RuntimeError("killed before the thread was recorded")

    monkeypatch.setattr(outbox, "set_thread", crash)
    with pytest.raises(RuntimeError):
        await town.poster.deliver(row, SMALL_DAY)

    assert (await DigestPoster(town.bot).deliver(row, SMALL_DAY)).status == "delivered"
    header, = town.posted(town.papers)
    thread, = town.fake.state.threads_of(town.guild)
    assert len(town.posted(thread)) == 2
    assert (await outbox.get(town.bot.db, "digest", town.papers.id, SMALL_DAY)).thread_id == thread.id
    retried = town.fake.requests_to("POST", THREADS)[-1]
    assert (retried.status, retried.response["code"]) == (400, 160004)  # "already created": reused, not duplicated


async def test_a_deleted_thread_abandons_the_rest_of_that_day(town: Town) -> None:
    row = await town.digest_in(town.papers, style="thread")
    town.fake.fail_next("POST", MESSAGES, status=404, code=10003,
                        when=lambda req: req.params["channel_id"] != str(town.papers.id))

    outcome = await town.poster.deliver(row, SMALL_DAY)

    assert (outcome.status, outcome.detail) == ("skipped", "the digest's thread was deleted")
    assert (await channels.get_channel(town.bot.db, town.papers.id)).broken_reason is None
    assert (await town.poster.deliver(row, SMALL_DAY)).status == "already_done"


# ----- fan-out -------------------------------------------------------------------------------------


async def test_a_fan_out_is_paced_under_the_global_limit_without_a_single_429(town: Town) -> None:
    """Fifty channels in flight would burst far past Discord's global limit; the pacer keeps under it."""
    rows = [await town.digest_in(await town.fake.create_text_channel(town.guild, f"papers-{n}")) for n in range(6)]
    town.fake.enable_rate_limits(global_per_second=5, global_window=0.2)  # Discord's 50/s, scaled down to 25/s
    poster = DigestPoster(town.bot, requests_per_second=10)

    outcomes = await poster.deliver_many([(row, DAY, False) for row in rows], concurrency=50)

    assert [o.status for o in outcomes] == ["delivered"] * len(rows)
    assert [r.path for r in town.fake.requests if r.status == 429] == []
    expected = [planned_view(p) for p in await town.expected(DAY)]
    for row in rows:
        assert [content_and_embeds(m) for m in town.posted(row.channel_id)] == expected


# ----- broken channels ------------------------------------------------------------------------------


async def test_a_forbidden_channel_is_marked_broken_and_the_server_told_once(town: Town) -> None:
    papers = await town.digest_in(town.papers)
    robotics = await town.digest_in(town.robotics)
    town.fake.set_channel_forbidden(town.papers)

    outcomes = await town.poster.deliver_many([(papers, DAY, False), (robotics, DAY, False)])

    assert [o.status for o in outcomes] == ["broken", "delivered"]
    reason = "Paperbot lost access to #papers (Missing Permissions)"
    assert outcomes[0].detail == reason
    broken = await channels.get_channel(town.bot.db, town.papers.id)
    assert broken.broken_reason == reason and broken.broken_notified
    notice, = town.posted(town.general)
    assert reason in notice["content"] and "paused" in notice["content"]
    assert town.posts_to(town.general)[0].json["allowed_mentions"] == {"parse": []}
    assert len(town.posted(town.robotics)) == len(await town.expected(DAY))

    tried = len(town.posts_to(town.papers))
    later = await DigestPoster(town.bot).deliver_many(
        [(papers, DAY, False), (papers, BIG_DAY, False), (robotics, DAY, False)]
    )
    assert [o.status for o in later] == ["broken", "broken", "already_done"]
    assert await DigestPoster(town.bot).resume_unfinished() != []  # the broken one stays pending, untouched
    assert len(town.posts_to(town.papers)) == tried  # Discord is not asked again
    assert len(town.posted(town.general)) == 1
    assert town.fake.state.dm_channels == {}


@pytest.mark.parametrize("town", [{"system_send": False}], indirect=True)
async def test_the_admin_is_told_by_dm_when_the_system_channel_is_closed(town: Town) -> None:
    row = await town.digest_in(town.papers)
    await town.fake.delete_channel(town.papers)
    await town.fake.wait_for(lambda: town.bot.get_channel(town.papers.id) is None, what="CHANNEL_DELETE")

    for day in (DAY, BIG_DAY):
        outcome = await town.poster.deliver(row, day)
        assert outcome.status == "broken"
        assert outcome.detail == f"Paperbot can no longer find channel {town.papers.id} (Unknown Channel)"

    assert town.posted(town.general) == []
    dm, = town.posted(town.fake.state.dm_channel(town.admin))
    assert "Research" in dm["content"] and "can no longer find" in dm["content"]


async def test_saving_a_broken_channel_again_resumes_its_digest(town: Town) -> None:
    row = await town.digest_in(town.papers)
    fault = town.fake.set_channel_forbidden(town.papers)
    assert (await town.poster.deliver(row, DAY)).status == "broken"

    town.fake.faults.remove(fault)  # the admin fixed the permissions ...
    await channels.save_channel(town.bot.db, row)  # ... and ran the setup again

    assert [o.status for o in await town.poster.resume_unfinished()] == ["delivered"]
    assert len(town.posted(town.papers)) == len(await town.expected(DAY))


# ----- many channels ----------------------------------------------------------------------------------


async def test_deliver_many_keeps_each_channels_days_in_order(town: Town) -> None:
    rows = [await town.digest_in(c) for c in (town.papers, town.robotics)]
    items = [(row, day, day != DAY) for day in (SMALL_DAY, BIG_DAY, DAY) for row in rows]
    in_flight, most = 0, 0
    real_deliver = town.poster.deliver

    async def counting(*args, **kwargs):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await real_deliver(*args, **kwargs)
        finally:
            in_flight -= 1

    town.poster.deliver = counting
    outcomes = await town.poster.deliver_many(items, concurrency=1)

    assert [(o.channel_id, o.day, o.status) for o in outcomes] == [
        (row.channel_id, day, "delivered") for row, day, _ in items
    ]
    assert most == 1
    for channel in (town.papers, town.robotics):
        headers = [m["content"] for m in town.posted(channel) if m["content"]]
        assert [h.split()[3] for h in headers] == ["2024-11-07", "2025-03-21", "2025-02-20"]


# ----- exactly once beyond Discord's nonce window ------------------------------------------------


async def test_a_message_created_but_answered_503_is_not_posted_twice_after_the_nonce_window(town: Town) -> None:
    row = await town.digest_in(town.papers)
    # The 2nd message is created, but every answer (the send and its immediate retries) is a 503.
    town.fake.answer_lost("POST", MESSAGES, status=503, channel_id=town.papers.id, times=every_try(),
                          when=lambda req: len(town.posted(town.papers)) >= 1)

    first = await town.poster.deliver(row, BIG_DAY)

    assert (first.status, first.sent) == ("retry_later", 1)
    assert len(town.posted(town.papers)) == 2  # Discord has the 2nd message; the ledger does not
    retries = town.posts_to(town.papers)[1:]
    assert len(retries) == every_try() and len({r.json["nonce"] for r in retries}) == 1  # same nonce: one copy
    town.fake.forget_nonces()  # hours later: Discord no longer remembers the nonce

    [resumed] = await DigestPoster(town.bot).resume_unfinished()

    assert resumed.status == "delivered"
    posted = town.posted(town.papers)
    assert [content_and_embeds(m) for m in posted] == [planned_view(p) for p in await town.expected(BIG_DAY)]
    stored = await outbox.get(town.bot.db, "digest", town.papers.id, BIG_DAY)
    assert [m.message_id for m in stored.messages] == [int(m["id"]) for m in posted]


async def test_a_channel_whose_history_cannot_be_read_still_gets_its_digest(town: Town) -> None:
    """Without Read Message History the look before resending fails: the message is sent (logged), not lost."""
    row = await town.digest_in(town.papers)
    town.fake.answer_lost("POST", MESSAGES, status=503, channel_id=town.papers.id, times=every_try())
    assert (await town.poster.deliver(row, SMALL_DAY)).status == "retry_later"
    town.fake.set_channel_permissions(town.papers, town.guild.id, deny=Perm.READ_MESSAGE_HISTORY)
    town.fake.forget_nonces()

    assert (await DigestPoster(town.bot).deliver(row, SMALL_DAY)).status == "delivered"
    assert town.fake.requests_to("GET", MESSAGES)[-1].status == 403


async def test_a_lost_message_is_found_after_later_messages_were_posted_in_the_channel(town: Town) -> None:
    """The seed-7 chaos finding: the look started after the newest recorded message, so a later day's
    digest (or a roundup) posted in between hid the lost one, and it was posted twice."""
    row = await town.digest_in(town.papers)
    town.fake.answer_lost("POST", MESSAGES, status=503, channel_id=town.papers.id, times=every_try())
    assert (await town.poster.deliver(row, SMALL_DAY)).status == "retry_later"  # created, answer lost
    assert (await town.poster.deliver(row, DAY)).status == "delivered"  # the next day goes out meanwhile
    town.fake.forget_nonces()

    assert (await DigestPoster(town.bot).deliver(row, SMALL_DAY)).status == "delivered"

    posted = town.posted(town.papers)
    assert len(posted) == 1 + 2  # SMALL_DAY's one message, once, and DAY's two
    assert [content_and_embeds(m) for m in posted[:1]] == [planned_view(p) for p in await town.expected(SMALL_DAY)]
