"""/digest admin commands and scheduled posting, end to end on the fake Discord with a controlled clock."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

import pytest

from storage import channels, outbox
from storage.channels import DigestChannel
from testing import Perm
from tests.world import EPHEMERAL, World, assert_private_error, seen


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def setup_channel(world: World, **options) -> dict:
    options.setdefault("channel", world.channel.id)
    _, response = await world.command("digest", "setup", user=world.owner, **options)
    return response


def posted(world: World, channel_id: int | None = None) -> list[dict]:
    return seen([m for m in world.fake.messages_in(channel_id or world.channel.id)
                 if m["author"]["id"] == str(world.bot.user.id)])


async def test_admin_sets_up_a_channel_and_it_is_scheduled(world: World) -> None:
    response = await setup_channel(world, time="07:30", timezone="Asia/Tokyo", tags="Robotics, computer vision")
    assert response["data"]["flags"] & EPHEMERAL
    assert "07:30 Asia/Tokyo" in response["data"]["content"] and "<t:" in response["data"]["content"]
    row = await channels.get_channel(world.bot.db, world.channel.id)
    assert (row.post_time.hour, row.post_time.minute, row.timezone) == (7, 30, "Asia/Tokyo")
    assert row.tags == ["Robotics", "Computer Vision"]
    next_post = world.bot.daily.next_post_time(world.channel.id)
    assert (next_post.astimezone(UTC).hour, next_post.minute) == (22, 30)  # 07:30 JST is 22:30 UTC


async def test_the_commands_are_hidden_from_non_admins_by_default(world: World) -> None:
    digest = world.fake.commands[None]["digest"]
    assert int(digest["default_member_permissions"]) == Perm.MANAGE_GUILD
    assert digest.get("contexts") in (None, [0]) or digest.get("dm_permission") is False


async def test_non_admins_are_refused_and_nothing_changes(world: World) -> None:
    _, response = await world.command("digest", "setup", user=world.alice, channel=world.channel.id)
    assert_private_error(response, "Manage Server")
    assert await channels.get_channel(world.bot.db, world.channel.id) is None
    _, response = await world.command("digest", "post", user=world.alice)
    assert_private_error(response, "Manage Server")


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ({"timezone": "Mars/Olympus"}, ("not a time zone", "Europe/Berlin")),
        ({"time": "25:99"}, ("24-hour time",)),
        ({"time": "nine"}, ("24-hour time",)),
        ({"tags": "Robotcs"}, ("Robotcs", "did you mean", "Robotics")),
        ({"tags": ", ".join(["Robotics"] * 26)}, ("at most 25 tags", "you gave 26")),
    ],
)
async def test_bad_settings_are_clear_errors(world: World, options: dict, fragments: tuple[str, ...]) -> None:
    assert_private_error(await setup_channel(world, **options), *fragments)
    assert await channels.get_channel(world.bot.db, world.channel.id) is None


async def test_timezone_autocomplete(world: World) -> None:
    handle = await world.fake.send_autocomplete(
        world.guild, world.channel, world.owner, "digest", subcommand="setup", focused="timezone", value="berl"
    )
    choices = (await handle.response())["data"]["choices"]
    assert [c["value"] for c in choices] == ["Europe/Berlin"]


async def test_missing_bot_permission_is_named(world: World) -> None:
    everyone = world.fake.state.guild(world.guild.id).everyone
    await world.fake.change_channel_permissions(world.channel, everyone, deny=Perm.EMBED_LINKS)
    await world.fake.wait_for(
        lambda: not world.bot.get_channel(world.channel.id).permissions_for(world.bot.get_guild(world.guild.id).me).embed_links,
        what="the permission change to reach the bot",
    )
    assert_private_error(await setup_channel(world), "Embed Links")


async def test_status_and_remove(world: World) -> None:
    await setup_channel(world, time="09:00", timezone="Europe/Berlin")
    _, status = await world.command("digest", "status", user=world.owner)
    field = status["data"]["embeds"][0]["fields"][0]
    assert "Europe/Berlin" in field["value"] and "Last day delivered: none yet" in field["value"]
    _, removed = await world.command("digest", "remove", user=world.owner, channel=world.channel.id)
    assert "no longer" in removed["data"]["content"]
    assert world.bot.daily.next_post_time(world.channel.id) is None
    _, again = await world.command("digest", "remove", user=world.owner, channel=world.channel.id)
    assert_private_error(again, "does not get the daily digest")


async def test_post_now_posts_once(world: World) -> None:
    await setup_channel(world)
    handle, _ = await world.command("digest", "post", user=world.owner, day="2025-02-20")
    assert (await handle.response())["type"] == 5  # deferred while posting
    await handle.followup()
    first = posted(world)
    assert first and "2025-02-20" in first[0]["content"]
    _, again = await world.command("digest", "post", user=world.owner, day="2025-02-20")
    assert_private_error(again, "already posted")
    assert posted(world) == first


async def test_two_zones_each_get_the_digest_at_their_local_time(world: World) -> None:
    berlin, new_york = world.channel, await world.fake.create_text_channel(world.guild, "papers-ny")
    await world.fake.wait_for(lambda: world.bot.get_channel(new_york.id), what="the new channel")
    for target, zone in ((berlin, "Europe/Berlin"), (new_york, "America/New_York")):
        await setup_channel(world, channel=target.id, time="09:00", timezone=zone)
    for target in (berlin, new_york):  # as if set up before the day began
        row = await channels.get_channel(world.bot.db, target.id)
        await channels.save_channel(world.bot.db, row.model_copy(update={"created_at": utc(2025, 3, 18, 5)}))

    await world.bot.daily.post_due(now=utc(2025, 3, 18, 8, 30))  # 09:30 Berlin, 04:30 New York
    assert posted(world, berlin.id) and not posted(world, new_york.id)
    assert "2025-03-18" in posted(world, berlin.id)[0]["content"]

    await world.bot.daily.post_due(now=utc(2025, 3, 18, 13, 30))  # 09:30 New York
    assert "2025-03-18" in posted(world, new_york.id)[0]["content"]
    berlin_count = len(posted(world, berlin.id))
    await world.bot.daily.post_due(now=utc(2025, 3, 18, 23, 0))  # later the same day: nothing new
    assert len(posted(world, berlin.id)) == berlin_count
    assert await outbox.last_done(world.bot.db, "digest", berlin.id) == date(2025, 3, 18)


# ----- scheduled posting with a controlled clock --------------------------------------------


async def digest_channel(world: World, name: str, *, zone: str = "Europe/Berlin", created: datetime) -> int:
    target = await world.fake.create_text_channel(world.guild, name)
    await world.fake.wait_for(lambda: world.bot.get_channel(target.id), what=f"#{name} to reach the bot")
    await channels.save_channel(world.bot.db, DigestChannel(
        channel_id=target.id, guild_id=world.guild.id, post_time=time(9, 0), timezone=zone, tags=[],
        style="compact", empty_day_note=False, set_up_by=world.owner.id, created_at=created,
    ))
    return target.id


def headers(world: World, channel_id: int) -> list[str]:
    return [m["content"] for m in posted(world, channel_id) if m["content"]]


async def test_catch_up_after_downtime_posts_missed_days_once_oldest_first_marked_late(world: World) -> None:
    target = await digest_channel(world, "catch-up", created=utc(2025, 3, 1))
    await world.bot.daily.post_due(now=utc(2025, 3, 14, 8, 30))  # the bot comes back on Friday 09:30
    posted_days = [re.search(r"\d{4}-\d{2}-\d{2}", h).group() for h in headers(world, target)]
    assert posted_days == ["2025-03-11", "2025-03-12", "2025-03-13", "2025-03-14"]  # catch_up_days = 3
    assert all("late" in h for h in headers(world, target)[:-1]) and "late" not in headers(world, target)[-1]
    before = len(posted(world, target))
    await world.bot.daily.post_due(now=utc(2025, 3, 14, 8, 31))  # a restart a minute later
    assert len(posted(world, target)) == before


async def test_after_two_days_down_every_day_posted_after_its_time_is_marked_late(world: World) -> None:
    """The README's promise: days missed while the bot was down are marked late, yesterday's and today's too."""
    target = await digest_channel(world, "two-days-down", created=utc(2025, 3, 11, 5))
    await world.bot.daily.post_due(now=utc(2025, 3, 11, 8, 30))  # on time on Tuesday 09:30 Berlin
    on_time = len(headers(world, target))
    # down from Tuesday until Thursday 14:00 Berlin: Wednesday's and Thursday's digests are posted now
    await world.bot.daily.post_due(now=utc(2025, 3, 13, 13, 0))
    caught_up = headers(world, target)[on_time:]
    assert [re.search(r"\d{4}-\d{2}-\d{2}", h).group() for h in caught_up] == ["2025-03-12", "2025-03-13"]
    assert all(h.endswith("· posted late") for h in caught_up), caught_up
    assert not any("late" in h for h in headers(world, target)[:on_time])


async def test_remove_then_setup_again_the_same_day_does_not_post_the_day_again(world: World) -> None:
    await setup_channel(world)
    row = await channels.get_channel(world.bot.db, world.channel.id)
    await channels.save_channel(world.bot.db, row.model_copy(update={"created_at": utc(2025, 3, 18, 5)}))
    await world.bot.daily.post_due(now=utc(2025, 3, 18, 9))
    got = len(posted(world))
    assert got and "2025-03-18" in posted(world)[0]["content"]

    _, removed = await world.command("digest", "remove", user=world.owner, channel=world.channel.id)
    assert "no longer" in removed["data"]["content"]
    await setup_channel(world)  # the same morning, set up again
    row = await channels.get_channel(world.bot.db, world.channel.id)
    await channels.save_channel(world.bot.db, row.model_copy(update={"created_at": utc(2025, 3, 18, 10)}))
    await world.bot.daily.post_due(now=utc(2025, 3, 18, 11))

    assert len(posted(world)) == got
    _, status = await world.command("digest", "status", user=world.owner)
    assert "Last day delivered: 2025-03-18" in status["data"]["embeds"][0]["fields"][0]["value"]


async def test_status_says_when_paperbot_cannot_read_the_message_history(world: World) -> None:
    await setup_channel(world)
    await world.fake.change_channel_permissions(world.channel, world.guild.id, deny=Perm.READ_MESSAGE_HISTORY)
    await world.fake.wait_for(
        lambda: not world.bot.get_channel(world.channel.id).permissions_for(world.bot.get_guild(world.guild.id).me)
        .read_message_history, what="the overwrite to reach the bot")
    _, status = await world.command("digest", "status", user=world.owner)
    assert "cannot read the message history" in status["data"]["embeds"][0]["fields"][0]["value"]
    response = await setup_channel(world)
    assert_private_error(response, "Read Message History")


async def test_a_dst_change_keeps_the_local_post_time(world: World) -> None:
    target = await digest_channel(world, "dst", created=utc(2025, 3, 27))
    await world.bot.daily.post_due(now=utc(2025, 3, 28, 7, 59))  # 08:59 CET: not yet
    assert not any("2025-03-28" in h for h in headers(world, target))
    await world.bot.daily.post_due(now=utc(2025, 3, 28, 8, 0))  # 09:00 CET
    assert any("2025-03-28" in h for h in headers(world, target))
    await world.bot.daily.post_due(now=utc(2025, 3, 31, 6, 59))  # 08:59 CEST: not yet
    assert not any("2025-03-31" in h for h in headers(world, target))
    await world.bot.daily.post_due(now=utc(2025, 3, 31, 7, 0))  # 09:00 CEST
    assert any("2025-03-31" in h for h in headers(world, target))


async def test_a_deleted_channel_is_marked_broken_and_others_still_get_the_digest(world: World) -> None:
    gone = await digest_channel(world, "gone", created=utc(2025, 3, 18, 5))
    kept = await digest_channel(world, "kept", created=utc(2025, 3, 18, 5))
    await world.fake.delete_channel(gone)
    await world.bot.daily.post_due(now=utc(2025, 3, 18, 9))
    assert headers(world, kept) and "2025-03-18" in headers(world, kept)[0]
    row = await channels.get_channel(world.bot.db, gone)
    assert row.broken_reason and "find" in row.broken_reason
    _, status = await world.command("digest", "status", user=world.owner)
    assert any("Not posting" in f["value"] for f in status["data"]["embeds"][0]["fields"])


async def test_fan_out_under_rate_limits_posts_every_message_exactly_once(world: World) -> None:
    world.fake.enable_rate_limits(per_route=(1, 0.1), global_per_second=50)  # each channel's 2nd message waits
    targets = [await digest_channel(world, f"fan-{n}", created=utc(2025, 3, 18, 5)) for n in range(12)]
    world.fake.fail_next("POST", f"/channels/{targets[0]}/messages", status=429, retry_after=0.05)
    await world.bot.daily.post_due(now=utc(2025, 3, 18, 9))
    for target in targets:
        stored = await outbox.get(world.bot.db, "digest", target, date(2025, 3, 18))
        assert stored.status == "done"
        assert [int(m["id"]) for m in posted(world, target)] == [m.message_id for m in stored.messages]
        assert len(stored.messages) > 1
    assert sum(r.status == 429 for r in world.fake.requests) >= 1  # retried by discord.py, not duplicated


async def test_a_late_digest_is_fetched_then_posted_where_its_time_has_passed(world: World) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from settings import SourceSettings
    from tests.conftest import CORPUS

    digest = (CORPUS / "timlrx/archive/2025/03/18.md").read_text().replace("2025-03-18", "2025-04-01")

    async def producer(request: web.Request) -> web.Response:
        found = request.path == "/archive/2025/04/01.md"
        return web.Response(text=digest) if found else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", producer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        template = f"http://127.0.0.1:{server.port}/archive/{{yyyy}}/{{mm}}/{{dd}}.md"
        world.bot.settings.sources = [SourceSettings(name="timlrx", markdown_url=template)]
        target = await digest_channel(world, "late", created=utc(2025, 4, 1, 5))
        world.bot.daily.clock = lambda: utc(2025, 4, 1, 10)  # 12:00 in Berlin: the 09:00 slot had no digest

        await world.bot.daily.post_channel(target)
        assert posted(world, target) == []

        await world.bot.daily.fetch_and_post()
        assert len(headers(world, target)) == 1 and "2025-04-01" in headers(world, target)[0]
        await world.bot.daily.fetch_and_post()  # fetched again: nothing new, nothing reposted
        assert len(headers(world, target)) == 1
    finally:
        await server.close()


async def test_a_tag_mapped_to_a_role_pings_exactly_that_role(world: World) -> None:
    robots = world.fake.add_role(world.guild, "robot-fans")
    await world.fake.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(world.guild.id), "role": robots.to_dict()})
    await world.fake.wait_for(lambda: world.bot.get_guild(world.guild.id).get_role(robots.id), what="the role")
    _, reply = await world.command("digest", "role", user=world.owner, tag="robotics", role=robots.id)
    assert "Robotics" in reply["data"]["content"] and reply["data"]["allowed_mentions"] == {"parse": []}
    _, refused = await world.command("digest", "role", user=world.alice, tag="robotics", role=robots.id)
    assert_private_error(refused, "Manage Server")

    target = await digest_channel(world, "robots", created=utc(2025, 3, 18, 5))
    await world.bot.daily.post_due(now=utc(2025, 3, 18, 9))  # 2025-03-18 has Robotics papers
    first, *rest = posted(world, target)
    assert f"<@&{robots.id}>" in first["content"]
    request = next(r for r in world.fake.requests_to("POST", f"/channels/{target}/messages") if r.json.get("content"))
    assert request.json["allowed_mentions"] == {"parse": [], "roles": [robots.id]}
    assert all("<@&" not in (m["content"] or "") for m in rest)

    _, removed = await world.command("digest", "role", user=world.owner, tag="Robotics")
    assert "no longer" in removed["data"]["content"]


async def test_status_of_many_channels_is_paged_within_discords_limits(world: World) -> None:
    """18 channels once made an 8,472-character embed (Discord allows 6,000); channels past 25 were dropped."""
    from bot.render import embed_size
    from discord import Embed

    long_tags = ["Computer Vision", "Natural Language Processing", "Reinforcement Learning", "Robotics",
                 "Multimodal Learning", "[evil](https://evil.example) @everyone"]
    names = []
    for n in range(30):
        channel = await world.fake.create_text_channel(world.guild, f"papers-channel-number-{n:02d}")
        names.append(channel.name)
        await channels.save_channel(world.bot.db, DigestChannel(
            channel_id=channel.id, guild_id=world.guild.id, post_time=time(9, 0), timezone="America/Argentina/Buenos_Aires",
            tags=long_tags, style="thread"))
        await channels.set_roundup(world.bot.db, channel.id, 4, time(17, 0))
        await channels.record_error(world.bot.db, channel.id, "503 Service Unavailable: " + "upstream timeout " * 20)
        world.bot.daily.schedule(await channels.get_channel(world.bot.db, channel.id))

    handle, status = await world.command("digest", "status", user=world.owner)
    assert status["data"]["flags"] & EPHEMERAL
    seen: list[str] = []
    message = status["data"]
    for page in range(1, 100):
        embeds = message["embeds"]
        assert sum(embed_size(Embed.from_dict(e)) for e in embeds) <= 6000
        assert all(len(e.get("fields", [])) <= 25 for e in embeds)
        text = " ".join(f["value"] for e in embeds for f in e["fields"])
        assert "https://evil" not in text and "@everyone" not in text
        seen += [f["name"] for e in embeds for f in e["fields"]]
        footer = embeds[0]["footer"]["text"]
        assert footer.startswith(f"Page {page} of ") and "30 channels" in footer
        if footer.startswith(f"Page {page} of {page}"):
            break
        click = await world.fake.click_button(handle.original, _next_button(message), world.owner)
        message = (await click.response())["data"]
    assert page > 1
    assert [name.lstrip("#") for name in seen] == names


def _next_button(message: dict) -> str:
    return next(b["custom_id"] for row in message["components"] for b in row["components"] if "Next" in b["label"])
