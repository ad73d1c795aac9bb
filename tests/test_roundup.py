"""The weekly roundup: when it is due, the /digest roundup command, and posting it exactly once,
end to end on the fake Discord with the real corpus and a controlled clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from bot import render
from bot.posting.poster import RETRY_DELAYS
from bot.posting.roundups import RoundupPoster
from bot.scheduler import last_roundup_day, roundup_trigger
from storage import channels, outbox, votes
from storage.channels import DigestChannel
from tests.world import EPHEMERAL, World, assert_private_error, buttons, seen

FRIDAY = date(2025, 3, 21)  # 38 papers that day; the week before it has more
SET_UP = datetime(2025, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def channel(zone: str = "Europe/Paris", weekday: int = 4, at: time = time(17, 0), **extra) -> DigestChannel:
    return DigestChannel(channel_id=1, guild_id=10, post_time=time(9), timezone=zone, roundup_weekday=weekday,
                         roundup_time=at, roundup_since=extra.pop("since", SET_UP), **extra)


async def with_roundup(world: World, weekday: int = 4, at: time = time(18, 0), **settings) -> DigestChannel:
    row = DigestChannel(channel_id=world.channel.id, guild_id=world.guild.id, post_time=time(9), timezone="UTC",
                        **settings)
    await channels.save_channel(world.bot.db, row)
    await channels.set_roundup(world.bot.db, row.channel_id, weekday, at, since=SET_UP)
    return await channels.get_channel(world.bot.db, row.channel_id)


def posted(world: World) -> list[dict]:
    return seen(world.fake.messages_in(world.channel))


# ----- when ------------------------------------------------------------------------------------


def test_the_owed_roundup_is_the_latest_one_in_the_channel_zone() -> None:
    row = channel()  # Fridays 17:00 Paris (16:00 UTC in winter, 15:00 in summer)
    assert last_roundup_day(row, utc(2025, 3, 21, 15, 59)) == date(2025, 3, 14)  # 16:59 local: not yet
    assert last_roundup_day(row, utc(2025, 3, 21, 16, 0)) == FRIDAY
    assert last_roundup_day(row, utc(2025, 3, 27, 23, 0)) == FRIDAY  # the next Thursday: still that one
    assert last_roundup_day(row, utc(2025, 3, 28, 16, 0)) == date(2025, 3, 28)
    assert last_roundup_day(channel("Asia/Tokyo", at=time(8)), utc(2025, 3, 20, 23, 0)) == FRIDAY  # Friday 08:00 JST


def test_no_roundup_is_owed_when_off_or_before_it_was_turned_on() -> None:
    assert last_roundup_day(channel(weekday=None, at=None), utc(2025, 3, 21, 20)) is None
    turned_on = channel(since=utc(2025, 3, 21, 17))  # an hour after that Friday's roundup time
    assert last_roundup_day(turned_on, utc(2025, 3, 25)) is None
    assert last_roundup_day(turned_on, utc(2025, 3, 28, 16)) == date(2025, 3, 28)


def test_the_roundup_fires_weekly_at_local_time_across_a_dst_change() -> None:
    trigger, now, fired = roundup_trigger(channel()), utc(2025, 3, 20), []
    for _ in range(3):
        fired.append(trigger.get_next_fire_time(None, now))
        now = fired[-1] + timedelta(seconds=1)
    assert [f.date() for f in fired] == [date(2025, 3, 21), date(2025, 3, 28), date(2025, 4, 4)]
    assert [f.astimezone(UTC).hour for f in fired] == [16, 16, 15]  # Paris goes to summer time on 03-30
    assert all((f.hour, f.minute) == (17, 0) for f in fired)


# ----- the command -------------------------------------------------------------------------------


async def test_admin_turns_the_roundup_on_and_off(world: World) -> None:
    await world.command("digest", "setup", user=world.owner, channel=world.channel.id, timezone="Europe/Paris")
    _, response = await world.command("digest", "roundup", user=world.owner, channel=world.channel.id,
                                      weekday="friday", time="18:30")
    assert response["data"]["flags"] & EPHEMERAL
    assert "every Friday at 18:30 Europe/Paris" in response["data"]["content"] and "<t:" in response["data"]["content"]
    row = await channels.get_channel(world.bot.db, world.channel.id)
    assert (row.roundup_weekday, row.roundup_time) == (4, time(18, 30))
    fires = world.bot.daily.next_roundup_time(world.channel.id)
    assert (fires.weekday(), fires.hour, fires.minute, str(fires.tzinfo)) == (4, 18, 30, "Europe/Paris")

    _, response = await world.command("digest", "status", user=world.owner)
    assert "Weekly roundup: Fridays at 18:30" in response["data"]["embeds"][0]["fields"][0]["value"]

    _, response = await world.command("digest", "roundup", user=world.owner, channel=world.channel.id, weekday="off")
    assert "no longer get the weekly roundup" in response["data"]["content"]
    assert world.bot.daily.next_roundup_time(world.channel.id) is None
    assert world.bot.daily.next_post_time(world.channel.id) is not None  # the daily digest goes on
    _, response = await world.command("digest", "roundup", user=world.owner, channel=world.channel.id, weekday="off")
    assert_private_error(response, "has no weekly roundup")


async def test_roundup_needs_a_digest_channel_and_an_admin(world: World) -> None:
    _, response = await world.command("digest", "roundup", user=world.owner, channel=world.channel.id,
                                      weekday="monday")
    assert_private_error(response, "/digest setup")
    _, response = await world.command("digest", "roundup", user=world.alice, channel=world.channel.id,
                                      weekday="monday")
    assert_private_error(response, "Manage Server")
    await world.command("digest", "setup", user=world.owner, channel=world.channel.id)
    _, response = await world.command("digest", "roundup", user=world.owner, channel=world.channel.id,
                                      weekday="monday", time="noon")
    assert_private_error(response, "24-hour time")


# ----- posting -----------------------------------------------------------------------------------


async def test_the_roundup_shows_the_weeks_top_papers_and_busiest_tags(world: World) -> None:
    await with_roundup(world)
    week = await votes.ranked_papers(world.bot.db, guild_id=world.guild.id, since=date(2025, 3, 15), until=FRIDAY,
                                     voted_only=False, limit=500)
    favourite = week.papers[-1].paper  # the oldest of the week, ranked first by its votes
    for user in (1, 2):
        await votes.toggle_vote(world.bot.db, favourite.arxiv_id, user, guild_id=world.guild.id)

    await world.bot.daily.post_roundups_due(utc(2025, 3, 21, 18, 5))

    (message,) = posted(world)
    (embed,) = message["embeds"]
    assert embed["title"] == "🏆 The week's top papers · 2025-03-15 – 2025-03-21"
    entries = embed["description"].split("\n\n")
    assert favourite.title[:30] in entries[0] and "▲ 2 votes" in entries[0]
    assert all("▲ 0 votes" in entry for entry in entries[1:]) and len(entries) == 10
    tags = await votes.busiest_tags(world.bot.db, date(2025, 3, 15), FRIDAY)
    assert embed["fields"][0]["name"] == "Busiest tags"
    assert embed["fields"][0]["value"].startswith(f"{tags[0].name} ({tags[0].count}) · {tags[1].name}")
    assert embed["footer"]["text"].startswith(f"{week.total} papers this week")
    assert list(buttons(message))[:2] == ["#1 ▲ 2", "#2 ▲ 0"]
    request = [r for r in world.fake.requests_to("POST", "/channels/{channel_id}/messages")][-1]
    assert request.json["allowed_mentions"] == {"parse": []} and request.json["nonce"].startswith("po")

    await world.fake.click_button(message, buttons(message)["#2 ▲ 0"]["custom_id"], world.alice)
    await world.fake.wait_for(lambda: "#2 ▲ 1" in buttons(world.fake.state.messages[int(message["id"])]),
                              what="the roundup's vote button to count alice's vote")


async def test_each_weeks_roundup_is_posted_once_and_a_missed_one_is_caught_up(world: World) -> None:
    await with_roundup(world)
    daily = world.bot.daily
    await daily.post_roundups_due(utc(2025, 3, 21, 18, 0))
    await daily.post_roundup(world.channel.id, utc(2025, 3, 21, 18, 0))  # the job, after a restart's catch-up
    await daily.post_roundups_due(utc(2025, 3, 27, 12, 0))  # a restart later in the week
    assert len(posted(world)) == 1

    await daily.post_roundups_due(utc(2025, 3, 29, 9, 0))  # the bot was down at Friday 18:00: caught up Saturday
    assert len(posted(world)) == 2
    assert "2025-03-22 – 2025-03-28" in posted(world)[1]["embeds"][0]["title"]
    ledger = await outbox.get(world.bot.db, "roundup", world.channel.id, date(2025, 3, 28))
    assert ledger.messages[0].message_id == int(posted(world)[1]["id"])


async def test_a_planned_roundup_is_sent_as_planned_after_a_crash(world: World) -> None:
    row = await with_roundup(world)
    poster = RoundupPoster(world.bot)
    planned = await poster.render(row, FRIDAY)
    stored = (await outbox.plan(world.bot.db, "roundup", row.channel_id, FRIDAY,
                                [(render.payload_to_dict(planned), False)])).messages[0]
    # a vote after planning changes nothing
    await votes.toggle_vote(world.bot.db, planned.votes[4].arxiv_id, 1, guild_id=world.guild.id)

    assert await poster.post(row, FRIDAY) == "posted"
    (message,) = posted(world)
    assert message["embeds"] == stored.payload["embeds"] and message["nonce"] == stored.nonce
    assert await poster.post(row, FRIDAY) == "already_done"


async def test_a_roundup_discord_rejects_is_skipped_for_its_week_with_the_reason(world: World) -> None:
    row = await with_roundup(world)
    poster = RoundupPoster(world.bot)
    world.fake.fail_next("POST", "/channels/{channel_id}/messages", status=400, code=50035, channel_id=world.channel.id)

    assert await poster.post(row, FRIDAY) == "refused"
    assert await poster.post(row, FRIDAY) == "already_done"  # not sent again: it would be refused again
    assert posted(world) == []
    ledger = await outbox.get(world.bot.db, "roundup", world.channel.id, FRIDAY)
    assert ledger.messages[0].message_id is None and "Discord rejected it" in ledger.reason

    world.fake.fail_next("POST", "/channels/{channel_id}/messages", status=503, channel_id=world.channel.id,
                         times=1 + len(RETRY_DELAYS))  # the immediate retries fail too
    next_friday = FRIDAY + timedelta(days=7)
    assert await poster.post(row, next_friday) == "retry_later"  # a server error is retried, not skipped
    assert await poster.post(row, next_friday) == "posted"


async def test_a_week_without_papers_gets_a_short_note_and_channel_tags_are_kept(world: World) -> None:
    await with_roundup(world, weekday=0, at=time(8), tags=["Robotics"])
    await world.bot.daily.post_roundups_due(utc(2030, 1, 7, 9))  # a Monday long after the library's last digest
    (note,) = posted(world)
    assert note["content"] == "🏆 Weekly roundup, 2030-01-01 – 2030-01-07: no new papers this week."
    assert not note["embeds"] and not note["components"]

    await world.bot.daily.post_roundups_due(utc(2025, 3, 24, 9))  # Monday after FRIDAY
    embed = posted(world)[1]["embeds"][0]
    week = await votes.ranked_papers(world.bot.db, guild_id=world.guild.id,
                                     since=date(2025, 3, 18), until=date(2025, 3, 24),
                                     tags=["Robotics"], voted_only=False)
    assert embed["footer"]["text"].startswith(f"{week.total} papers this week") and week.total > 1
    assert f"Robotics ({week.total})" in embed["fields"][0]["value"]  # every paper shown is a robotics one
