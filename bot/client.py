"""The Discord client: opens the library, loads the cogs, syncs commands, stops cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
from pathlib import Path

import aiohttp
import aiosqlite
import discord
import yarl
from discord.ext import commands
from pydantic import SecretStr

from bot import errors, health, logs, render
from settings import DiscordSettings, Settings
from bot.posting.daily import DigestPoster
from bot.posting.dms import SubscriptionPoster
from bot.posting.poster import Poster
from bot.posting.roundups import RoundupPoster
from bot.scheduler import DailyScheduler
from bot.posting.pacing import NO_PACING, make_pacer, pace_every_request
from bot.shards import ShardSet
from bot.related import RelatedClick
from bot.votes import VoteClick
from storage import db
from storage.errors import DatabaseError

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.papers", "bot.cogs.digest", "bot.cogs.subscriptions", "bot.cogs.stats", "bot.cogs.help")
# Discord unreachable at start (network down, DNS, a 5xx): wait and try again, this long at most.
NETWORK_ERRORS = (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError, discord.DiscordServerError,
                  discord.GatewayNotFound)
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 5.0, 300.0


def point_at(endpoints: DiscordSettings) -> None:
    """Send REST calls and the gateway connection to a proxy (or a fake) when configured.

    discord.py builds every REST URL from `Route.BASE` and a plain client connects to
    `DEFAULT_GATEWAY`, so these two class attributes are all there is to redirect.
    """
    if endpoints.api_base_url:
        discord.http.Route.BASE = endpoints.api_base_url.rstrip("/") + "/api/v10"
    if endpoints.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(endpoints.gateway_url)


def commands_marker_path(database: Path) -> Path | None:
    """Where the fingerprint of the last synced command tree is kept: beside the library."""
    if str(database) == ":memory:":
        return None
    return database.with_name(database.name + ".commands")


class Paperbot(commands.Bot):
    heartbeat_seconds = health.INTERVAL_SECONDS

    def __init__(self, settings: Settings, *, force_sync: bool = False, **options) -> None:
        self.pacer = None
        if settings.discord.rate_limit_redis_url is not None:  # shared limit: every request waits its turn
            options.setdefault("http_trace", pace_every_request(lambda: self.pacer))
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            allowed_mentions=render.NO_MENTIONS,
            help_command=None,
            **options,
        )
        self.settings = settings
        self.shard_set = ShardSet.from_settings(settings.discord)
        self.db: aiosqlite.Connection | None = None
        self.daily: DailyScheduler | None = None
        self.subscription_poster: SubscriptionPoster | None = None
        self.force_sync = force_sync  # `paperbot sync`: sync even if the tree looks unchanged
        self.heartbeat: asyncio.Task | None = None
        self.startup: asyncio.Task | None = None  # resuming and catching up after READY

    async def setup_hook(self) -> None:
        self.db = await db.connect(self.settings.database.target)
        self.pacer = self._make_pacer()
        # With the shared limit every REST request is paced on the wire (see `pace_every_request`).
        on_the_wire = self.settings.discord.rate_limit_redis_url is not None
        poster = Poster(self, requests_per_second=self.settings.delivery.requests_per_second,
                        pacer=NO_PACING if on_the_wire else self.pacer)  # one pacer for every kind
        cap = self.settings.delivery.max_papers_per_post
        self.subscription_poster = SubscriptionPoster(self, poster=poster, max_papers=cap,
                                                      owns_guild=self.shard_set.owns_guild)
        # DMs belong to no shard. On PostgreSQL every process runs the DM job and the ledger's claims
        # divide the work; a SQLite library's claims hold within one process, so there only the
        # process holding shard 0 sends them.
        shares_claims = db.dialect(self.db) == "postgresql"
        dm = self.subscription_poster if shares_claims or self.shard_set.sends_dms else None
        digests = DigestPoster(self, poster=poster, owns_guild=self.shard_set.owns_guild, max_papers=cap)
        self.daily = DailyScheduler(self.db, digests, self.settings, dm=dm, roundups=RoundupPoster(self, poster=poster))
        self.tree.on_error = errors.on_app_command_error
        self.add_dynamic_items(VoteClick)  # vote buttons answer on every message, also after a restart
        self.add_dynamic_items(RelatedClick)  # so do Related buttons
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands_if_changed()
        # Before the gateway connects: commands served before on_ready find the scheduler running.
        await self.daily.prepare()

    def command_fingerprint(self) -> str:
        """A hash of exactly what a sync would send, and where: it changes when any command does."""
        payload = {
            "application_id": self.application_id,
            "guilds": self.settings.discord.dev_guild_ids,
            "commands": [command.to_dict(self.tree) for command in self.tree.get_commands()],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    async def sync_commands_if_changed(self) -> None:
        """Sync only when the tree differs from the last sync: Discord rate-limits syncing, and a
        global sync takes time to reach every server, so a plain restart should not do it."""
        marker = commands_marker_path(self.settings.database.files)
        fingerprint = self.command_fingerprint()
        if not self.force_sync and marker is not None and _read(marker) == fingerprint:
            log.info("slash commands unchanged since the last sync; not syncing (`paperbot sync` forces it)")
            return
        await self.sync_commands()
        if marker is not None:
            try:
                marker.write_text(fingerprint, encoding="utf-8")
            except OSError as error:
                log.warning("cannot record the command sync in %s (%s); the next start syncs again",
                            marker, error.strerror or error)

    def _make_pacer(self):
        """The global-limit pacer: shared with the bot's other processes when a Redis URL is set."""
        url = self.settings.discord.rate_limit_redis_url
        log.info("running %s", self.shard_set.describe())
        return make_pacer(
            self.settings.delivery.requests_per_second, redis_url=url.get_secret_value() if url else None,
            key=str(self.user.id if self.user else "bot"), share=self.shard_set.share,
        )

    async def sync_commands(self) -> None:
        """Globally, or instantly to the development guilds when config lists them."""
        guild_ids = self.settings.discord.dev_guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d commands globally", len(synced))
            return
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))
        if self.heartbeat is None:
            self.heartbeat = asyncio.create_task(self._beat_forever(), name="paperbot-heartbeat")
        if self.daily is not None and not self.daily.ready.is_set():
            # resume interrupted posts and catch up on missed days; close() may cancel it (SIGTERM)
            self.startup = asyncio.create_task(self.daily.start(), name="paperbot-startup")
            try:
                await self.startup
            except asyncio.CancelledError:
                if not self.is_closed():
                    raise
                log.info("stopped while catching up; the rest resumes on the next start")
                return
            self._beat()  # healthy from now on, not only at the next beat

    def _beat(self) -> None:
        """Record whether the gateway is connected and the scheduler runs (see bot/health.py)."""
        ws = self.ws
        connected = not self.is_closed() and self.is_ready() and ws is not None and ws.open
        running = self.daily is not None and self.daily.scheduler.running
        path = health.heartbeat_path(self.settings.database.files)
        try:
            health.write(path, connected=connected, scheduler_running=running)
        except OSError as error:
            log.warning("cannot write the heartbeat file %s: %s", path, error.strerror or error)

    async def _beat_forever(self) -> None:
        while True:
            self._beat()
            await asyncio.sleep(self.heartbeat_seconds)

    async def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if self.startup is not None and not self.startup.done():
            self.startup.cancel()  # before the database closes under it
            await asyncio.wait({self.startup}, timeout=10)
        if self.daily is not None:
            self.daily.shutdown()
        await super().close()
        if self.heartbeat is not None:
            self._beat()  # stopped: not connected, scheduler not running
        if self.db is not None:
            await self.db.close()
            self.db = None
        if self.pacer is not None:
            await self.pacer.close()
            self.pacer = None


class ShardedPaperbot(Paperbot, commands.AutoShardedBot):
    """Paperbot running some shards of a bigger bot: a cluster (`[discord] shard_ids` of `shard_count`)."""

    def __init__(self, settings: Settings, **options) -> None:
        shards = ShardSet.from_settings(settings.discord)
        if not shards.sharded:
            raise ValueError("a sharded Paperbot needs [discord] shard_count")
        super().__init__(settings, shard_ids=list(shards.shard_ids), shard_count=shards.shard_count, **options)
        # Which cluster made a request, for a REST proxy's (or the fake Discord's) records.
        self.http.user_agent += f" shards/{shards.label}"


def create_bot(settings: Settings, **options) -> Paperbot:
    """A plain Paperbot, or a sharded one when `[discord] shard_count` is set."""
    if settings.discord.shard_count is None:
        return Paperbot(settings, **options)
    return ShardedPaperbot(settings, **options)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


async def _run_once(bot: Paperbot, token: SecretStr, stop: asyncio.Event) -> BaseException | None:
    """Run `bot` until it ends or `stop` is set; close it; return why it ended (None: stopped)."""
    runner = asyncio.create_task(bot.start(token.get_secret_value()), name="paperbot")
    stopper = asyncio.create_task(stop.wait(), name="paperbot-signals")
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if stop.is_set():
            log.info("shutting down")
        await bot.close()
        if not runner.done():
            await asyncio.wait({runner}, timeout=10)
    if runner.done() and not runner.cancelled():
        return runner.exception()
    return None


async def serve(settings: Settings, token: SecretStr) -> None:
    """Run until SIGINT or SIGTERM, then close the gateway, the HTTP session and the database.

    If Discord cannot be reached, say so in one line and try again with growing pauses:
    a network outage at boot should not need a human (or a crash loop) to recover from.
    """
    point_at(settings.discord)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    delay, attempt = RETRY_FIRST_SECONDS, 0
    while not stop.is_set():
        attempt += 1
        ended = await _run_once(create_bot(settings), token, stop)
        if ended is None or stop.is_set():
            return
        if not isinstance(ended, NETWORK_ERRORS):
            raise ended
        log.warning("cannot reach Discord (%s): retrying in %.0f s (attempt %d); stop with Ctrl-C or SIGTERM",
                    logs.describe(ended), delay, attempt)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass
        delay = min(delay * 2, RETRY_MAX_SECONDS)
    log.info("shutting down")


def run_bot(settings: Settings, token: SecretStr) -> None:
    """Run the bot in this process; every expected failure ends it with one line and exit status 1."""
    logs.setup(settings.log_level, settings.log_format, secrets=(token.get_secret_value(), *settings.database.secrets))
    try:
        asyncio.run(serve(settings, token))
    except discord.LoginFailure:
        log.error("Discord refused the token in DISCORD_TOKEN: reset it in the developer portal")
        raise SystemExit(1) from None
    except discord.PrivilegedIntentsRequired:
        log.error("Discord refused the gateway intents; Paperbot needs no privileged intents, so this is unexpected")
        raise SystemExit(1) from None
    except DatabaseError as error:
        log.error("%s", error)
        raise SystemExit(1) from None


async def force_sync(settings: Settings, token: SecretStr) -> int:
    """Log in over REST only (no gateway), sync the slash commands, and log out; returns how many."""
    point_at(settings.discord)
    bot = Paperbot(settings, force_sync=True)
    try:
        await bot.login(token.get_secret_value())
        return len(bot.tree.get_commands())
    finally:
        await bot.close()
