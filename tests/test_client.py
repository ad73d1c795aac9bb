"""`paperbot run` as a real process pointed at the fake Discord by config, and command sync."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.client import Paperbot
from settings import DatabaseSettings, DiscordSettings, Settings
from testing import FakeDiscord, running_bot

REPO = Path(__file__).parent.parent


async def test_commands_sync_to_development_guilds_only(fake_discord: FakeDiscord, library_path: Path) -> None:
    guild = fake_discord.add_guild("Dev")
    settings = Settings(database=DatabaseSettings(path=library_path), discord=DiscordSettings(dev_guild_ids=[guild.id]))
    async with running_bot(fake_discord, lambda: Paperbot(settings, guild_ready_timeout=0.01)):
        assert {"papers", "paper", "tags", "digest"} <= set(fake_discord.commands.get(guild.id, {}))
        assert not fake_discord.commands.get(None)


async def test_run_serves_commands_and_stops_cleanly_on_sigterm(
    fake_discord: FakeDiscord, library_path: Path, tmp_path: Path
) -> None:
    guild = fake_discord.add_guild("Research", channels=("papers",))
    alice = fake_discord.add_user("alice")
    fake_discord.add_member(guild, alice)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\npath = "{library_path}"\n'
        f'[discord]\napi_base_url = "{fake_discord.api_base_url}"\ngateway_url = "{fake_discord.gateway_url}"\n'
    )
    env = {**os.environ, "DISCORD_TOKEN": fake_discord.token}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await fake_discord.wait_for(lambda: fake_discord.commands.get(None), timeout=20, what="the bot to sync")
        await fake_discord.gateway.wait_for_dispatch("GUILD_CREATE")
        channel = fake_discord.state.channel(guild.channel_ids[0])
        handle = await fake_discord.send_slash_command(guild, channel, alice, "paper", options={"id": "2502.13923"})
        response = await handle.answer(timeout=10)
        assert "Qwen2.5-VL" in response["data"]["embeds"][0]["title"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    log = output.decode()
    assert process.returncode == 0, log
    assert "shutting down" in log and "Traceback" not in log
    assert fake_discord.token not in log, "the token must never be logged"


def command_puts(fake: FakeDiscord) -> int:
    return sum(1 for r in fake.requests if r.method == "PUT" and (r.route or "").endswith("/commands"))


async def test_commands_are_synced_only_when_the_tree_changed(fake_discord: FakeDiscord, library_path: Path) -> None:
    settings = Settings(database=DatabaseSettings(path=library_path))
    async with running_bot(fake_discord, lambda: Paperbot(settings, guild_ready_timeout=0.01)):
        pass
    assert command_puts(fake_discord) == 1 and "help" in fake_discord.commands[None]
    async with running_bot(fake_discord, lambda: Paperbot(settings, guild_ready_timeout=0.01)):
        pass
    assert command_puts(fake_discord) == 1, "a plain restart must not sync again"

    guild = fake_discord.add_guild("Dev")  # where the commands go changed: sync
    moved = Settings(database=DatabaseSettings(path=library_path), discord=DiscordSettings(dev_guild_ids=[guild.id]))
    async with running_bot(fake_discord, lambda: Paperbot(moved, guild_ready_timeout=0.01)):
        pass
    assert command_puts(fake_discord) == 2


async def test_a_changed_command_is_synced(fake_discord: FakeDiscord, library_path: Path) -> None:
    settings = Settings(database=DatabaseSettings(path=library_path))
    async with running_bot(fake_discord, lambda: Paperbot(settings, guild_ready_timeout=0.01)):
        pass

    class Renamed(Paperbot):
        async def sync_commands_if_changed(self) -> None:
            self.tree.get_command("tags").description = "Every tag, counted"
            await super().sync_commands_if_changed()

    async with running_bot(fake_discord, lambda: Renamed(settings, guild_ready_timeout=0.01)):
        pass
    assert command_puts(fake_discord) == 2
    assert fake_discord.commands[None]["tags"]["description"] == "Every tag, counted"


async def test_paperbot_sync_forces_a_sync(fake_discord: FakeDiscord, library_path: Path) -> None:
    from pydantic import SecretStr

    from bot.client import force_sync
    from testing.server import point_discordpy_at

    settings = Settings(database=DatabaseSettings(path=library_path),
                        discord=DiscordSettings(api_base_url=fake_discord.api_base_url))
    async with running_bot(fake_discord, lambda: Paperbot(settings, guild_ready_timeout=0.01)):
        pass
    with point_discordpy_at(fake_discord):
        count = await force_sync(settings, SecretStr(fake_discord.token))
    assert command_puts(fake_discord) == 2 and count == len(fake_discord.commands[None])


async def test_the_heartbeat_says_connected_while_running_and_not_after(
    fake_discord: FakeDiscord, library_path: Path
) -> None:
    from bot import health

    fake_discord.add_guild("Research", channels=("papers",))
    settings = Settings(database=DatabaseSettings(path=library_path))
    beat = health.heartbeat_path(library_path)
    assert health.problem(beat) is not None

    class Beating(Paperbot):
        heartbeat_seconds = 0.05

    async with running_bot(fake_discord, lambda: Beating(settings, guild_ready_timeout=0.01)) as bot:
        for _ in range(200):
            if health.problem(beat) is None:
                break
            await asyncio.sleep(0.05)
        assert health.problem(beat) is None and bot.daily.scheduler.running
        bot.daily.scheduler.shutdown(wait=False)  # a scheduler that died: unhealthy at the next beat
        await asyncio.sleep(0.2)
        assert health.problem(beat) == "the bot's scheduler is not running: no digests will be posted"
    assert health.problem(beat) == "the bot is not connected to Discord"


async def test_digest_setup_and_status_answer_in_the_seconds_before_on_ready(fake_discord: FakeDiscord,
                                                                            library_path: Path) -> None:
    """Connected, guilds arriving, on_ready not yet called: commands are served, so they must work."""
    from testing.server import point_discordpy_at
    from tests.world import QuickBot, settings_for

    guild = fake_discord.add_guild("Research", channels=("papers",))
    channel = fake_discord.state.channel(guild.channel_ids[0])
    owner = fake_discord.state.user(guild.owner_id)
    bot = QuickBot(settings_for(library_path), guild_ready_timeout=60)  # on_ready only after a quiet minute
    with point_discordpy_at(fake_discord):
        task = asyncio.create_task(bot.start(fake_discord.token))
        try:
            await fake_discord.wait_for(lambda: bot.get_guild(guild.id) is not None or task.done(), timeout=10,
                                        what="the server to reach the bot")
            assert not bot.is_ready()
            setup = await fake_discord.send_slash_command(guild, channel, owner, "digest", subcommand="setup",
                                                          options={"channel": channel.id})
            answer = (await setup.response())["data"]["content"]
            assert answer.startswith("Set up") and "Next post: 20" in answer, answer
            status = await fake_discord.send_slash_command(guild, channel, owner, "digest", subcommand="status")
            field = (await status.response())["data"]["embeds"][0]["fields"][0]["value"]
            assert "Next post: 20" in field and "not scheduled" not in field, field
            assert not bot.is_ready()  # all of it before on_ready
        finally:
            await bot.close()
            await asyncio.wait_for(task, 10)
