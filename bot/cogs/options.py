"""Option helpers every cog shares: dates, tags and days as members type them, echoes, cooldowns.

One place, so a fix to how an option is read or autocompleted lands in every command at once.
"""

from __future__ import annotations

from datetime import date

import discord
from discord import app_commands

from bot import render
from bot.errors import UserError
from storage import papers

MAX_CHOICES = 25


def parse_date(value: str | None, option: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"`{option}` must be a date like 2025-02-20, not “{value[:40]}”.") from None


def quoted(text: str) -> str:
    """User text echoed back safely inside a reply (cut first, so no escape is cut in half)."""
    return render.escape_text(render.truncate(text, 100))


def shown_tag(name: str) -> str:
    """A stored tag name in bold, as text only: tag names come from digests, so they are escaped."""
    return f"**{render.escape_text(render.truncate(' '.join(name.split()), 100))}**"


async def known_tag(db, text: str) -> str:
    """The stored tag `text` names (any case or spelling variant), or a UserError with the closest ones."""
    name = await papers.resolve_tag(db, text)
    if name is None:
        closest = await papers.closest_tags(db, text)
        hint = f" Did you mean {', '.join(shown_tag(c) for c in closest)}?" if closest else ""
        raise UserError(f"No paper is tagged “{quoted(text)}”.{hint} `/tags` lists every tag.")
    return name


async def tag_choices(db, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for a tag option: substring, any case, most-used first, with counts."""
    tags = await papers.suggest_tags(db, current, limit=MAX_CHOICES)
    return [app_commands.Choice(name=render.truncate(f"{t.name} ({t.count})", 100), value=t.name[:100]) for t in tags]


async def day_choices(db, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for a day option: digest days containing what was typed, newest first."""
    days = await papers.digest_days(db)
    matching = [d.isoformat() for d in reversed(days) if current.strip() in d.isoformat()]
    return [app_commands.Choice(name=d, value=d) for d in matching[:MAX_CHOICES]]


async def day_or_latest(db, value: str | None) -> date:
    """The day a `day` option names, or the latest digest day when it was left out."""
    wanted = parse_date(value, "day") or await papers.latest_day(db)
    if wanted is None:
        raise UserError("The library is empty: no digest has been ingested yet.")
    return wanted


async def answer_later(interaction: discord.Interaction, *, ephemeral: bool = False) -> None:
    """Acknowledge now ("thinking…"), before the first lookup: Discord drops an interaction not
    answered within 3 s, and a lookup may wait behind others. The answer replaces "thinking…"
    (`interaction.followup`); an error after this is still shown privately (`bot.errors`)."""
    await interaction.response.defer(thinking=True, ephemeral=ephemeral)


def search_cooldown(interaction: discord.Interaction) -> app_commands.Cooldown:
    limits = interaction.client.settings.commands  # type: ignore[attr-defined]
    return app_commands.Cooldown(limits.search_rate, limits.search_per_seconds)


def export_cooldown(interaction: discord.Interaction) -> app_commands.Cooldown:
    limits = interaction.client.settings.commands  # type: ignore[attr-defined]
    return app_commands.Cooldown(limits.export_rate, limits.export_per_seconds)


def stats_cooldown(interaction: discord.Interaction) -> app_commands.Cooldown:
    limits = interaction.client.settings.commands  # type: ignore[attr-defined]
    return app_commands.Cooldown(limits.stats_rate, limits.stats_per_seconds)

