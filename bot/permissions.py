"""The permissions Paperbot asks for when it is invited, derived from what its features call.

Computed with discord.py's `Permissions`, never typed as a number, so the invite link and the
README cannot drift from the checks `/digest setup` makes (bot/cogs/digest.py NEEDED*).
"""

from __future__ import annotations

from urllib.parse import urlencode

import discord

from bot.cogs.digest import NEEDED, NEEDED_FOR_FORUM_TAGS, NEEDED_FOR_THREADS, NEEDED_IN_FORUMS

OAUTH_URL = "https://discord.com/oauth2/authorize"
SCOPES = ("bot", "applications.commands")


def needed_permissions(*, forum_tags: bool = False) -> discord.Permissions:
    """Daily posts (text channels, threads, forums); with `forum_tags`, creating a forum's tags too.

    Slash command replies, files and DMs need no server permission: they go through the
    interaction or the member's DM channel.
    """
    flags = {**NEEDED, **NEEDED_FOR_THREADS, **NEEDED_IN_FORUMS}
    if forum_tags:
        flags |= NEEDED_FOR_FORUM_TAGS
    return discord.Permissions(**{name: True for name in flags})


def invite_url(client_id: int, permissions: discord.Permissions) -> str:
    query = urlencode({"client_id": client_id, "permissions": permissions.value, "scope": " ".join(SCOPES)})
    return f"{OAUTH_URL}?{query}"
