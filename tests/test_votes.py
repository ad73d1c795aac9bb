"""Vote buttons and /papers top, end to end: the real Paperbot client on the fake Discord.

A digest is posted through the delivery ledger, members click its vote buttons, and every
assertion reads what reached the fake Discord.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bot.posting.daily import DigestPoster
from storage import channels
from storage.channels import DigestChannel
from storage.papers import papers_on_day
from testing import FakeDiscord, running_bot
from tests.world import EPHEMERAL, QuickBot, World, assert_private_error, buttons, first_embed, seen, settings_for

BIG_DAY = dt.date(2025, 3, 21)  # 38 papers: several compact messages
SMALL_DAY = dt.date(2024, 11, 7)  # 2 papers


async def post_digest(world: World, day: dt.date, style: str = "compact") -> list[dict]:
    row = DigestChannel(channel_id=world.channel.id, guild_id=world.guild.id, post_time=dt.time(9, 0),
                        timezone="UTC", style=style)
    await channels.save_channel(world.bot.db, row)
    outcome = await DigestPoster(world.bot).deliver(await channels.get_channel(world.bot.db, row.channel_id), day)
    assert outcome.status == "delivered"
    return seen(world.fake.messages_in(world.channel))


async def click(world: World, message: dict, label: str, user) -> dict:
    handle = await world.fake.click_button(message, buttons(message)[label]["custom_id"], user)
    return await handle.response()


async def test_every_paper_of_a_compact_digest_gets_a_numbered_vote_button(world: World) -> None:
    posted = await post_digest(world, BIG_DAY)
    day_papers = await papers_on_day(world.bot.db, BIG_DAY)
    labels = [label for message in posted for label in buttons(message)] if posted else []
    assert labels == [f"#{n} ▲ 0" for n in range(1, len(day_papers) + 1)]
    for message in posted:
        rows = message["components"]
        assert len(rows) <= 5 and all(len(row["components"]) <= 5 for row in rows)
    custom_ids = [b["custom_id"] for m in posted for b in buttons(m).values()]
    assert custom_ids[0] == f"paperbot:vote:1:{day_papers[0].arxiv_id}"


async def test_a_click_counts_a_vote_and_a_second_click_takes_it_back(world: World) -> None:
    header, *_ = await post_digest(world, SMALL_DAY)
    before = len(world.fake.messages_in(world.channel))

    voted = await click(world, header, "#2 ▲ 0", world.alice)
    assert voted["type"] == 7  # the message itself is updated: nothing new in the channel
    updated = world.fake.state.messages[int(header["id"])]
    assert list(buttons(updated)) == ["#1 ▲ 0", "#2 ▲ 1"]
    assert updated["embeds"] == header["embeds"] and seen([updated])[0]["content"] == header["content"]

    await click(world, updated, "#2 ▲ 1", world.bob)
    assert list(buttons(updated)) == ["#1 ▲ 0", "#2 ▲ 2"]
    await click(world, updated, "#2 ▲ 2", world.alice)  # alice again: her vote is taken back
    assert list(buttons(updated)) == ["#1 ▲ 0", "#2 ▲ 1"]
    assert len(world.fake.messages_in(world.channel)) == before


async def test_thread_digest_papers_each_get_one_vote_button(world: World) -> None:
    posted = await post_digest(world, SMALL_DAY, style="thread")
    thread_messages = [m for m in world.fake.state.messages.values()
                       if m["channel_id"] != str(world.channel.id) and m.get("embeds")]
    assert not posted[0]["components"]  # the header carries no paper
    assert [list(buttons(m)) for m in thread_messages] == [["▲ 0", "Related"], ["▲ 0", "Related"]]
    await click(world, thread_messages[0], "▲ 0", world.alice)
    assert list(buttons(world.fake.state.messages[int(thread_messages[0]["id"])])) == ["▲ 1", "Related"]


async def test_the_related_button_of_a_thread_post_answers_privately(world: World) -> None:
    await post_digest(world, SMALL_DAY, style="thread")
    post = next(m for m in world.fake.state.messages.values() if m["channel_id"] != str(world.channel.id) and m.get("embeds"))
    def public() -> list[dict]:
        return [m for m in world.fake.state.messages.values() if not m.get("flags", 0) & EPHEMERAL]

    before = public()
    response = await click(world, post, "Related", world.bob)
    assert response["type"] == 4 and response["data"]["flags"] & EPHEMERAL
    embed = first_embed(response)
    assert embed["title"].startswith("Related: ")
    lines = embed["description"].splitlines()
    assert 1 <= len(lines) <= 5 and all(line.startswith("• [") for line in lines)
    assert buttons(post)["Related"]["custom_id"].startswith("paperbot:related:")
    assert public() == before  # nothing posted in the channel or thread


async def test_buttons_keep_working_after_a_restart(fake_discord: FakeDiscord, library_path: Path) -> None:
    guild = fake_discord.add_guild("Research", channels=("papers",))
    alice = fake_discord.add_user("alice")
    fake_discord.add_member(guild, alice)
    channel = fake_discord.state.channel(guild.channel_ids[0])
    settings = settings_for(library_path)
    async with running_bot(fake_discord, lambda: QuickBot(settings, guild_ready_timeout=0.01)) as bot:
        row = DigestChannel(channel_id=channel.id, guild_id=guild.id, post_time=dt.time(9, 0), timezone="UTC")
        await channels.save_channel(bot.db, row)
        await DigestPoster(bot).deliver(row, SMALL_DAY)
    (header,) = fake_discord.messages_in(channel)
    async with running_bot(fake_discord, lambda: QuickBot(settings, guild_ready_timeout=0.01)):
        handle = await fake_discord.click_button(header, buttons(header)["#1 ▲ 0"]["custom_id"], alice)
        assert (await handle.response())["type"] == 7
    assert list(buttons(fake_discord.state.messages[int(header["id"])])) == ["#1 ▲ 1", "#2 ▲ 0"]


async def test_a_vote_for_a_paper_gone_from_the_library_is_refused_privately(world: World) -> None:
    header, *_ = await post_digest(world, SMALL_DAY)
    gone = dict(header, components=[{"type": 1, "components": [
        {"type": 2, "style": 2, "label": "#1 ▲ 0", "custom_id": "paperbot:vote:1:9999.99999"}]}])
    world.fake.state.messages[int(header["id"])] = gone
    response = await click(world, gone, "#1 ▲ 0", world.alice)
    assert_private_error(response, "no longer in the library")


async def test_top_lists_the_most_voted_papers_with_their_votes(world: World) -> None:
    posted = await post_digest(world, BIG_DAY)
    first = posted[0]
    await click(world, first, "#3 ▲ 0", world.alice)
    await click(world, world.fake.state.messages[int(first["id"])], "#3 ▲ 1", world.bob)
    await click(world, world.fake.state.messages[int(first["id"])], "#1 ▲ 0", world.bob)
    day_papers = await papers_on_day(world.bot.db, BIG_DAY)

    _, response = await world.command("papers", "top", period="all")
    assert response["type"] == 4 and not response["data"].get("flags", 0) & EPHEMERAL
    assert response["data"]["allowed_mentions"] == {"parse": []}
    embed = first_embed(response)
    entries = embed["description"].split("\n\n")
    assert len(entries) == 2
    assert day_papers[2].title[:30] in entries[0] and "▲ 2 votes" in entries[0]
    assert day_papers[0].title[:30] in entries[1] and "▲ 1 vote" in entries[1]
    assert embed["footer"]["text"] == "Page 1 of 1 · 2 papers with votes"


async def test_top_of_a_period_without_votes_says_how_to_vote(world: World) -> None:
    posted = await post_digest(world, BIG_DAY)  # long before the library's last week
    await click(world, posted[0], "#1 ▲ 0", world.alice)
    _, response = await world.command("papers", "top")
    assert_private_error(response, "No paper from the last week has a vote yet", "▲")
    _, response = await world.command("papers", "top", period="year")
    assert "▲ 1 vote" in first_embed(response)["description"]


async def test_votes_cast_in_another_server_do_not_rank_papers_here(world: World) -> None:
    other = world.fake.add_guild("Elsewhere", channels=("papers",))
    world.fake.add_member(other, world.bob)
    elsewhere = world.fake.state.channel(other.channel_ids[0])
    row = DigestChannel(channel_id=elsewhere.id, guild_id=other.id, post_time=dt.time(9, 0), timezone="UTC")
    await channels.save_channel(world.bot.db, row)
    assert (await DigestPoster(world.bot).deliver(row, SMALL_DAY)).status == "delivered"
    (header,) = world.fake.messages_in(elsewhere)
    await click(world, header, "#1 ▲ 0", world.bob)  # a vote in the other server
    assert list(buttons(world.fake.state.messages[int(header["id"])])) == ["#1 ▲ 1", "#2 ▲ 0"]

    here, *_ = await post_digest(world, SMALL_DAY)
    assert list(buttons(here)) == ["#1 ▲ 0", "#2 ▲ 0"]
    _, response = await world.command("papers", "top", period="all")
    assert_private_error(response, "No paper from all time has a vote yet")
    voted = await click(world, here, "#1 ▲ 0", world.alice)  # this server's count starts at its own votes
    assert voted["type"] == 7
    assert list(buttons(world.fake.state.messages[int(here["id"])])) == ["#1 ▲ 1", "#2 ▲ 0"]
    _, response = await world.command("papers", "top", period="all")
    assert "▲ 1 vote" in first_embed(response)["description"]
