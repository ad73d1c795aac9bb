"""One global rate limit for all processes of a bot: the Redis pacer against the fake Discord's limit.

Discord counts 50 requests/s per bot token however many processes send them. Two processes
each pacing alone at the allowed rate together send twice that and collect global 429s; two
sharing the Redis pacer send the allowed rate between them and get none. Nothing here times
anything: the fake Discord's limiter says whether the limit was kept.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot.posting.pacing import RedisPacer, RequestPacer, make_pacer
from settings import DiscordSettings
from testing import FakeDiscord, running_bot
from tests.world import QuickBot, settings_for

ROOT = Path(__file__).resolve().parent.parent
LIMIT, WINDOW = 10, 0.5  # the fake's global limit: 10 requests per 0.5 s, i.e. 20/s
RATE = 12.0  # the pacers' configured rate: well under 20/s, so a stalled event loop cannot tip it over


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_bot() -> commands.Bot:
    """One process of the bot, as far as the REST limit is concerned: its own client and session."""
    return commands.Bot(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.01,
                        help_command=None)


async def burst(fake: FakeDiscord, pacers: list, requests_each: int) -> int:
    """Each pacer's process sends `requests_each` paced requests at once; returns the global 429s."""
    guild = fake.add_guild("Research")
    async with AsyncExitStack() as stack:
        bots = [await stack.enter_async_context(running_bot(fake, process_bot)) for _ in pacers]
        limiter = fake.enable_rate_limits(per_route=(1000, 60.0), global_per_second=LIMIT, global_window=WINDOW)

        async def one(bot: commands.Bot, pacer) -> None:
            await pacer.wait()
            await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}", guild_id=guild.id))

        await asyncio.gather(*(one(bot, pacer) for bot, pacer in zip(bots, pacers) for _ in range(requests_each)))
        return limiter.global_limited


@pytest.mark.redis
async def test_processes_sharing_the_redis_pacer_stay_under_the_global_limit_together(
    fake_discord: FakeDiscord, redis_url: str
) -> None:
    key = f"paperbot-test:{uuid.uuid4()}"
    pacers = [make_pacer(RATE, redis_url=redis_url, key=key, share=0.5) for _ in range(2)]
    try:
        assert all(isinstance(p, RedisPacer) for p in pacers)
        assert await burst(fake_discord, pacers, requests_each=12) == 0
        assert all(p.fallbacks == 0 for p in pacers)
    finally:
        for pacer in pacers:
            await pacer.client.delete(pacer.key)
            await pacer.close()


async def test_processes_pacing_alone_break_the_global_limit_together(fake_discord: FakeDiscord) -> None:
    """What the shared pacer prevents: each process keeps the rate, the bot as a whole does not."""
    assert await burst(fake_discord, [RequestPacer(RATE), RequestPacer(RATE)], requests_each=12) > 0


async def test_without_redis_a_process_paces_alone_at_its_share_of_the_rate(caplog: pytest.LogCaptureFixture) -> None:
    pacer = make_pacer(48.0, redis_url=f"redis://127.0.0.1:{closed_port()}/0", key="bot", share=0.25)
    try:
        await pacer.wait()
        await pacer.wait()
    finally:
        await pacer.close()
    assert pacer.fallbacks == 2
    assert pacer.fallback.interval == pytest.approx(1 / 12)  # a quarter of the shards: a quarter of 48/s
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage, not one per request"


def test_one_process_without_redis_keeps_the_in_process_pacer() -> None:
    pacer = make_pacer(48.0, redis_url=None, key="bot")
    assert type(pacer) is RequestPacer and pacer.interval == pytest.approx(1 / 48)


@pytest.mark.redis
async def test_the_bot_shares_its_rate_through_redis_under_its_own_key(
    fake_discord: FakeDiscord, tmp_path: Path, redis_url: str
) -> None:
    settings = settings_for(tmp_path / "library.db").model_copy(
        update={"discord": DiscordSettings(rate_limit_redis_url=redis_url)})
    async with running_bot(fake_discord, lambda: QuickBot(settings, guild_ready_timeout=0.01)) as bot:
        pacer = bot.pacer
        assert isinstance(pacer, RedisPacer) and bot.daily.poster.pacer is pacer
        assert pacer.key == f"paperbot:global-rate:{fake_discord.bot_user.id}"
        await pacer.wait()
        assert await pacer.client.exists(pacer.key) and pacer.fallbacks == 0
        await pacer.client.delete(pacer.key)


@pytest.mark.parametrize(("required", "outcome"), [("", "1 skipped"), ("redis", "1 error")])
def test_a_service_test_is_skipped_where_the_service_is_absent_and_fails_where_it_is_required(
    tmp_path: Path, required: str, outcome: str
) -> None:
    """CI sets PAPERBOT_REQUIRE_SERVICES, so its Redis tests cannot silently stop running."""
    (tmp_path / "test_needs_redis.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.redis
        def test_uses_redis(redis_url):
            pass
    """))
    env = {"PATH": "/usr/bin:/bin", "PAPERBOT_TEST_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
           "PAPERBOT_REQUIRE_SERVICES": required, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.services", "-rs",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "nothing answers at 127.0.0.1" in result.stdout
    assert result.returncode == (1 if required else 0)
