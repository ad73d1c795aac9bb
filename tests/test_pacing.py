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

from bot.posting.pacing import NO_PACING, RedisPacer, RequestPacer, _counts_towards_the_global_limit, make_pacer
from settings import DeliverySettings, DiscordSettings
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


def redis_settings(tmp_path: Path, redis_url: str, name: str, per_second: float = RATE):
    settings = settings_for(tmp_path / f"{name}.db")
    return settings.model_copy(update={"discord": DiscordSettings(rate_limit_redis_url=redis_url),
                                       "delivery": DeliverySettings(requests_per_second=per_second)})


@pytest.mark.redis
async def test_the_bot_paces_every_rest_request_through_redis_under_its_own_key(
    fake_discord: FakeDiscord, tmp_path: Path, redis_url: str
) -> None:
    settings = redis_settings(tmp_path, redis_url, "library", per_second=48.0)
    async with running_bot(fake_discord, lambda: QuickBot(settings, guild_ready_timeout=0.01)) as bot:
        pacer = bot.pacer
        assert isinstance(pacer, RedisPacer) and bot.daily.poster.pacer is NO_PACING  # paced once, on the wire
        assert pacer.key == f"paperbot:global-rate:{fake_discord.bot_user.id}"
        assert await pacer.client.exists(pacer.key) and pacer.fallbacks == 0  # syncing the commands took slots
        await pacer.client.delete(pacer.key)


@pytest.mark.redis
@pytest.mark.parametrize("paced", ["before discord.py", "on the wire"])
async def test_requests_discord_py_held_back_after_a_global_429_leave_paced_not_in_a_burst(
    fake_discord: FakeDiscord, tmp_path: Path, redis_url: str, paced: str
) -> None:
    """After a global 429 discord.py holds every request of the process, then lets them go at once.

    Paced before discord.py (as the poster does alone), that burst lands on top of the other
    processes' schedule and breaks the limit; paced on the wire, each held request takes a new slot.
    """
    fake = fake_discord
    guild = fake.add_guild("Research")
    key = f"paperbot-test:{uuid.uuid4()}"
    if paced == "on the wire":  # what a Paperbot with rate_limit_redis_url does
        make_bot = [lambda n=n: QuickBot(redis_settings(tmp_path, redis_url, f"p{n}"), guild_ready_timeout=0.01)
                    for n in range(2)]
    else:
        make_bot = [process_bot, process_bot]
    explicit = [make_pacer(RATE, redis_url=redis_url, key=key) for _ in make_bot]
    async with AsyncExitStack() as stack:
        bots = [await stack.enter_async_context(running_bot(fake, make)) for make in make_bot]
        bots[0].http.user_agent += " process-0"
        limiter = fake.enable_rate_limits(per_route=(1000, 60.0), global_per_second=LIMIT, global_window=WINDOW)
        # Discord tells process 0's first request: global limit, wait 2 s (its other 11 are paced meanwhile).
        fake.fail_next("GET", "/guilds/{guild_id}", status=429, is_global=True, retry_after=2.0,
                       when=lambda req: req.headers.get("User-Agent", "").endswith("process-0"))

        async def one(bot, pacer) -> None:
            if paced == "before discord.py":
                await pacer.wait()
            await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}", guild_id=guild.id))

        try:
            await asyncio.gather(*(one(bot, pacer) for bot, pacer in zip(bots, explicit) for _ in range(12)))
        finally:
            wire = getattr(bots[0], "pacer", None)
            if wire is not None:
                await wire.client.delete(wire.key)
            await explicit[0].client.delete(key)
            for pacer in explicit:
                await pacer.close()
    injected = [r for r in fake.requests if r.status == 429 and r.response.get("retry_after") == 2.0]
    assert len(injected) == 1
    if paced == "on the wire":
        assert limiter.global_limited == 0
    else:
        assert limiter.global_limited > 0


@pytest.mark.redis
async def test_a_process_woken_late_for_its_slot_takes_a_new_one_instead_of_bursting(redis_url: str) -> None:
    ticks = iter(range(1000))
    pacer = make_pacer(20.0, redis_url=redis_url, key=f"test-{uuid.uuid4()}")
    pacer.clock = lambda: next(ticks) * 0.5  # every look at the clock finds it half a second later
    try:
        await pacer.wait()  # the first slot is free at once: nothing to be late for
        await pacer.wait()  # the next is 50 ms away, and each wake-up is 0.5 s late: re-reserved, then goes
        assert pacer.late_slots == RedisPacer.MAX_RESERVATIONS - 1
    finally:
        await pacer.client.delete(pacer.key)
        await pacer.close()


@pytest.mark.parametrize(("url", "paced"), [
    ("https://discord.com/api/v10/channels/1/messages", True),
    ("https://discord.com/api/v10/guilds/1/members/2/roles/3", True),
    ("https://discord.com/api/v10/interactions/1/tok/callback", False),
    ("https://discord.com/api/v10/webhooks/1/tok/messages/@original", False),
    ("wss://gateway.discord.gg/?v=10&encoding=json", False),
])
def test_only_requests_discord_counts_towards_the_global_limit_are_paced(url: str, paced: bool) -> None:
    import yarl

    assert _counts_towards_the_global_limit(yarl.URL(url)) is paced


@pytest.mark.parametrize(("required", "outcome"), [("", "1 skipped"), ("redis", "1 error")])
def test_a_service_test_is_skipped_where_the_service_is_absent_and_fails_where_it_is_required(
    tmp_path: Path, required: str, outcome: str
) -> None:
    """CI sets REQUIRE_TEST_SERVICES, so its Redis tests cannot silently stop running."""
    (tmp_path / "test_needs_redis.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.redis
        def test_uses_redis(redis_url):
            pass
    """))
    env = {"PATH": "/usr/bin:/bin", "TEST_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
           "REQUIRE_TEST_SERVICES": required, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.services", "-rs",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "nothing answers at 127.0.0.1" in result.stdout
    assert result.returncode == (1 if required else 0)
