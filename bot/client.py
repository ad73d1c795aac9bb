"""The Discord client: opens the library, loads the cogs, syncs commands, stops cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal

import aiosqlite
import discord
import yarl
from discord.ext import commands
from pydantic import SecretStr

from bot import errors, render
from settings import DiscordSettings, Settings
from bot.posting.daily import DigestPoster
from bot.posting.roundups import RoundupPoster
from bot.scheduler import DailyScheduler
from bot.posting.dms import SubscriptionPoster
from bot.related import RelatedClick
from bot.votes import VoteClick
from storage import db

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.papers", "bot.cogs.digest", "bot.cogs.subscriptions", "bot.cogs.stats")


def point_at(endpoints: DiscordSettings) -> None:
    """Send REST calls and the gateway connection to a proxy (or a fake) when configured.

    discord.py builds every REST URL from `Route.BASE` and a plain client connects to
    `DEFAULT_GATEWAY`, so these two class attributes are all there is to redirect.
    """
    if endpoints.api_base_url:
        discord.http.Route.BASE = endpoints.api_base_url.rstrip("/") + "/api/v10"
    if endpoints.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(endpoints.gateway_url)


class Paperbot(commands.Bot):
    def __init__(self, settings: Settings, **options) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            allowed_mentions=render.NO_MENTIONS,
            help_command=None,
            **options,
        )
        self.settings = settings
        self.db: aiosqlite.Connection | None = None
        self.daily: DailyScheduler | None = None
        self.subscription_poster: SubscriptionPoster | None = None

    async def setup_hook(self) -> None:
        self.db = await db.connect(self.settings.database.path)
        self.subscription_poster = SubscriptionPoster(self)
        poster = DigestPoster(self, requests_per_second=self.settings.delivery.requests_per_second)
        self.daily = DailyScheduler(
            self.db, poster, self.settings, dm=self.subscription_poster, roundups=RoundupPoster(self)
        )
        self.tree.on_error = errors.on_app_command_error
        self.add_dynamic_items(VoteClick)  # vote buttons answer on every message, also after a restart
        self.add_dynamic_items(RelatedClick)  # so do Related buttons
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()

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
        if self.daily is not None and not self.daily.scheduler.running:
            await self.daily.start()  # resume interrupted posts and catch up on missed days

    async def close(self) -> None:
        if self.daily is not None:
            self.daily.shutdown()
        await super().close()
        if self.db is not None:
            await self.db.close()
            self.db = None


async def serve(settings: Settings, token: SecretStr) -> None:
    """Run until SIGINT or SIGTERM, then close the gateway, the HTTP session and the database."""
    point_at(settings.discord)
    bot = Paperbot(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(bot.start(token.get_secret_value()), name="paperbot")
    stopper = asyncio.create_task(stop.wait(), name="paperbot-signals")
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("shutting down")
        stopper.cancel()
        await bot.close()
        if runner.done():
            runner.result()  # a failed login or connection surfaces here
        else:
            await asyncio.wait({runner}, timeout=10)


def run_bot(settings: Settings, token: SecretStr) -> None:
    discord.utils.setup_logging(level=logging.getLevelName(settings.log_level.upper()), root=True)
    try:
        asyncio.run(serve(settings, token))
    except discord.LoginFailure:
        raise SystemExit("Discord refused the token in DISCORD_TOKEN; reset it in the developer portal.") from None
