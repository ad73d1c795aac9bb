"""Subscription DMs end to end: the real client on the fake Discord, the real corpus.

Each subscriber gets at most one DM (one or more messages) per day, exactly once through
errors and crashes, never pinging; closed DMs stop delivery; users the bot shares no server
with get nothing.
"""

from __future__ import annotations

import datetime as dt

from bot import render
from digests.ingest import ingest_bytes
from digests.sources import Location
from settings import SourceSettings
from storage import fetches, outbox
from storage import subscriptions as subs
from tests.chaos.source import corpus_days, redated
from tests.limits import check_message_limits
from tests.world import World, every_try, seen

DAY = dt.date(2025, 3, 21)  # Robotics: Cosmos-Reason1 and JARVIS-VLA
MESSAGES = "/channels/{channel_id}/messages"


async def follow(world: World, user, *items: tuple[str, str], guild_id: int | None | str = "world") -> None:
    for kind, value in items:
        await subs.add_subscription(
            world.bot.db, user.id, kind, value, max_per_user=25,
            guild_id=world.guild.id if guild_id == "world" else guild_id,
        )


def dms(world: World, user) -> list[dict]:
    return seen(world.fake.messages_in(world.fake.state.dm_channel(user)))


def dm_posts(world: World, user) -> list:
    channel_id = str(world.fake.state.dm_channel(user).id)
    return [r for r in world.fake.requests_to("POST", MESSAGES) if r.params.get("channel_id") == channel_id]


def text(message: dict) -> str:
    return (message.get("content") or "") + "\n".join(e.get("description", "") for e in message.get("embeds", []))


async def test_one_dm_per_user_per_day_each_paper_once(world: World) -> None:
    await follow(world, world.alice, ("tag", "Robotics"), ("keyword", "JARVIS"))
    await follow(world, world.bob, ("keyword", "nothingmatchesthisword"))
    poster = world.bot.subscription_poster

    outcomes = await poster.deliver_day(DAY)

    assert {(o.user_id, o.status) for o in outcomes} == {(world.alice.id, "delivered"), (world.bob.id, "no_matches")}
    [message] = dms(world, world.alice)
    body = text(message)
    assert body.count("2503.16365") == 1 and body.count("2503.15558") == 1  # JARVIS-VLA, Cosmos-Reason1
    assert "2 papers" in message["content"]
    jarvis = next(entry for entry in body.split("\n\n") if "JARVIS-VLA" in entry)
    assert "tag: Robotics" in jarvis and "keyword: JARVIS" in jarvis  # both subscriptions named
    assert dm_posts(world, world.bob) == [] and dms(world, world.bob) == []
    [request] = dm_posts(world, world.alice)
    assert request.json["allowed_mentions"] == {"parse": []} and request.json["nonce"]

    again = await poster.deliver_day(DAY)
    assert again == []  # everyone was handled for the day
    assert (await poster.deliver(world.alice.id, DAY)).status == "already_done"
    assert len(dm_posts(world, world.alice)) == 1


async def many_messages(world: World) -> list[dict]:
    await follow(world, world.alice, ("tag", "Multimodal"), ("tag", "Natural Language Processing"))
    found = (await subs.matches_on_day(world.bot.db, DAY, [world.alice.id]))[world.alice.id]
    planned = render.subscription_digest_messages(DAY, [(m.paper, m.matched) for m in found])
    assert len(planned) >= 2
    assert all(check_message_limits(p) == [] and p.allowed_mentions == render.NO_MENTIONS for p in planned)
    return [render.payload_to_dict(p) for p in planned]


async def test_a_failed_second_message_resumes_exactly_once(world: World) -> None:
    planned = await many_messages(world)
    poster = world.bot.subscription_poster
    channel_id = world.fake.state.dm_channel(world.alice).id
    world.fake.fail_next("POST", MESSAGES, status=503, when=lambda r: len(dm_posts(world, world.alice)) >= 2,
                         channel_id=channel_id, times=every_try())

    first = await poster.deliver(world.alice.id, DAY)
    assert (first.status, first.sent) == ("retry_later", 1)
    assert len(dms(world, world.alice)) == 1

    resumed = await world.bot.subscription_poster.resume_unfinished()
    assert [(o.status, o.sent) for o in resumed] == [("delivered", len(planned) - 1)]
    got = dms(world, world.alice)
    assert [(m.get("content") or None, m["embeds"]) for m in got] == [(p["content"], p["embeds"]) for p in planned]
    assert all(r.json["allowed_mentions"] == {"parse": []} for r in dm_posts(world, world.alice))
    assert (await outbox.get(world.bot.db, "dm", world.alice.id, DAY)).status == "done"


async def test_a_crash_after_discord_accepted_a_message_sends_it_once(world: World, monkeypatch) -> None:
    planned = await many_messages(world)
    real_mark = outbox.mark_sent
    calls = {"n": 0}

    async def crash_once(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed before the ledger recorded the message")
        await real_mark(*args)

    monkeypatch.setattr(outbox, "mark_sent", crash_once)
    outcomes = await world.bot.subscription_poster.deliver_day(DAY)
    assert [o.status for o in outcomes] == ["failed"]
    assert len(dms(world, world.alice)) == 2  # Discord has the 2nd message; the ledger does not

    resumed = await world.bot.subscription_poster.resume_unfinished()
    assert [o.status for o in resumed] == ["delivered"]
    got = dms(world, world.alice)
    assert len(got) == len(planned)  # the 2nd message was found in the DM channel by its marker, not resent
    assert [(m.get("content") or None, m["embeds"]) for m in got] == [(p["content"], p["embeds"]) for p in planned]


async def test_closed_dms_mark_the_user_and_stop_delivery(world: World) -> None:
    await follow(world, world.alice, ("tag", "Robotics"), ("keyword", "model"))
    world.fake.set_dm_closed(world.alice)
    poster = world.bot.subscription_poster

    [outcome] = await poster.deliver_day(DAY)

    assert outcome.status == "dm_closed"
    assert (await subs.get_subscriber(world.bot.db, world.alice.id)).dm_closed
    assert (await outbox.get(world.bot.db, "dm", world.alice.id, DAY)).status == "skipped"
    tries = len(dm_posts(world, world.alice))
    assert await poster.deliver_day(dt.date(2025, 3, 20)) == []  # not retried forever
    assert len(dm_posts(world, world.alice)) == tries == 1

    world.fake.clear_faults()
    _, response = await world.command("subscriptions", "list")
    assert "Privacy Settings" in response["data"]["content"]
    [again] = await poster.deliver_day(dt.date(2025, 3, 20))
    assert again.status == "delivered" and len(dms(world, world.alice)) == again.sent >= 1


async def test_users_sharing_no_server_get_nothing(world: World) -> None:
    await follow(world, world.alice, ("tag", "Robotics"), guild_id=424242)  # a server the bot left
    await follow(world, world.bob, ("tag", "Robotics"), guild_id=None)  # made in a DM only
    await follow(world, world.owner, ("tag", "Robotics"), guild_id=None)
    await follow(world, world.owner, ("keyword", "agents"))  # ... plus one made in a shared server

    outcomes = {o.user_id: o.status for o in await world.bot.subscription_poster.deliver_day(DAY)}

    assert outcomes == {world.alice.id: "not_reachable", world.bob.id: "not_reachable", world.owner.id: "delivered"}
    assert dms(world, world.alice) == [] and dms(world, world.bob) == []
    assert len(dms(world, world.owner)) == 1


async def test_paused_users_get_nothing(world: World) -> None:
    await follow(world, world.alice, ("tag", "Robotics"))
    await subs.set_paused(world.bot.db, world.alice.id, True)
    assert await world.bot.subscription_poster.deliver_day(DAY) == []
    assert dms(world, world.alice) == []


async def test_the_scheduler_sends_the_latest_day_within_the_catch_up_window(world: World) -> None:
    await follow(world, world.alice, ("tag", "Robotics"), ("keyword", "model"))
    await world.bot.daily.post_due(now=dt.datetime(2025, 5, 1, tzinfo=dt.UTC))  # too late: nothing
    assert dms(world, world.alice) == []
    await world.bot.daily.post_due(now=dt.datetime(2025, 4, 1, 12, tzinfo=dt.UTC))
    await world.bot.daily.post_due(now=dt.datetime(2025, 4, 1, 13, tzinfo=dt.UTC))
    got = dms(world, world.alice)
    delivery = await outbox.get(world.bot.db, "dm", world.alice.id, dt.date(2025, 3, 31))
    assert delivery.status == "done" and len(got) == len(delivery.messages) >= 1
    assert "2025-03-31" in got[0]["content"]


# ----- what the one ledger fixed ------------------------------------------------------------------


async def test_a_dm_discord_rejects_with_400_is_skipped_with_the_reason_never_retried(world: World) -> None:
    await follow(world, world.alice, ("tag", "Robotics"))
    channel_id = world.fake.state.dm_channel(world.alice).id
    world.fake.fail_next("POST", MESSAGES, status=400, code=50035, channel_id=channel_id)
    poster = world.bot.subscription_poster

    [outcome] = await poster.deliver_day(DAY)

    assert outcome.status == "rejected" and "400" in outcome.detail
    item = await outbox.get(world.bot.db, "dm", world.alice.id, DAY)
    assert item.status == "skipped" and "rejected" in item.reason
    assert await poster.resume_unfinished() == []
    await world.bot.daily.post_due(now=dt.datetime.combine(DAY, dt.time(12), dt.UTC))
    assert len(dm_posts(world, world.alice)) == 1 and dms(world, world.alice) == []  # tried once, never again
    assert not (await subs.get_subscriber(world.bot.db, world.alice.id)).dm_closed  # the user did nothing wrong


async def test_a_dm_left_planned_by_a_server_error_is_sent_by_the_next_run_not_only_after_a_restart(
    world: World,
) -> None:
    """The seed-11 chaos finding: a DM of an older day, pending after a 5xx, waited for a restart."""
    await follow(world, world.alice, ("tag", "Robotics"))
    channel_id = world.fake.state.dm_channel(world.alice).id
    world.fake.fail_next("POST", MESSAGES, status=503, channel_id=channel_id, times=every_try())
    assert [o.status for o in await world.bot.subscription_poster.deliver_day(DAY)] == ["retry_later"]

    await world.bot.daily.post_due(now=dt.datetime.combine(DAY + dt.timedelta(days=3), dt.time(12), dt.UTC))

    assert (await outbox.get(world.bot.db, "dm", world.alice.id, DAY)).status == "done"
    assert any(str(DAY) in text(m) for m in dms(world, world.alice))


RACE_DAY = dt.date(2031, 4, 28)
QUASAR_DIGEST = f"""## Papers for {RACE_DAY}

| Title | Authors | Summary | Classification | GitHub URLs | HuggingFace URLs |
|-------|---------|---------|----------------|-------------|-----------------|
| [Quasar Spectra at Scale](https://arxiv.org/abs/3104.00001) | Ada Lovelace | A survey of quasar spectra. | ['Astronomy'] | N/A | N/A |
""".encode()


async def test_a_days_dm_waits_until_every_file_of_the_day_is_in(world: World) -> None:
    """The restart race: the start-up pass planned the day's DMs while its second file was still being
    fetched, found no match for the subscriber (final), and the fetch's own pass then skipped them."""
    daily, db = world.bot.daily, world.bot.db
    daily.settings = daily.settings.model_copy(update={"sources": [
        SourceSettings(name="first", markdown_url="https://digests.invalid/a/{yyyy}-{mm}-{dd}.md"),
        SourceSettings(name="second", markdown_url="https://digests.invalid/b/{yyyy}-{mm}-{dd}.md"),
    ]})
    await follow(world, world.alice, ("keyword", "quasar"))
    at = dt.datetime.combine(RACE_DAY, dt.time(7), dt.UTC)
    await ingest_bytes(db, redated(corpus_days()[0], RACE_DAY), Location(target=f"a/{RACE_DAY}.md", producer="first"))
    await fetches.record_attempt(db, "first", RACE_DAY, "markdown", "ingested", "7 new", at=at)
    await fetches.record_attempt(db, "second", RACE_DAY, "markdown", "waiting", "not published yet", at=at)

    await daily.post_due(now=at)  # the start-up pass, the second file still on its way
    assert await outbox.get(db, "dm", world.alice.id, RACE_DAY) is None  # not judged on half a day

    await ingest_bytes(db, QUASAR_DIGEST, Location(target=f"b/{RACE_DAY}.md", producer="second"))
    await fetches.record_attempt(db, "second", RACE_DAY, "markdown", "ingested", "1 new", at=at)
    await daily.post_due(now=at)  # the resumed fetch's pass

    assert any("Quasar Spectra" in text(m) for m in dms(world, world.alice))


async def test_a_member_who_left_every_server_where_they_subscribed_is_paused_and_told_why(world: World) -> None:
    await follow(world, world.alice, ("tag", "Robotics"))
    await follow(world, world.bob, ("tag", "Robotics"))
    del world.fake.state.guild(world.guild).members[world.alice.id]  # alice left the server

    outcomes = {o.user_id: o for o in await world.bot.subscription_poster.deliver_day(DAY)}

    assert outcomes[world.alice.id].status == "not_reachable" and dms(world, world.alice) == []
    assert outcomes[world.bob.id].status == "delivered"
    assert (await subs.get_subscriber(world.bot.db, world.alice.id)).left_servers
    handle = await world.fake.send_slash_command(None, None, world.alice, "subscriptions", subcommand="list")
    listed = (await handle.response())["data"]["content"]
    assert "no longer in any server where you subscribed" in listed
