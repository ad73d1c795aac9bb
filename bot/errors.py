"""Every error a user can see, in one table, and the one handler that sends them.

Expected failures (no match, bad date, cooldown…) get a specific, ephemeral reply.
Anything else gets a short reference code, and the traceback is logged under the
same code, so a user's report leads straight to the log line. No interaction is
ever left unanswered.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

import discord
from discord import app_commands

from bot.render import NO_MENTIONS
from storage.search_query import QueryError

log = logging.getLogger(__name__)


class UserError(Exception):
    """A failure the user can fix; its message is shown to them as is."""


def _permissions(names: list[str]) -> str:
    return ", ".join(name.replace("_", " ").replace("guild", "server").title() for name in names)


def _cooldown(error: app_commands.CommandOnCooldown) -> str:
    ready_at = int(time.time() + error.retry_after) + 1
    return f"Slow down a little: you can use this again <t:{ready_at}:R> (in {error.retry_after:.0f} s)."


# Most specific first: the first matching type answers.
ERROR_REPLIES: list[tuple[type[BaseException], Callable]] = [
    (UserError, str),
    (QueryError, str),
    (app_commands.CommandOnCooldown, _cooldown),
    (app_commands.MissingPermissions, lambda e: f"You need the {_permissions(e.missing_permissions)} permission for this."),
    (app_commands.BotMissingPermissions, lambda e: f"I need the {_permissions(e.missing_permissions)} permission here."),
    (app_commands.NoPrivateMessage, lambda e: "This command works only inside a server."),
    (app_commands.TransformerError, lambda e: f"{e.value!r} is not a valid value for this option."),
    (app_commands.CheckFailure, lambda e: str(e) or "You cannot use this command here."),
]


def reply_for(error: BaseException) -> tuple[str, str | None]:
    """The text to show for `error`, and a reference code when it was unexpected."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    for kind, describe in ERROR_REPLIES:
        if isinstance(error, kind):
            return describe(error), None
    reference = secrets.token_hex(4).upper()
    log.error("unexpected error [%s]", reference, exc_info=error)
    return (
        f"Sorry, something went wrong on my side. If it keeps happening, tell the server "
        f"admins this reference: `{reference}`.",
        reference,
    )


async def send_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer `interaction` with the error's reply, ephemerally, whatever state it is in."""
    text, _ = reply_for(error)
    embed = discord.Embed(description=f"⚠️ {text}", colour=discord.Colour.orange())
    try:
        await _drop_public_thinking(interaction)
        if interaction.response.is_done():
            await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.warning("could not deliver an error reply to interaction %s", interaction.id, exc_info=True)


async def _drop_public_thinking(interaction: discord.Interaction) -> None:
    """A command that deferred publicly and then failed: delete its "thinking…" message first.

    Discord turns the first follow-up after a deferral into the deferred message, keeping the
    deferral's visibility, so the error would otherwise be shown to the whole channel.
    """
    if interaction.response.type is not discord.InteractionResponseType.deferred_channel_message:
        return
    try:
        original = await interaction.original_response()
        if original.flags.loading and not original.flags.ephemeral:
            await original.delete()
    except discord.HTTPException:
        log.warning("could not remove the 'thinking…' of interaction %s", interaction.id, exc_info=True)


async def on_app_command_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    """The command tree's single error handler."""
    await send_error(interaction, error)
