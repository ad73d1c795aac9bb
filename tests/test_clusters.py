"""Clusters: several Paperbot processes, each holding some shards, on one library and one fake Discord.

Each server's digest channel must get the day exactly once, posted by the process that holds
the server's shard; subscriber DMs (which belong to no server) only by the process holding
shard 0. The three bots here run in one test process, but share nothing except the library
file and the fake Discord, as separate processes would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from bot import render
from bot.__main__ import app, with_shards
from bot.client import Paperbot, ShardedPaperbot, create_bot
from bot.posting.poster import CLAIMED_ELSEWHERE
from bot.shards import ShardSet, parse_shard_ids, shard_of
from settings import DatabaseSettings, DiscordSettings, Settings
from storage import channels, db, outbox
from storage import subscriptions as subs
from storage.channels import DigestChannel
from storage.papers import papers_on_day
from testing import FakeDiscord, Op, running_bot
from testing.state import Guild

DAY = dt.date(2025, 2, 20)  # 20 papers: two compact messages
NOW = dt.datetime(2025, 2, 20, 10, 0, tzinfo=dt.UTC)  # an hour after the channels' 09:00 post time
SHARDS = 3
ROOT = Path(__file__).resolve().parent.parent
MESSAGES = "/channels/{channel_id}/messages"


class QuickCluster(ShardedPaperbot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between two shards' IDENTIFYs (Discord's limit); the fake has none."""


def cluster_settings(library: Path, shard_ids: list[int], count: int = SHARDS) -> Settings:
    return Settings(database=DatabaseSettings(path=library),
                    discord=DiscordSettings(shard_ids=shard_ids, shard_count=count))


def cluster(settings: Settings, name: str) -> QuickCluster:
    bot = QuickCluster(settings, guild_ready_timeout=0.01)
    bot.http.user_agent += f" {name}"  # which process sent a request, as the fake records it
    return bot


def sender(request) -> str:
    return request.headers["User-Agent"].rsplit(" ", 1)[-1]


async def set_up_channels(library: Path, guilds: list[Guild], admin_id: int) -> int:
    """A digest channel in each server and a subscriber; returns how many messages the day takes."""
    conn = await db.connect(library)
    try:
        for guild in guilds:
            await channels.save_channel(conn, DigestChannel(
                channel_id=guild.channel_ids[0], guild_id=guild.id, post_time=dt.time(9, 0), timezone="UTC",
                set_up_by=admin_id, created_at=NOW - dt.timedelta(hours=2)))
        papers = await papers_on_day(conn, DAY)
        await subs.add_subscription(conn, admin_id, "tag", papers[0].tags[0], guild_id=guilds[0].id, max_per_user=25)
        return len(render.digest_messages(DAY, papers, style="compact"))
    finally:
        await conn.close()


async def test_each_server_gets_the_day_once_from_the_process_holding_its_shard(
    fake_discord: FakeDiscord, library_path: Path
) -> None:
    fake = fake_discord
    guilds = [fake.add_guild(f"server-{s}-{n}", channels=("papers",), shard=(s, SHARDS))
              for n in range(2) for s in range(SHARDS)]
    admin = fake.add_user("admin")
    for guild in guilds:
        fake.add_member(guild, admin)
    expected = await set_up_channels(library_path, guilds, admin.id)

    async with AsyncExitStack() as stack:
        bots = [await stack.enter_async_context(running_bot(
            fake, lambda i=i: cluster(cluster_settings(library_path, [i]), f"cluster-{i}"))) for i in range(SHARDS)]
        for i, bot in enumerate(bots):  # each schedules its own servers' channels only
            jobs = {job.id for job in bot.daily.scheduler.get_jobs()}
            assert jobs == {f"digest:{g.channel_ids[0]}" for g in guilds if shard_of(g.id, SHARDS) == i}

        # The day is due everywhere at once: every process runs its catch-up, writing one library.
        await asyncio.gather(*(bot.daily.post_due(NOW) for bot in bots))

    for guild in guilds:
        channel_id = guild.channel_ids[0]
        posted = fake.messages_in(channel_id)
        assert len(posted) == expected, f"{guild.name} got {len(posted)} messages, not {expected}"
        senders = {sender(r) for r in fake.requests_to("POST", MESSAGES) if r.params["channel_id"] == str(channel_id)}
        assert senders == {f"cluster-{shard_of(guild.id, SHARDS)}"}
    dm = fake.state.dm_channel(admin)
    assert len(fake.messages_in(dm)) == 1, "one DM for the subscriber, not one per process"
    dm_senders = {sender(r) for r in fake.requests_to("POST", MESSAGES) if r.params["channel_id"] == str(dm.id)}
    assert dm_senders == {"cluster-0"}


def test_a_process_with_shard_count_runs_an_auto_sharded_bot_with_its_shards(tmp_path: Path) -> None:
    plain = create_bot(Settings(database=DatabaseSettings(path=tmp_path / "l.db")))
    sharded = create_bot(cluster_settings(tmp_path / "l.db", [2, 3], count=8))
    assert type(plain) is Paperbot
    assert isinstance(sharded, ShardedPaperbot)
    assert sharded.shard_ids == [2, 3] and sharded.shard_count == 8
    assert sharded.shard_set == ShardSet((2, 3), 8) and not sharded.shard_set.sends_dms
    assert create_bot(cluster_settings(tmp_path / "l.db", [0, 5], count=8)).shard_set.sends_dms


def test_a_shard_owns_exactly_the_servers_discord_sends_it() -> None:
    two_of_four = ShardSet((1, 3), 4)
    for guild_id in (0, 1 << 22, 2 << 22, 3 << 22, 81384788765712384):
        assert two_of_four.owns_guild(guild_id) == (((guild_id >> 22) % 4) in (1, 3))
    assert ShardSet().owns_guild(12345) and ShardSet().sends_dms and ShardSet().share == 1.0
    assert two_of_four.share == 0.5


@pytest.mark.parametrize(("text", "ids"), [("0-3", [0, 1, 2, 3]), ("5", [5]), ("0-1, 4", [0, 1, 4]), ("2,2", [2])])
def test_shard_ranges_read_like_an_admin_writes_them(text: str, ids: list[int]) -> None:
    assert parse_shard_ids(text) == ids


@pytest.mark.parametrize(("shards", "count", "message"), [
    ("0-9", "8", "between 0 and shard_count - 1 (7)"),
    ("3-1", "8", "'3-1' is not a range of shard ids"),
    ("a-b", "8", "'a-b' is not a shard id or a range like 0-3"),
    ("0-3", None, "shard_ids needs shard_count"),
    ("0", "0", "greater than or equal to 1"),
])
def test_run_refuses_shards_that_do_not_fit_with_one_clear_line(
    tmp_path: Path, shards: str, count: str | None, message: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "library.db"}"\n')
    args = ["run", "--config", str(config), "--shards", shards] + (["--shard-count", count] if count else [])
    result = CliRunner().invoke(app, args, env={"DISCORD_TOKEN": ""})
    assert result.exit_code == 1
    assert message in result.output and "invalid --shards/--shard-count" in result.output
    assert not (tmp_path / "library.db").exists()


def test_the_command_line_shards_replace_the_configured_ones(tmp_path: Path) -> None:
    settings = cluster_settings(tmp_path / "l.db", [0, 1], count=4)
    settings.discord.rate_limit_redis_url = SecretStr("redis://:secret@127.0.0.1:6379/0")
    moved = with_shards(settings, "2-5", 8).discord
    assert (moved.shard_ids, moved.shard_count) == ([2, 3, 4, 5], 8)
    assert moved.rate_limit_redis_url.get_secret_value() == "redis://:secret@127.0.0.1:6379/0"  # kept, still secret
    assert "secret" not in repr(moved)
    assert with_shards(settings, None, 2).discord.shard_ids == [0, 1]


def test_config_rejects_shard_ids_outside_the_shard_count() -> None:
    with pytest.raises(ValueError, match="between 0 and shard_count - 1"):
        DiscordSettings(shard_ids=[4], shard_count=4)
    with pytest.raises(ValueError, match="each shard once"):
        DiscordSettings(shard_ids=[1, 1], shard_count=4)


async def test_paperbot_run_processes_each_serve_the_servers_of_their_shards(
    fake_discord: FakeDiscord, library_path: Path, tmp_path: Path
) -> None:
    """Two real `paperbot run --shards N --shard-count 2` processes on one library and one fake Discord."""
    fake = fake_discord
    guilds = [fake.add_guild(f"server-{s}", channels=("papers",), shard=(s, 2)) for s in range(2)]
    alice = fake.add_user("alice")
    for guild in guilds:
        fake.add_member(guild, alice)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{library_path}"\n'
                      f'[discord]\napi_base_url = "{fake.api_base_url}"\ngateway_url = "{fake.gateway_url}"\n')
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), "--shards", str(shard), "--shard-count", "2",
        cwd=ROOT, env={**os.environ, "DISCORD_TOKEN": fake.token},
        stdout=asyncio.subprocess.DEVNULL, stderr=(tmp_path / f"process-{shard}.log").open("wb"),
    ) for shard in range(2)]
    try:
        await fake.wait_for(lambda: {0, 1} <= set(fake.gateway.shards) and fake.commands.get(None)
                            and len([p for p in fake.gateway.sent if p["t"] == "GUILD_CREATE"]) == 2,
                            timeout=60, what="both processes to connect and sync")
        identified = sorted(p["d"]["shard"] for p in fake.gateway.ops(Op.IDENTIFY))
        assert identified == [[0, 2], [1, 2]]
        for guild in guilds:
            shard = shard_of(guild.id, 2)
            created = [p for p in fake.gateway.sent if p["t"] == "GUILD_CREATE" and p["d"]["id"] == str(guild.id)]
            assert [p["shard"] for p in created] == [shard]
            handle = await fake.send_slash_command(guild, guild.channel_ids[0], alice, "papers",
                                                   subcommand="search", options={"query": "language model"})
            response = await handle.response(timeout=30)
            assert response["type"] in (4, 5)  # answered, by the only process that was told: the shard's
            sent_on = [p["shard"] for p in fake.gateway.sent if p["t"] == "INTERACTION_CREATE"
                       and p["d"]["id"] == str(handle.id)]
            assert sent_on == [shard]
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
    assert [p.returncode for p in processes] == [0, 0], [
        (tmp_path / f"process-{n}.log").read_text()[-2000:] for n in range(2)]


async def plan_digest(world, day: dt.date = DAY) -> tuple[DigestChannel, outbox.Item]:
    row = DigestChannel(channel_id=world.channel.id, guild_id=world.guild.id, post_time=dt.time(9, 0),
                        timezone="UTC", created_at=NOW - dt.timedelta(hours=2))
    await channels.save_channel(world.bot.db, row)
    papers = await papers_on_day(world.bot.db, day)
    payloads = [(render.payload_to_dict(p), False) for p in render.digest_messages(day, papers, style="compact")]
    return row, await outbox.plan(world.bot.db, "digest", row.channel_id, day, payloads)


async def test_a_ledger_item_claimed_elsewhere_is_left_to_its_holder(world) -> None:
    """Processes sharing a library each send only what they claimed; the holder's item is skipped for now."""
    row, item = await plan_digest(world)
    poster = world.bot.daily.poster
    async with world.bot.db.hold("outbox", item.id) as held:  # as another process holding it would
        assert held
        outcome = await poster.deliver(row, DAY)
        assert (outcome.status, outcome.detail) == ("retry_later", CLAIMED_ELSEWHERE)
        assert world.fake.messages_in(world.channel) == []
    outcome = await poster.deliver(row, DAY)  # let go (or died): a later pass sends it
    assert outcome.status == "delivered" and len(world.fake.messages_in(world.channel)) == len(item.messages)


async def test_a_dm_claimed_elsewhere_is_left_to_its_holder(world) -> None:
    """DMs belong to no shard: on PostgreSQL every process may come to the same one; one sends it."""
    papers = await papers_on_day(world.bot.db, DAY)
    await subs.add_subscription(world.bot.db, world.alice.id, "tag", papers[0].tags[0], guild_id=world.guild.id,
                                max_per_user=25)
    dms = world.bot.subscription_poster
    item = await outbox.plan(world.bot.db, "dm", world.alice.id, DAY,
                             [(render.payload_to_dict(render.empty_day_message(DAY)), False)])
    async with world.bot.db.hold("outbox", item.id):
        outcome = await dms.deliver(world.alice.id, DAY)
        assert (outcome.status, outcome.detail) == ("retry_later", CLAIMED_ELSEWHERE)
    assert (await dms.deliver(world.alice.id, DAY)).status == "delivered"
    assert len(world.fake.messages_in(world.fake.state.dm_channel(world.alice))) == 1


async def test_a_claimed_item_is_read_again_so_what_its_last_holder_sent_is_not_sent_twice(world) -> None:
    row, stale = await plan_digest(world)
    assert (await world.bot.daily.poster.deliver(row, DAY)).status == "delivered"  # the other process's turn
    async with world.bot.daily.poster.poster.claim(stale) as claimed:  # this one read the item before that
        assert claimed is not None and claimed.finished
        assert all(m.message_id is not None for m in claimed.messages)


async def test_a_process_sees_only_its_shards_servers_so_only_they_can_say_a_subscriber_left(world) -> None:
    """A subscriber of a server on another process's shards is never paused by this process."""
    dms = world.bot.subscription_poster
    stranger = subs.Subscriber(user_id=world.owner.id + 1000, paused=False, dm_closed=False,
                               guild_ids=[world.guild.id, 5 << 22], subscription_count=2)
    dms.owns_guild = lambda guild_id: guild_id == world.guild.id
    assert await dms.still_a_member(stranger)  # not in the server this process sees; maybe in the other
    dms.owns_guild = lambda guild_id: True
    assert not await dms.still_a_member(stranger)  # every server seen, in none of them: left
