"""Personal subscriptions: /subscribe tag|keyword, /unsubscribe, /subscriptions list|pause|resume|clear|export.

Every reply is ephemeral; everything but subscribing also works in DMs (a subscription belongs to a
server, see `DM_SUBSCRIPTION_REFUSED`). No SQL here: the cog asks
`storage.subscriptions`; delivery is `bot.posting.dms`. Errors go through `bot.errors`.
"""

from __future__ import annotations

import io
import json

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.cogs.options import MAX_CHOICES, known_tag, quoted, shown_tag, tag_choices
from bot.errors import UserError
from storage import subscriptions as subs
from storage.search_query import QueryError, to_fts_query

MAX_KEYWORD = 90  # "keyword:" + the keyword must fit an autocomplete value (100)
ANYWHERE = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=False)

DMS_CLOSED_HELP = (
    "📪 I could not send you your subscription DMs: your direct messages are closed to me. To fix it, "
    "open a server we share, click its name → **Privacy Settings** and turn on **Direct Messages** "
    "(or enable “Allow direct messages from server members” in User Settings → Privacy & Safety). "
    "DMs resume from the next digest."
)

DM_SUBSCRIPTION_REFUSED = (
    "Subscribe from inside a server, not here: I send subscription DMs only to members of a server "
    "where they subscribed, and a direct message belongs to no server. Run `/subscribe` in a server "
    "we share; `/subscriptions list`, `pause`, `resume`, `clear` and `export` work here too."
)


def _label(kind: str, value: str) -> str:
    return f"tag {shown_tag(value)}" if kind == "tag" else f"keyword “{quoted(value)}”"


def _fitting_list(header: str, lines: list[str], room: int) -> str:
    """`header` and as many whole `lines` as fit in `room`, then how many are left and where to see them."""
    text = header
    for index, line in enumerate(lines):
        left = len(lines) - index - 1
        more = f"\n… and {left} more: `/subscriptions export` lists them all." if left else ""
        if len(text) + 1 + len(line) + len(more) > room:
            return text + f"\n… and {len(lines) - index} more: `/subscriptions export` lists them all."
        text += "\n" + line
    return text


def _check_keyword(keyword: str) -> str:
    text = " ".join(keyword.split())
    if not text:
        raise UserError("A keyword subscription needs a word or a phrase.")
    if len(text) > MAX_KEYWORD:
        raise UserError(f"A keyword subscription can be at most {MAX_KEYWORD} characters long.")
    try:
        to_fts_query(text)
    except QueryError as error:
        raise UserError(
            f"“{quoted(text)}” cannot be a keyword subscription: {error} Keywords follow the search rules: "
            'words, "an exact phrase", prefix*, -excluded, this OR that.'
        ) from None
    return text


class Subscriptions(commands.Cog):
    subscribe = app_commands.Group(
        name="subscribe", description="Get a daily DM with new papers on a tag or keyword", allowed_contexts=ANYWHERE
    )
    manage = app_commands.Group(
        name="subscriptions", description="See and manage your paper subscriptions", allowed_contexts=ANYWHERE
    )

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.db = bot.db  # type: ignore[attr-defined]
        self.settings = bot.settings  # type: ignore[attr-defined]

    # ----- helpers -----------------------------------------------------------------------

    async def _reply(self, interaction: discord.Interaction, text: str, **extra) -> None:
        """An ephemeral reply; first tells a user whose DMs were found closed how to open them (once)."""
        if await subs.clear_dm_closed(self.db, interaction.user.id):
            text = f"{DMS_CLOSED_HELP}\n\n{text}"
        await interaction.response.send_message(
            render.truncate(text, render.MAX_CONTENT), ephemeral=True, allowed_mentions=render.NO_MENTIONS, **extra
        )

    async def _add(self, interaction: discord.Interaction, kind: subs.Kind, value: str) -> None:
        if interaction.guild_id is None:
            # DMs go only to members of a server where they subscribed; a DM has no server, so a
            # subscription made here could never be delivered. Refuse it rather than promise DMs.
            raise UserError(DM_SUBSCRIPTION_REFUSED)
        try:
            await subs.add_subscription(
                self.db, interaction.user.id, kind, value, guild_id=interaction.guild_id,
                max_per_user=self.settings.subscriptions.max_per_user,
            )
        except subs.AlreadySubscribed:
            raise UserError(f"You already follow {_label(kind, value)}; nothing changed. `/subscriptions list` shows them all.") from None
        except subs.TooManySubscriptions as full:
            raise UserError(
                f"You already have {full.limit} subscriptions, the most allowed. Remove one with `/unsubscribe` first."
            ) from None
        subscriber = await subs.get_subscriber(self.db, interaction.user.id)
        note = " Your DMs are paused: `/subscriptions resume` to get them." if subscriber and subscriber.paused else ""
        await self._reply(
            interaction,
            f"✅ Subscribed to {_label(kind, value)}. Each day with matching papers I'll send you one DM "
            f"listing them.{note}",
        )

    # ----- /subscribe ----------------------------------------------------------------------

    async def tag_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await tag_choices(self.db, current)

    @subscribe.command(name="tag", description="A daily DM with the day's papers carrying this tag")
    @app_commands.describe(tag="A tag (start typing to see them)")
    @app_commands.autocomplete(tag=tag_autocomplete)
    async def subscribe_tag(self, interaction: discord.Interaction, tag: app_commands.Range[str, 1, 100]) -> None:
        await self._add(interaction, "tag", await known_tag(self.db, tag))

    @subscribe.command(name="keyword", description="A daily DM with the day's papers matching a word or phrase")
    @app_commands.describe(keyword='A word or phrase, searched like /papers search: words, "a phrase", prefix*')
    async def subscribe_keyword(
        self, interaction: discord.Interaction, keyword: app_commands.Range[str, 1, 200]
    ) -> None:
        await self._add(interaction, "keyword", _check_keyword(keyword))

    # ----- /unsubscribe --------------------------------------------------------------------

    async def own_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        wanted = current.strip().casefold()
        found = [s for s in await subs.list_subscriptions(self.db, interaction.user.id) if wanted in s.label.casefold()]
        return [
            app_commands.Choice(name=render.truncate(s.label, 100), value=f"{s.kind}:{s.value}"[:100])
            for s in found[:MAX_CHOICES]
        ]

    @app_commands.command(name="unsubscribe", description="Stop one of your paper subscriptions")
    @app_commands.describe(subscription="One of your subscriptions (start typing to see them)")
    @app_commands.autocomplete(subscription=own_autocomplete)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def unsubscribe(self, interaction: discord.Interaction, subscription: app_commands.Range[str, 1, 200]) -> None:
        text = subscription.strip()
        kind, _, value = text.partition(":")
        candidates: list[tuple[subs.Kind, str]]
        if kind in ("tag", "keyword") and value.strip():
            candidates = [(kind, value.strip())]  # type: ignore[list-item]
        else:
            candidates = [("tag", text), ("keyword", text)]
        for kind, value in candidates:
            if await subs.remove_subscription(self.db, interaction.user.id, kind, value):
                await self._reply(interaction, f"🗑️ Unsubscribed from {_label(kind, value)}.")
                return
        raise UserError(
            f"You are not subscribed to “{quoted(text)}”. `/subscriptions list` shows what you follow."
        )

    # ----- /subscriptions ------------------------------------------------------------------

    @manage.command(name="list", description="Your subscriptions and whether DMs are paused")
    async def list_(self, interaction: discord.Interaction) -> None:
        found = await subs.list_subscriptions(self.db, interaction.user.id)
        if not found:
            await self._reply(interaction, "You have no subscriptions. Start with `/subscribe tag` or `/subscribe keyword`.")
            return
        subscriber = await subs.get_subscriber(self.db, interaction.user.id)
        cap = self.settings.subscriptions.max_per_user
        lines = [f"• {_label(s.kind, s.value)}" for s in found]
        if subscriber and subscriber.paused:
            state = "⏸️ paused (`/subscriptions resume`)"
        elif subscriber and subscriber.left_servers:
            state = ("⏸️ paused: you are no longer in any server where you subscribed (they resume when you are "
                     "back in one, or subscribe from a server)")
        else:
            state = "▶️ active"
        header = f"🔔 Your subscriptions ({len(found)} of {cap}) · DMs {state}"
        await self._reply(interaction, _fitting_list(header, lines, render.MAX_CONTENT - len(DMS_CLOSED_HELP) - 2))

    @manage.command(name="pause", description="Stop the daily DMs for now (your subscriptions are kept)")
    async def pause(self, interaction: discord.Interaction) -> None:
        if not await subs.set_paused(self.db, interaction.user.id, True):
            raise UserError("You have no subscriptions to pause.")
        await self._reply(interaction, "⏸️ Paused: no subscription DMs until `/subscriptions resume`.")

    @manage.command(name="resume", description="Get the daily DMs again")
    async def resume(self, interaction: discord.Interaction) -> None:
        if not await subs.set_paused(self.db, interaction.user.id, False):
            raise UserError("You have no subscriptions to resume. Start with `/subscribe tag` or `/subscribe keyword`.")
        await self._reply(interaction, "▶️ Resumed: you'll get a DM on days with matching papers.")

    @manage.command(name="clear", description="Delete all your subscriptions and everything stored about you")
    async def clear(self, interaction: discord.Interaction) -> None:
        removed = await subs.delete_user(self.db, interaction.user.id)
        await interaction.response.send_message(
            f"🧹 Deleted {removed} subscription{'s' if removed != 1 else ''}, your votes in every server "
            "and everything else Paperbot stored about you.",
            ephemeral=True, allowed_mentions=render.NO_MENTIONS,
        )

    @manage.command(name="export", description="Your subscriptions as a JSON file")
    async def export(self, interaction: discord.Interaction) -> None:
        data = await subs.export_user(self.db, interaction.user.id)
        raw = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
        count = len(data["subscriptions"])
        await self._reply(
            interaction, f"📦 Your {count} subscription{'s' if count != 1 else ''}, as JSON.",
            file=discord.File(io.BytesIO(raw), filename="paperbot-subscriptions.json"),
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Subscriptions(bot))
