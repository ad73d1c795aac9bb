"""/subscribe, /unsubscribe and /subscriptions end to end on the fake Discord, in a server and in DMs."""

from __future__ import annotations

import json

import pytest

from storage import subscriptions as subs
from storage._rows import fetch_all
from tests.world import EPHEMERAL, World, assert_private_error


def content(response: dict) -> str:
    assert response["type"] == 4 and response["data"]["flags"] & EPHEMERAL, response
    assert response["data"]["allowed_mentions"] == {"parse": []}
    return response["data"]["content"]


async def in_dm(world: World, name: str, subcommand: str | None = None, **options):
    handle = await world.fake.send_slash_command(None, None, world.alice, name, subcommand=subcommand, options=options)
    return handle, await handle.response()


async def test_subscribe_list_and_unsubscribe(world: World) -> None:
    _, response = await world.command("subscribe", "tag", tag="robotics")
    assert "Subscribed to tag **Robotics**" in content(response)
    _, response = await world.command("subscribe", "keyword", keyword='"video diffusion"')
    assert "video diffusion" in content(response)
    rows = await subs.list_subscriptions(world.bot.db, world.alice.id)
    assert [(s.kind, s.value, s.guild_id) for s in rows] == [
        ("tag", "Robotics", world.guild.id), ("keyword", '"video diffusion"', world.guild.id)]
    _, response = await world.command("subscriptions", "list")
    text = content(response)
    assert "2 of 25" in text and "Robotics" in text and "active" in text

    choices = await world.autocomplete("unsubscribe", "subscription", "robo")
    assert [c["value"] for c in choices] == ["tag:Robotics"]
    _, response = await world.command("unsubscribe", subscription="tag:Robotics")
    assert "Unsubscribed from tag **Robotics**" in content(response)
    _, response = await world.command("unsubscribe", subscription="tag:Robotics")
    assert_private_error(response, "not subscribed", "/subscriptions list")


async def test_tag_autocomplete_uses_stored_tags(world: World) -> None:
    choices = await world.autocomplete("subscribe", "tag", "robo", subcommand="tag")
    assert choices and choices[0]["value"] == "Robotics"


@pytest.mark.parametrize(
    ("subcommand", "options", "fragments"),
    [
        ("tag", {"tag": "Robotcs"}, ("Robotcs", "did you mean", "Robotics")),
        ("keyword", {"keyword": "-video"}, ("cannot be a keyword", "leave out")),
        ("keyword", {"keyword": "!!!"}, ("cannot be a keyword", "no words")),
    ],
)
async def test_bad_subscriptions_are_explained(world: World, subcommand, options, fragments) -> None:
    _, response = await world.command("subscribe", subcommand, **options)
    assert_private_error(response, *fragments)
    assert await subs.list_subscriptions(world.bot.db, world.alice.id) == []


async def test_duplicates_and_the_cap(world: World) -> None:
    world.bot.settings.subscriptions.max_per_user = 2
    await world.command("subscribe", "tag", tag="Robotics")
    _, response = await world.command("subscribe", "tag", tag="ROBOTICS")
    assert_private_error(response, "already follow", "Robotics")
    await world.command("subscribe", "keyword", keyword="agents")
    _, response = await world.command("subscribe", "keyword", keyword="llm")
    assert_private_error(response, "already have 2 subscriptions", "/unsubscribe")
    assert len(await subs.list_subscriptions(world.bot.db, world.alice.id)) == 2


async def test_pause_resume_clear_and_export_in_dms(world: World) -> None:
    _, response = await in_dm(world, "subscriptions", "pause")
    assert_private_error(response, "no subscriptions to pause")
    await world.command("subscribe", "tag", tag="Robotics")
    await world.command("subscribe", "keyword", keyword="agents")

    _, response = await in_dm(world, "subscriptions", "pause")
    assert "Paused" in content(response)
    assert (await subs.get_subscriber(world.bot.db, world.alice.id)).paused
    _, response = await in_dm(world, "subscriptions", "list")
    assert "paused" in content(response)
    _, response = await in_dm(world, "subscriptions", "resume")
    assert "Resumed" in content(response)
    assert not (await subs.get_subscriber(world.bot.db, world.alice.id)).paused

    handle, response = await in_dm(world, "subscriptions", "export")
    assert "2 subscriptions" in content(response)
    attachment = handle.original["attachments"][0]
    assert attachment["filename"] == "paperbot-subscriptions.json"
    exported = json.loads(world.fake.state.attachments[int(attachment["id"])])
    assert [(s["kind"], s["value"]) for s in exported["subscriptions"]] == [("tag", "Robotics"), ("keyword", "agents")]

    await world.command("subscribe", "tag", tag="Robotics", user=world.bob)
    _, response = await in_dm(world, "subscriptions", "clear")
    assert "Deleted 2 subscriptions" in content(response)
    for table in ("subscribers", "subscriptions", "outbox"):
        rows = await fetch_all(world.bot.db, f"SELECT count(*) FROM {table} WHERE user_id = ?", (world.alice.id,))
        assert rows[0][0] == 0
    assert len(await subs.list_subscriptions(world.bot.db, world.bob.id)) == 1


@pytest.mark.parametrize(("subcommand", "options"), [("tag", {"tag": "Robotics"}), ("keyword", {"keyword": "agents"})])
async def test_a_subscription_made_in_a_dm_is_refused_with_the_reason(world: World, subcommand, options) -> None:
    """A DM has no server, and DMs go only to members of a server where they subscribed: it would never deliver."""
    _, response = await in_dm(world, "subscribe", subcommand, **options)
    assert_private_error(response, "from inside a server", "belongs to no server")
    assert await subs.list_subscriptions(world.bot.db, world.alice.id) == []
    assert await subs.get_subscriber(world.bot.db, world.alice.id) is None


async def test_closed_dms_are_explained_once_and_the_mark_cleared(world: World) -> None:
    await world.command("subscribe", "tag", tag="Robotics")
    await subs.mark_dm_closed(world.bot.db, world.alice.id)
    _, response = await world.command("subscriptions", "list")
    assert "Privacy Settings" in content(response) and "Direct Messages" in content(response)
    assert not (await subs.get_subscriber(world.bot.db, world.alice.id)).dm_closed
    _, response = await world.command("subscriptions", "list")
    assert "Privacy" not in content(response)


async def test_clear_deletes_the_members_votes_too(world: World) -> None:
    from storage import votes
    from storage.papers import latest_day, papers_on_day

    paper = (await papers_on_day(world.bot.db, await latest_day(world.bot.db)))[0]
    await votes.toggle_vote(world.bot.db, paper.arxiv_id, world.alice.id, guild_id=world.guild.id)
    await votes.toggle_vote(world.bot.db, paper.arxiv_id, world.alice.id, guild_id=None)
    await votes.toggle_vote(world.bot.db, paper.arxiv_id, world.bob.id, guild_id=world.guild.id)
    await world.command("subscribe", "tag", tag="Robotics")
    _, response = await world.command("subscriptions", "clear")
    assert "your votes" in content(response)
    rows = await fetch_all(world.bot.db, "SELECT user_id FROM votes")
    assert [row[0] for row in rows] == [world.bob.id]


async def test_a_keyword_costing_a_stall_every_day_is_refused_when_made(world: World) -> None:
    _, response = await world.command("subscribe", "keyword", keyword="a* b* c* d* e* f*")
    assert_private_error(response, "too short a prefix")
    assert await subs.list_subscriptions(world.bot.db, world.alice.id) == []


@pytest.mark.parametrize("closed", [False, True])
async def test_a_long_list_of_subscriptions_fits_and_says_how_many_are_not_shown(world: World, closed: bool) -> None:
    for n in range(25):  # the default cap, each keyword as long as allowed
        await subs.add_subscription(world.bot.db, world.alice.id, "keyword", f"k{n:02d}" + "x" * 87,
                                    guild_id=world.guild.id, max_per_user=25)
    if closed:
        await subs.mark_dm_closed(world.bot.db, world.alice.id)
    _, response = await world.command("subscriptions", "list")
    text = content(response)
    assert len(text) <= 2000
    shown = text.count("• keyword")
    assert 0 < shown < 25 and f"… and {25 - shown} more: `/subscriptions export`" in text
    assert ("Privacy Settings" in text) == closed
