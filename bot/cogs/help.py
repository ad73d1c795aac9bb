"""/help: every command the member may use, each with one example, read from the live command tree.

The list is built from the tree the bot synced, so a new command shows up without editing
this file (with an example made from its required options until one is written below).
Commands whose default permissions the member lacks (the admin-only /digest) are left out,
as are server-only commands in a DM: /help never advertises what would be refused.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import render

# Written examples, by qualified name; each shows the options people actually reach for.
EXAMPLES = {
    "help": "/help",
    "papers search": '/papers search query:"video diffusion" tag:Text-to-Video',
    "papers tag": "/papers tag tag:Robotics",
    "papers day": "/papers day day:2025-02-20",
    "papers top": "/papers top period:month",
    "papers export": "/papers export tag:Robotics format:bibtex",
    "paper": "/paper id:2502.13923",
    "tags": "/tags",
    "stats tags": "/stats tags period:26w",
    "stats day": "/stats day day:2025-02-20",
    "subscribe tag": "/subscribe tag tag:Robotics",
    "subscribe keyword": '/subscribe keyword keyword:"world model"',
    "unsubscribe": "/unsubscribe subscription:Robotics",
    "subscriptions list": "/subscriptions list",
    "subscriptions pause": "/subscriptions pause",
    "subscriptions resume": "/subscriptions resume",
    "subscriptions clear": "/subscriptions clear",
    "subscriptions export": "/subscriptions export",
    "digest setup": "/digest setup channel:#papers time:09:00 timezone:Europe/Berlin",
    "digest status": "/digest status",
    "digest post": "/digest post day:2025-02-20",
    "digest remove": "/digest remove channel:#papers",
    "digest roundup": "/digest roundup channel:#papers weekday:friday time:17:00",
    "digest role": "/digest role tag:Robotics role:@robotics",
}


def example(command: app_commands.Command) -> str:
    """The written example, or one made from the command's required options."""
    written = EXAMPLES.get(command.qualified_name)
    if written:
        return written
    required = " ".join(f"{p.display_name}:…" for p in command.parameters if p.required)
    return f"/{command.qualified_name} {required}".rstrip()


def _root(command: app_commands.Command) -> app_commands.Command | app_commands.Group:
    item: app_commands.Command | app_commands.Group = command
    while item.parent is not None:
        item = item.parent
    return item


def may_use(command: app_commands.Command, interaction: discord.Interaction) -> bool:
    """What Discord itself would offer the member: default permissions and server-only commands."""
    root = _root(command)
    in_guild = interaction.guild is not None
    contexts = root.allowed_contexts
    if not in_guild and (root.guild_only or (contexts is not None and not contexts.dm_channel)):
        return False
    needed = root.default_permissions
    if needed is None or needed.value == 0:
        return True
    return in_guild and interaction.permissions.is_superset(needed)


def help_embed(commands_: list[app_commands.Command]) -> discord.Embed:
    lines = [f"`{example(c)}`\n{c.description}" for c in sorted(commands_, key=lambda c: c.qualified_name)]
    embed = discord.Embed(title="Paperbot commands", description=render.truncate("\n".join(lines), render.MAX_DESCRIPTION))
    embed.set_footer(text="Search understands words, \"a phrase\", prefix*, -excluded and this OR that.")
    return embed


class Help(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="Every command you can use, with an example")
    async def help(self, interaction: discord.Interaction) -> None:
        usable = [
            command for command in self.bot.tree.walk_commands()
            if isinstance(command, app_commands.Command) and may_use(command, interaction)
        ]
        await interaction.response.send_message(
            embed=help_embed(usable), ephemeral=True, allowed_mentions=render.NO_MENTIONS
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Help(bot))
