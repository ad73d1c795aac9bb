"""One global rate limit for all processes of a bot: the Redis pacer against the fake Discord's limit.

Discord counts 50 requests/s per bot token however many processes send them. Two processes
each pacing alone at the allowed rate together send twice that and collect global 429s; two
sharing the Redis pacer send the allowed rate between them and get none. Nothing here times
anything: the fake Discord's limiter says whether the limit was kept.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot.posting import pacing
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
        await pacers[0].client.delete(*pacers[0].keys)
        for pacer in pacers:
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
        assert pacer.limit == 48 and pacer.window_us == 1_000_000  # Discord's window: 48 in any second
        await pacer.client.delete(*pacer.keys)


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
                await wire.client.delete(*wire.keys)
            await explicit[0].client.delete(*explicit[0].keys)
            for pacer in explicit:
                await pacer.close()
    injected = [r for r in fake.requests if r.status == 429 and r.response.get("retry_after") == 2.0]
    assert len(injected) == 1
    if paced == "on the wire":
        assert limiter.global_limited == 0
    else:
        assert limiter.global_limited > 0


STALLED = contextvars.ContextVar("stalled", default=False)


class StalledLoop:
    """`asyncio` as the pacer sees it in the tasks of a process marked `STALLED`: its sleeps end late.

    `every`: until `until` (loop time) the process's event loop gets to run only every `every`
    seconds from `start`, so a sleep ends at the next tick, together with every other one due
    meanwhile (a stalled loop). `late`: each sleep ends that much after it was due (a loop always
    behind). Other tasks, and everything but the pacer, keep the real clock.
    """

    def __init__(self, *, start: float = 0.0, every: float = 0.0, until: float = 0.0, late: float = 0.0) -> None:
        self.start, self.every, self.until, self.late = start, every, until, late

    def __getattr__(self, name: str):
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result=None):
        if not STALLED.get():
            return await asyncio.sleep(delay, result)
        now = asyncio.get_running_loop().time()
        due = now + delay
        if self.every and due < self.until:
            due = self.start + math.ceil((due - self.start) / self.every) * self.every
        return await asyncio.sleep(due + self.late - now, result)


@pytest.mark.redis
async def test_callers_of_a_stalled_process_never_go_together_past_the_global_limit(
    fake_discord: FakeDiscord, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process's event loop stalls for three seconds, with callers waiting for their slots.

    When it runs again every caller whose slot passed wakes at once; letting them go as they
    wake (as the old pacer did once they had been late three times running) puts them all into
    one of Discord's windows. Each must be admitted by the shared window instead, so the fake
    Discord sees no global 429.
    """
    fake = fake_discord
    guild = fake.add_guild("Research")
    key = f"paperbot-test:{uuid.uuid4()}"
    # 20/s = 5 in any 0.25 s, against the fake's 10 per 0.25 s: room for the timing of two processes in one loop.
    pacers = [make_pacer(20.0, redis_url=redis_url, key=key, window=0.25) for _ in range(2)]
    async with AsyncExitStack() as stack:
        bots = [await stack.enter_async_context(running_bot(fake, process_bot)) for _ in pacers]
        limiter = fake.enable_rate_limits(per_route=(1000, 60.0), global_per_second=10, global_window=0.25)
        now = asyncio.get_running_loop().time()
        monkeypatch.setattr(pacing, "asyncio", StalledLoop(start=now, every=1.0, until=now + 3.0))

        async def one(bot, pacer, stalled: bool) -> None:
            STALLED.set(stalled)
            await pacer.wait()
            await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}", guild_id=guild.id))

        try:
            await asyncio.gather(*(one(bots[0], pacers[0], True) for _ in range(16)),
                                 *(one(bots[1], pacers[1], False) for _ in range(2)))
        finally:
            await pacers[0].client.delete(*pacers[0].keys)
            for pacer in pacers:
                await pacer.close()
    assert len(fake.requests_to("GET", "/guilds/{guild_id}")) >= 18
    assert limiter.global_limited == 0
    assert pacers[0].late > 0  # the stall did make it late


@pytest.mark.redis
async def test_a_process_always_late_for_its_slot_keeps_its_place_and_is_not_starved(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request in any 0.2 s, one slot every 0.2 s; process A wakes 0.28 s after each.

    A finds the window taken by B's latest request every time it wakes. Turned away, it keeps its
    place by its slot: B leaves it the next free one, so A gets through while B still has
    requests waiting, instead of only once B has none (or going anyway, past the limit).
    """
    key = f"paperbot-test:{uuid.uuid4()}"
    slow, busy = (make_pacer(5.0, redis_url=redis_url, key=key, window=0.2) for _ in range(2))
    monkeypatch.setattr(pacing, "asyncio", StalledLoop(late=0.28))
    went: list[str] = []

    async def one(pacer, name: str) -> None:
        STALLED.set(name == "A")
        await pacer.wait()
        went.append(name)

    try:
        assert slow.limit == 1
        await one(busy, "B")  # B is busy before A asks
        await asyncio.gather(*(one(busy, "B") for _ in range(7)), one(slow, "A"))
    finally:
        await slow.client.delete(*slow.keys)
        await slow.close()
        await busy.close()
    assert slow.refused >= 1 and slow.fallbacks == busy.fallbacks == 0  # turned away, then admitted
    assert went.index("A") < len(went) - 2, went


@pytest.mark.redis
async def test_each_admission_is_one_entry_in_the_window_however_close_together(redis_url: str) -> None:
    """Two processes let 60 requests go at a high rate: the log counts every one (members are unique)."""
    key = f"paperbot-test:{uuid.uuid4()}"
    pacers = [make_pacer(1000.0, redis_url=redis_url, key=key, window=10.0) for _ in range(2)]
    try:
        await asyncio.gather(*(pacer.wait() for pacer in pacers for _ in range(30)))
        assert await pacers[0].client.zcard(pacers[0].keys[1]) == 60
        assert not await pacers[0].client.exists(pacers[0].keys[2])  # nobody waited, so nobody holds a place
    finally:
        await pacers[0].client.delete(*pacers[0].keys)
        for pacer in pacers:
            await pacer.close()


@pytest.mark.redis
async def test_a_caller_resuming_late_from_its_admission_is_logged_when_it_goes(redis_url: str) -> None:
    """Redis lets the request go, then the process's event loop is busy for 0.2 s before the caller resumes.

    The request leaves 0.2 s after Redis logged it, so Discord would count it in a later window than
    the log has it; a few of those together go past the limit. The caller asks again instead, and
    the log holds the time it left.
    """
    pacer = make_pacer(20.0, redis_url=redis_url, key=f"paperbot-test:{uuid.uuid4()}")
    admit, answers = pacer._admit, []

    async def busy_after_the_first_answer(*args, **kwargs):
        answers.append(await admit(*args, **kwargs))
        if answers == [0]:
            time.sleep(0.2)  # the loop runs other work before this caller resumes
        return answers[-1]

    pacer._admit = busy_after_the_first_answer

    async def redis_now() -> int:
        seconds, microseconds = await pacer.client.time()
        return seconds * 1_000_000 + microseconds

    try:
        asked = await redis_now()
        await pacer.wait()
        [(_, logged)] = await pacer.client.zrange(pacer.keys[1], 0, -1, withscores=True)
        assert logged >= asked + 200_000  # logged when it left, not when Redis first let it go
        assert answers == [0, 0] and pacer.stale == 1
    finally:
        await pacer.client.delete(*pacer.keys)
        await pacer.close()


@pytest.mark.redis
async def test_a_caller_cancelled_while_it_waits_gives_its_place_in_the_window_back(redis_url: str) -> None:
    pacer = make_pacer(1.0, redis_url=redis_url, key=f"paperbot-test:{uuid.uuid4()}")  # one request a second
    log_key = pacer.keys[1]
    try:
        await pacer.wait()
        waiting = asyncio.create_task(pacer.wait())  # its slot is a second away
        while await pacer.client.zcard(log_key) < 2:  # reserved: its place is in the log
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await pacer.client.zcard(log_key) == 1  # only the request that went
    finally:
        await pacer.client.delete(*pacer.keys)
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
