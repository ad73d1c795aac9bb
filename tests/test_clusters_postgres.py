"""Clusters on one PostgreSQL library: real `paperbot run` processes, one of them killed mid fan-out.

Three processes (shards 0-1, 2-3 and 4-5 of 6) open one PostgreSQL schema and one fake Discord with
300 servers, one digest channel each, and a few subscribers. The day's digest is served by a
local digest server that counts its fetches. Mid fan-out one process is SIGKILLed and started
again. Then: every channel holds exactly the messages its ledger item planned (no duplicate, no
miss), each posted by the process holding the server's shard; each subscriber got one DM; the
day was fetched once. Also here: the claims themselves, between two libraries on one schema
(as two processes hold them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from collections import Counter
from types import SimpleNamespace
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from bot.posting.poster import Poster
from bot.scheduler import DailyScheduler
from bot.shards import ShardSet, shard_of
from digests import fetcher
from settings import DatabaseSettings, DiscordSettings, Settings, SourceSettings
from digests.parse import parse_bytes
from storage import channels, db, fetches, outbox
from storage import subscriptions as subs
from storage.channels import DigestChannel
from testing import FakeDiscord, running_bot
from storage.postgres import scratch_schema
from tests.test_clusters import QuickCluster
from tests.services import service_url

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DAY = ROOT / "tests" / "data" / "corpus" / "timlrx" / "archive" / "2025" / "02" / "20.md"  # 18 papers
SERVERS = 300
SHARD_COUNT = 6
PROCESS_SHARDS = ["0-1", "2-3", "4-5"]
VICTIM = 1  # the process (shards 2-3) killed mid fan-out
MESSAGES = "/channels/{channel_id}/messages"
RUN_TIMEOUT = 240.0


def process_of(guild_id: int) -> int:
    return shard_of(guild_id, SHARD_COUNT) // 2


def label_of(process: int) -> str:
    first = process * 2
    return ShardSet((first, first + 1), SHARD_COUNT).label


def sender(request) -> str:
    """The shards of the process that made the request (`ShardedPaperbot` puts them in its user agent)."""
    return request.headers["User-Agent"].rsplit(" ", 1)[-1].removeprefix("shards/")


@asynccontextmanager
async def schema_url():
    """A PostgreSQL URL naming a schema of its own, dropped afterwards."""
    async with scratch_schema(service_url("postgres"), "c") as url:
        yield url


class DigestServer:
    """The producer's archive on 127.0.0.1: today's file is a real corpus day under today's date."""

    def __init__(self, day: dt.date, body: bytes) -> None:
        self.path = f"/{day:%Y/%m/%d}.md"
        self.body = body
        self.fetches: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _serve(self, request: web.Request) -> web.Response:
        self.fetches[request.path] += 1
        if request.path != self.path:
            return web.Response(status=404)
        return web.Response(body=self.body, content_type="text/markdown")

    async def __aenter__(self) -> DigestServer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.runner.cleanup()


class Cluster:
    """The `paperbot run` processes, started, killed and stopped by index; logs in `folder`."""

    def __init__(self, folder: Path, config: Path, env: dict[str, str]) -> None:
        self.folder, self.config, self.env = folder, config, env
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.starts: Counter[int] = Counter()

    def log(self, index: int) -> Path:
        return self.folder / f"process-{index}.log"

    async def start(self, index: int) -> None:
        self.starts[index] += 1
        with self.log(index).open("ab") as log:
            log.write(f"\n===== start #{self.starts[index]} =====\n".encode())
            log.flush()
            self.processes[index] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(self.config),
                "--shards", PROCESS_SHARDS[index], "--shard-count", str(SHARD_COUNT),
                cwd=self.folder, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )

    async def kill(self, index: int) -> None:
        """SIGKILL: no cleanup at all, as after a power cut or the OOM killer."""
        process = self.processes[index]
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()

    async def stop_all(self) -> dict[int, int | None]:
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        return {index: process.returncode for index, process in self.processes.items()}

    def logs(self) -> str:
        return "\n".join(f"--- process {i} ---\n{self.log(i).read_text(errors='replace')[-3000:]}"
                         for i in range(len(PROCESS_SHARDS)))


async def set_up_library(url: str, fake: FakeDiscord, day: dt.date, tag: str):
    """300 servers with a digest channel each (posting at 00:00 UTC), and one subscriber per process."""
    guilds = [fake.add_guild(f"lab-{n}", channels=("papers",), shard=(n % SHARD_COUNT, SHARD_COUNT))
              for n in range(SERVERS)]
    subscribers = []
    library = await db.connect(url)
    try:
        yesterday = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(12, 0), dt.UTC)
        for guild in guilds:
            await channels.save_channel(library, DigestChannel(
                channel_id=guild.channel_ids[0], guild_id=guild.id, post_time=dt.time(0, 0), timezone="UTC",
                created_at=yesterday))
        for process in range(len(PROCESS_SHARDS)):  # each subscribed in a server of another process
            guild = next(g for g in guilds if process_of(g.id) == process)
            user = fake.add_user(f"reader-{process}")
            fake.add_member(guild, user)
            await subs.add_subscription(library, user.id, "tag", tag, guild_id=guild.id, max_per_user=25)
            subscribers.append(user)
    finally:
        await library.close()
    return guilds, subscribers


def write_config(folder: Path, fake: FakeDiscord, digests: DigestServer) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[discord]\napi_base_url = "{fake.api_base_url}"\ngateway_url = "{fake.gateway_url}"\n'
        '[fetch]\nstart_time = "00:00"\ntimezone = "UTC"\n'
        # Slow enough (10 messages/s per process) that the kill lands mid fan-out.
        '[delivery]\ncatch_up_days = 0\nrequests_per_second = 10.0\n'
        f'[[sources]]\nname = "local"\nmarkdown_url = "{digests.url}/{{yyyy}}/{{mm}}/{{dd}}.md"\n'
    )
    return config


async def ledger_done(url: str, day: dt.date, channel_ids: list[int], user_ids: list[int]) -> bool:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE kind = 'digest' AND status = 'done') AS digests, "
            "count(*) FILTER (WHERE kind = 'dm' AND status = 'done') AS dms FROM outbox WHERE period = $1",
            day.isoformat())
    finally:
        await conn.close()
    return row["digests"] == len(channel_ids) and row["dms"] == len(user_ids)


async def test_three_processes_post_the_day_once_through_a_kill_and_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        await run_the_day(fake, tmp_path)
    # A message event sent to the killed process's dying gateway connection is the fake's only complaint.
    assert [e for e in fake.errors if not isinstance(e, ConnectionError)] == [] and fake.spec_violations == []


async def run_the_day(fake: FakeDiscord, tmp_path: Path) -> None:
    day = dt.datetime.now(dt.UTC).date()
    body = CORPUS_DAY.read_bytes().replace(b"## Papers for 2025-02-20", f"## Papers for {day}".encode(), 1)
    tag = parse_bytes(body, "digest.md").papers[0].tags[0]
    async with schema_url() as url, DigestServer(day, body) as digests:
        guilds, subscribers = await set_up_library(url, fake, day, tag)
        channel_ids = [g.channel_ids[0] for g in guilds]
        owner = {g.channel_ids[0]: process_of(g.id) for g in guilds}
        config = write_config(tmp_path, fake, digests)
        # The URL comes from the environment, as a password would.
        env = {**os.environ, "DISCORD_TOKEN": fake.token, "PAPERBOT_DATABASE__URL": url}
        cluster = Cluster(tmp_path, config, env)

        def victim_messages() -> int:
            return sum(len(fake.messages_in(c)) for c in channel_ids if owner[c] == VICTIM)

        try:
            for index in range(len(PROCESS_SHARDS)):
                await cluster.start(index)
            # Mid fan-out: the victim has posted some of its ~100 channels' messages, far from all.
            await fake.wait_for(lambda: victim_messages() >= 30, timeout=RUN_TIMEOUT, what="the victim's fan-out")
            posted_before_kill = victim_messages()
            await cluster.kill(VICTIM)
            await cluster.start(VICTIM)

            loop = asyncio.get_running_loop()
            deadline = loop.time() + RUN_TIMEOUT
            while not await ledger_done(url, day, channel_ids, [u.id for u in subscribers]):
                assert loop.time() < deadline, "the day was not delivered in time:\n" + cluster.logs()
                dead = [i for i, p in cluster.processes.items() if p.returncode is not None]
                assert not dead, f"processes {dead} died:\n" + cluster.logs()
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)  # anything sent after the ledger says done would be a duplicate
        finally:
            codes = await cluster.stop_all()
        assert codes == {0: 0, 1: 0, 2: 0}, cluster.logs()

        library = await db.connect(url)
        try:
            items = {c: await outbox.get(library, "digest", c, day) for c in channel_ids}
            dms = {u.id: await outbox.get(library, "dm", u.id, day) for u in subscribers}
        finally:
            await library.close()

    expected_per_channel = len(items[channel_ids[0]].messages)
    assert expected_per_channel >= 2 and posted_before_kill < expected_per_channel * SERVERS / 3
    duplicates, misses, wrong_sender = [], [], []
    posts = fake.requests_to("POST", MESSAGES)
    for channel_id in channel_ids:
        recorded = [str(m.message_id) for m in items[channel_id].messages]
        posted = [m["id"] for m in fake.messages_in(channel_id)]
        if len(posted) > len(recorded) or set(posted) - set(recorded):
            duplicates.append(channel_id)  # a message the ledger does not know of
        if set(recorded) - set(posted):
            misses.append(channel_id)
        senders = {sender(r) for r in posts if r.params["channel_id"] == str(channel_id) and r.status == 200}
        if senders != {label_of(owner[channel_id])}:
            wrong_sender.append((channel_id, senders))
    assert (duplicates, misses, wrong_sender) == ([], [], [])
    for user in subscribers:
        dm_channel = fake.state.dm_channel(user)
        assert len(fake.messages_in(dm_channel)) == len(dms[user.id].messages) == 1, user.name
    assert digests.fetches == Counter({digests.path: 1}), "the day is fetched by one process, once"
    assert cluster.starts[VICTIM] == 2
    print(f"{SERVERS} channels x {expected_per_channel} messages and {len(subscribers)} DMs from "
          f"{len(PROCESS_SHARDS)} processes; process {VICTIM} killed after {posted_before_kill} of its messages; "
          f"{len(posts)} message POSTs; 0 duplicates, 0 misses, 0 from another process; 1 fetch")


async def test_a_ledger_claim_held_by_one_process_keeps_the_others_off_it() -> None:
    """Two libraries on one schema claim as two processes do: a session lock each, across connections."""
    async with schema_url() as url:
        holder, other = await db.connect(url), await db.connect(url)
        try:
            await channels.save_channel(holder, DigestChannel(channel_id=11, guild_id=22, post_time=dt.time(9, 0),
                                                                timezone="UTC"))
            item = await outbox.plan(holder, "digest", 11, dt.date(2025, 2, 20), [({"content": "hello"}, False)])
            poster = Poster(SimpleNamespace(db=other, user=None))
            async with holder.hold("outbox", item.id) as held:
                assert held
                async with poster.claim(item) as claimed:
                    assert claimed is None  # left to its holder
                await outbox.mark_sent(holder, item.id, 0, 333)  # the holder sends it meanwhile
            async with poster.claim(item) as claimed:  # let go: now this process's, as the ledger has it now
                assert claimed is not None and claimed.messages[0].message_id == 333
        finally:
            await holder.close()
            await other.close()


async def test_a_process_waits_for_the_day_another_process_is_fetching_then_only_posts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    day = dt.date(2025, 2, 21)
    fetched: list[dt.date] = []

    async def fetch_all(conn, session, sources, day, settings, **options) -> list:
        fetched.append(day)
        return []

    monkeypatch.setattr(fetcher, "fetch_all", fetch_all)
    async with schema_url() as url:
        holder, other = await db.connect(url), await db.connect(url)
        try:
            settings = Settings(sources=[SourceSettings(name="local", folder=tmp_path)])
            scheduler = DailyScheduler(other, poster=None, settings=settings)
            posted = asyncio.Event()
            monkeypatch.setattr(scheduler, "post_due", lambda now=None: posted.set() or asyncio.sleep(0))
            async with holder.hold("fetch", day.toordinal()):
                waiting = asyncio.create_task(scheduler.fetch_and_post(day=day))
                await asyncio.sleep(0.5)
                assert not waiting.done() and fetched == []
                await fetches.record_attempt(holder, "local", day, "folder", "ingested", "18 papers")
            await asyncio.wait_for(waiting, 30)
            assert fetched == [] and posted.is_set()
        finally:
            await holder.close()
            await other.close()


async def test_on_postgresql_every_process_sends_dms_not_only_shard_0(fake_discord: FakeDiscord) -> None:
    async with schema_url() as url:
        settings = Settings(database=DatabaseSettings(url=url), discord=DiscordSettings(shard_ids=[1], shard_count=3))
        async with running_bot(fake_discord, lambda: QuickCluster(settings, guild_ready_timeout=0.01),
                               ready_timeout=60) as bot:  # a new schema is migrated first
            assert not bot.shard_set.sends_dms and bot.daily.dm is bot.subscription_poster
            assert bot.http.user_agent.endswith(" shards/1/3")
