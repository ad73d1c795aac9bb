"""Slash commands about the library as a whole: /stats tags (a trend chart) and /stats day.

No SQL here: the numbers come from `storage.stats`, the chart from `digests.charts` (rendered in a
worker thread, off the event loop) and every error reply from `bot.errors`. A chart is cached
per (latest digest day, arguments), so asking again re-renders nothing until a new day is
ingested.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections import OrderedDict
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from digests import charts
from bot.cogs.options import (
    answer_later,
    day_choices,
    day_or_latest,
    known_tag,
    parse_date,
    stats_cooldown,
    tag_choices,
)
from bot.errors import UserError
from storage import papers, stats

CHART_FILENAME = "trends.png"
MAX_TAGS = 8
TOP_TAGS = 5
CACHED_CHARTS = 32

# period option value -> weeks back from the latest digest day (None: everything)
PERIODS: dict[str, int | None] = {"4w": 4, "12w": 12, "26w": 26, "52w": 52, "all": None}
PERIOD_NAMES = {"4w": "the last 4 weeks", "12w": "the last 12 weeks", "26w": "the last 26 weeks",
                "52w": "the last 52 weeks", "all": "all time"}
DEFAULT_PERIOD = "12w"


def period_start(latest: dt.date, period: str) -> dt.date | None:
    """The first day of `period` ending with `latest`'s week: whole ISO weeks, the latest one included."""
    weeks = PERIODS[period]
    if weeks is None:
        return None
    return stats.week_start(latest) - dt.timedelta(weeks=weeks - 1)


def split_tags(text: str | None) -> list[str]:
    """The comma-separated tags of an option, blanks dropped; a UserError beyond MAX_TAGS."""
    parts = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(parts) > MAX_TAGS:
        raise UserError(f"A chart shows at most {MAX_TAGS} tags; you gave {len(parts)}.")
    return parts


#: Created here, not in `options`: the extension is reloaded per bot, so each bot counts its own.
stats_are_limited = app_commands.checks.dynamic_cooldown(stats_cooldown, key=lambda i: i.user.id)


@dataclass(frozen=True)
class Chart:
    png: bytes
    description: str


class Stats(commands.GroupCog, group_name="stats", group_description="Charts and numbers about the library"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.db = bot.db  # type: ignore[attr-defined]
        self._charts: OrderedDict[tuple, Chart] = OrderedDict()
        super().__init__()

    # ----- /stats tags -------------------------------------------------------------------

    async def tags_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """Completes the last comma-separated tag, keeping the ones already typed."""
        *typed, last = current.split(",")
        kept = [t.strip() for t in typed if t.strip()]
        prefix = ", ".join(kept) + ", " if kept else ""
        choices = []
        for choice in await tag_choices(self.db, last.strip()):
            value = prefix + str(choice.value)
            if len(value) <= 100:
                choices.append(app_commands.Choice(name=render.truncate(prefix + choice.name, 100), value=value))
        return choices

    @app_commands.command(name="tags", description="A chart of papers per tag per week")
    @app_commands.describe(
        period="How far back from the latest digest (default: 12 weeks)",
        tags=f"Up to {MAX_TAGS} tags, comma-separated (default: the {TOP_TAGS} most used in the period)",
    )
    @app_commands.choices(period=[app_commands.Choice(name=PERIOD_NAMES[p], value=p) for p in PERIODS])
    @app_commands.autocomplete(tags=tags_autocomplete)
    @stats_are_limited
    async def tags(self, interaction: discord.Interaction, period: str = DEFAULT_PERIOD, tags: str | None = None) -> None:
        if period not in PERIODS:
            raise UserError(f"`period` must be one of {', '.join(PERIODS)}.")
        wanted = split_tags(tags)
        await answer_later(interaction)
        names = list(dict.fromkeys([await known_tag(self.db, text) for text in wanted]))
        latest = await papers.latest_day(self.db)
        if latest is None:
            raise UserError("The library is empty: no digest has been ingested yet.")
        key = (latest, period, tuple(names))
        chart = self._charts.get(key)
        if chart is not None:
            self._charts.move_to_end(key)
            await interaction.followup.send(**self._message(chart))
            return

        since = period_start(latest, period)
        weeks, series = await stats.tag_counts_by_week(
            self.db, since=since, until=latest, tags=names or None, top=TOP_TAGS
        )
        span = PERIOD_NAMES[period]
        if not weeks:
            raise UserError(f"No papers appeared in {span} (up to {latest}).")
        if not any(any(counts) for counts in series.values()):
            which = ", ".join(f"**{render.escape_text(n)}**" for n in names) if names else "any tagged paper"
            raise UserError(f"No papers with {which} appeared in {span} (up to {latest}).")

        title = f"Papers per week by tag, {span}"
        png = await asyncio.to_thread(charts.render_tag_trends, weeks, series, title=title)
        totals = "\n".join(
            f"**{render.escape_text(render.truncate(name, 80))}** — {sum(counts)}" for name, counts in series.items()
        )
        description = (f"Weeks of {weeks[0]} to {weeks[-1]} ({'chosen tags' if names else 'top tags'}; "
                       f"papers summed over the weeks):\n{totals}")
        chart = Chart(png=png, description=render.truncate(description, render.MAX_DESCRIPTION))
        self._charts[key] = chart
        while len(self._charts) > CACHED_CHARTS:
            self._charts.popitem(last=False)
        await interaction.followup.send(**self._message(chart))

    def _message(self, chart: Chart) -> dict:
        embed = discord.Embed(title="📈 Tag trends", description=chart.description, colour=render.BRAND_COLOUR)
        embed.set_image(url=f"attachment://{CHART_FILENAME}")
        return {
            "embed": embed,
            "file": discord.File(io.BytesIO(chart.png), filename=CHART_FILENAME),
            "allowed_mentions": render.NO_MENTIONS,
        }

    # ----- /stats day --------------------------------------------------------------------

    async def day_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await day_choices(self.db, current)

    @app_commands.command(name="day", description="One day at a glance: papers, top tags, code, sources")
    @app_commands.describe(day="The digest day, YYYY-MM-DD (default: the latest)")
    @app_commands.autocomplete(day=day_autocomplete)
    @stats_are_limited
    async def day(self, interaction: discord.Interaction, day: str | None = None) -> None:
        parse_date(day, "day")  # a malformed day is answered at once
        await answer_later(interaction)
        wanted = await day_or_latest(self.db, day)
        summary = await stats.day_summary(self.db, wanted)
        if summary.papers == 0:
            raise UserError(f"There is no digest for {wanted} (weekends and holidays have none).")
        await interaction.followup.send(embed=day_embed(summary), allowed_mentions=render.NO_MENTIONS)


def day_embed(summary: stats.DaySummary) -> discord.Embed:
    share = round(100 * summary.with_code / summary.papers) if summary.papers else 0
    embed = discord.Embed(title=f"📊 {summary.day.isoformat()}", colour=render.BRAND_COLOUR)
    embed.add_field(name="Papers", value=str(summary.papers))
    embed.add_field(name="With code", value=f"{summary.with_code} ({share}%)")
    sources = "\n".join(f"{render.escape_text(s.source)} — {s.papers}" for s in summary.sources)
    embed.add_field(name="Sources", value=render.truncate(sources or "—", render.MAX_FIELD_VALUE))
    tags = "\n".join(
        f"{n}. {render.escape_text(render.truncate(t.name, 100))} — {t.count}"
        for n, t in enumerate(summary.top_tags, 1)
    )
    embed.add_field(name="Top tags", value=render.truncate(tags or "no tags", render.MAX_FIELD_VALUE), inline=False)
    return embed


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Stats(bot))
