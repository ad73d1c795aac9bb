"""The fake Discord's shards, pinned with the real discord.py: who gets which servers and events.

Discord gives a shard `[shard_id, shard_count]` the servers with `(guild_id >> 22) % shard_count
== shard_id`, sends each server's events only there, and DMs to shard 0. Clusters (several
processes, each with some shards) rely on exactly this, so the fake must do it too.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import aiohttp
import discord
import pytest
from discord.ext import commands

from testing import FakeDiscord, Op, running_bot
from testing.state import Guild


def shard_of(guild: Guild | int, count: int) -> int:
    return (getattr(guild, "id", guild) >> 22) % count


class QuickShardedBot(commands.AutoShardedBot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between two shards' IDENTIFYs (Discord's limit); the fake has none."""


def sharded_bot(**options) -> QuickShardedBot:
    bot = QuickShardedBot(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.01,
                          help_command=None, **options)
    bot.seen_messages = []

    @bot.listen()
    async def on_message(message: discord.Message) -> None:
        bot.seen_messages.append(message.content)

    @bot.tree.command(description="Which shard answers?")
    async def where(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"shard {interaction.guild.shard_id}")

    return bot


def guilds_on_every_shard(fake: FakeDiscord, count: int, per_shard: int = 2) -> list[Guild]:
    """`per_shard` servers on each of `count` shards."""
    return [fake.add_guild(f"server-{shard}-{n}", channels=("papers",), shard=(shard, count))
            for n in range(per_shard) for shard in range(count)]


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> FakeDiscord:
    return fake_discord


async def test_each_shard_gets_ready_and_guild_create_for_its_own_servers_only(fake: FakeDiscord) -> None:
    guilds = guilds_on_every_shard(fake, 3)
    async with AsyncExitStack() as stack:
        bots = [await stack.enter_async_context(
            running_bot(fake, lambda i=i: sharded_bot(shard_ids=[i], shard_count=3))) for i in range(3)]

        for shard_id, bot in enumerate(bots):
            expected = {g.id for g in guilds if shard_of(g, 3) == shard_id}
            assert {g.id for g in bot.guilds} == expected
            assert all(g.shard_id == shard_id for g in bot.guilds)
        for session in fake.gateway.shards.values():
            ready = next(p["d"] for p in session.events if p["t"] == "READY")
            assert ready["shard"] == [session.shard_id, 3]
            created = [int(p["d"]["id"]) for p in session.events if p["t"] == "GUILD_CREATE"]
            assert created and all(shard_of(g, 3) == session.shard_id for g in created)
            assert {int(g["id"]) for g in ready["guilds"]} == set(created)


async def test_an_auto_sharded_bot_takes_the_shard_count_from_gateway_bot(fake: FakeDiscord) -> None:
    fake.shard_count = 4
    guilds = guilds_on_every_shard(fake, 4, per_shard=1)

    async with running_bot(fake, lambda: sharded_bot()) as bot:
        assert bot.shard_count == 4 and sorted(bot.shards) == [0, 1, 2, 3]
        assert {g.id: g.shard_id for g in bot.guilds} == {g.id: shard_of(g, 4) for g in guilds}
    identifies = [p["d"]["shard"] for p in fake.gateway.ops(Op.IDENTIFY)]
    assert sorted(identifies) == [[0, 4], [1, 4], [2, 4], [3, 4]]


async def test_a_servers_events_and_interactions_reach_only_the_process_holding_its_shard(fake: FakeDiscord) -> None:
    guilds = guilds_on_every_shard(fake, 2, per_shard=1)
    alice = fake.add_user("alice")
    for guild in guilds:
        fake.add_member(guild, alice)
    async with AsyncExitStack() as stack:
        bots = [await stack.enter_async_context(
            running_bot(fake, lambda i=i: sharded_bot(shard_ids=[i], shard_count=2))) for i in range(2)]
        await bots[0].tree.sync()
        for guild in guilds[:2]:
            owner, other = bots[shard_of(guild, 2)], bots[1 - shard_of(guild, 2)]
            channel = guild.channel_ids[0]
            await fake.send_user_message(channel, alice, f"hello {guild.name}")
            await fake.wait_for(lambda: f"hello {guild.name}" in owner.seen_messages, what="the owner to see it")
            assert f"hello {guild.name}" not in other.seen_messages

            handle = await fake.send_slash_command(guild, channel, alice, "where")
            assert (await handle.response())["data"]["content"] == f"shard {shard_of(guild, 2)}"
            delivered = [p for p in fake.gateway.sent if p["t"] == "INTERACTION_CREATE"
                         and p["d"]["id"] == str(handle.id)]
            assert [p["shard"] for p in delivered] == [shard_of(guild, 2)]

        # Outside any server (a DM) it is shard 0's, as on Discord.
        dm = fake.state.dm_channel(alice)
        await fake.send_user_message(dm, alice, "a direct message")
        await fake.wait_for(lambda: "a direct message" in bots[0].seen_messages, what="shard 0 to get the DM")
        assert "a direct message" not in bots[1].seen_messages


async def test_a_shard_that_reconnects_resumes_with_only_its_own_events(fake: FakeDiscord) -> None:
    guilds = guilds_on_every_shard(fake, 2, per_shard=1)
    alice = fake.add_user("alice")
    async with running_bot(fake, lambda: sharded_bot(shard_count=2)) as bot:
        one = next(g for g in guilds if shard_of(g, 2) == 1)
        await fake.gateway.disconnect(shard_id=1)
        await fake.send_user_message(one.channel_ids[0], alice, "while shard 1 was away")

        await fake.gateway.wait_for_dispatch("RESUMED")
        await fake.wait_for(lambda: "while shard 1 was away" in bot.seen_messages, what="the replayed message")
        resumed = [p for p in fake.gateway.sent if p["t"] == "RESUMED"]
        assert [p["shard"] for p in resumed] == [1]


async def test_an_identify_for_a_shard_that_does_not_exist_is_closed_with_4010(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        hello = json.loads((await ws.receive()).data)
        assert hello["op"] == Op.HELLO
        await ws.send_str(json.dumps({"op": Op.IDENTIFY, "d": {
            "token": fake.token, "intents": 1, "properties": {}, "shard": [2, 2]}}))
        closing = await ws.receive()
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4010
    assert fake.gateway.shards == {}


async def test_the_global_limit_is_shared_by_every_client_of_the_token(fake: FakeDiscord) -> None:
    """Two processes of one bot (two clients, one token) draw on one global budget, as on Discord."""
    guild = fake.add_guild("Research")
    async with AsyncExitStack() as stack:
        bots = [await stack.enter_async_context(
            running_bot(fake, lambda i=i: sharded_bot(shard_ids=[i], shard_count=2))) for i in range(2)]
        fake.requests.clear()
        limiter = fake.enable_rate_limits(per_route=(1000, 60.0), global_per_second=10, global_window=60.0)
        calls = [bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}", guild_id=guild.id))
                 for bot in bots for _ in range(6)]
        tasks = [asyncio.create_task(call) for call in calls]
        await fake.wait_for(lambda: len([r for r in fake.requests if r.status is not None]) >= 12,
                            what="12 answered requests", timeout=5)
        limited = [r for r in fake.requests if r.status == 429]
        assert len(limited) == 2 and all(r.response["global"] for r in limited)
        assert limiter.global_limited == 2
        for task in tasks:
            task.cancel()  # the limited ones would wait out the 60 s window
        await asyncio.gather(*tasks, return_exceptions=True)
