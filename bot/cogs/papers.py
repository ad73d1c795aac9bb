"""Slash commands that read the paper library: /papers search|tag|day|top|export, /paper, /tags.

No SQL here: the cog asks `storage.papers`, renders with `bot.render` and
leaves every error reply to `bot.errors`.
"""

from __future__ import annotations

import asyncio
import io
import math
from datetime import timedelta
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.cogs.options import (
    answer_later,
    day_choices,
    day_or_latest,
    known_tag,
    parse_date,
    quoted,
    export_cooldown,
    search_cooldown,
    shown_tag,
    tag_choices,
)
from bot.errors import UserError
from bot.views import Pager
from digests import exports
from storage import db, papers, votes
from storage.models import SearchHit, SearchPage, arxiv_id_from
from storage.related import related_papers
from storage.vocabulary import did_you_mean

EXPORT_LIMIT = 1000  # papers in one /papers export file
Period = Literal["week", "month", "year", "all"]
#: Days a /papers top period spans, ending on the latest digest day (None: every day).
PERIOD_DAYS: dict[str, int | None] = {"week": 7, "month": 30, "year": 365, "all": None}
PERIOD_NAMES = {"week": "the last week", "month": "the last month", "year": "the last year", "all": "all time"}

#: Created here, not in `options`: the extension is reloaded per bot, so each bot counts its own.
searches_are_limited = app_commands.checks.dynamic_cooldown(search_cooldown, key=lambda i: i.user.id)
exports_are_limited = app_commands.checks.dynamic_cooldown(export_cooldown, key=lambda i: i.user.id)


class Papers(commands.GroupCog, group_name="papers", group_description="Find papers in the library"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.db = bot.db  # type: ignore[attr-defined]
        self.settings = bot.settings  # type: ignore[attr-defined]
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # One member's lookups run one at a time, so one member cannot hold every reader (issue #12).
        db.reads_for(interaction.user.id)
        return True

    # ----- helpers ---------------------------------------------------------------------

    async def _resolve_tag(self, tag: str | None) -> str | None:
        return await known_tag(self.db, tag) if tag else None

    async def _send_pages(self, interaction: discord.Interaction, title: str, first: SearchPage, fetch) -> None:
        """Page through results: `fetch(offset, limit)` returns a SearchPage."""
        size = self.settings.commands.page_size
        page_count = max(1, math.ceil(first.total / size))

        async def render_page(number: int) -> discord.Embed:
            page = first if number == 0 else await fetch(number * size, size)
            return render.search_results_embed(
                page, title=title, page_number=number + 1, page_count=page_count, first_number=number * size + 1
            )

        await Pager.send(
            interaction,
            page_count=page_count,
            render_page=render_page,
            timeout=self.settings.commands.view_timeout_seconds,
        )

    async def tag_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await tag_choices(self.db, current)

    # ----- commands --------------------------------------------------------------------

    @app_commands.command(name="search", description="Full-text search: best matches first")
    @app_commands.describe(
        query='Words, "an exact phrase", prefix*, -excluded, this OR that',
        tag="Only papers with this tag",
        since="Only digests on or after this day (YYYY-MM-DD)",
        until="Only digests on or before this day (YYYY-MM-DD)",
        has_code="Only papers with (or without) a GitHub link",
    )
    @app_commands.autocomplete(tag=tag_autocomplete)
    @searches_are_limited
    async def search(
        self,
        interaction: discord.Interaction,
        query: app_commands.Range[str, 1, 200],
        tag: str | None = None,
        since: str | None = None,
        until: str | None = None,
        has_code: bool | None = None,
    ) -> None:
        since_day, until_day = parse_date(since, "since"), parse_date(until, "until")
        if since_day and until_day and since_day > until_day:
            raise UserError(f"`since` ({since_day}) is after `until` ({until_day}).")
        await answer_later(interaction)
        tag_name = await self._resolve_tag(tag)

        async def fetch(offset: int, limit: int) -> SearchPage:
            return await papers.search(
                self.db, query, tag=tag_name, since=since_day, until=until_day,
                has_code=has_code, limit=limit, offset=offset,
            )

        first = await fetch(0, self.settings.commands.page_size)
        if first.total == 0:
            filters = [f"tag {shown_tag(tag_name)}" if tag_name else "", f"since {since_day}" if since_day else "",
                       f"until {until_day}" if until_day else "",
                       {True: "with code", False: "without code", None: ""}[has_code]]
            searched = ", ".join(f for f in filters if f)
            suggestion = await did_you_mean(
                self.db, query, tag=tag_name, since=since_day, until=until_day, has_code=has_code
            )
            hint = f" Did you mean “{quoted(suggestion)}”?" if suggestion else ""
            raise UserError(f"No papers match “{quoted(query)}”" + (f" ({searched})." if searched else ".") + hint)
        await self._send_pages(interaction, f"🔎 {render.truncate(query, 200)}", first, fetch)

    @app_commands.command(name="tag", description="The newest papers with a tag")
    @app_commands.describe(tag="A tag (start typing to see them)")
    @app_commands.autocomplete(tag=tag_autocomplete)
    @searches_are_limited
    async def tag(self, interaction: discord.Interaction, tag: str) -> None:
        await answer_later(interaction)
        name = await self._resolve_tag(tag)

        async def fetch(offset: int, limit: int) -> SearchPage:
            return await papers.papers_with_tag(self.db, name, limit=limit, offset=offset)

        await self._send_pages(interaction, f"🏷️ {name}", await fetch(0, self.settings.commands.page_size), fetch)

    async def day_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await day_choices(self.db, current)

    @app_commands.command(name="day", description="One day's digest (default: the latest)")
    @app_commands.describe(day="The digest day, YYYY-MM-DD")
    @app_commands.autocomplete(day=day_autocomplete)
    async def day(self, interaction: discord.Interaction, day: str | None = None) -> None:
        parse_date(day, "day")  # a malformed day is answered at once
        await answer_later(interaction)
        wanted = await day_or_latest(self.db, day)
        found = await papers.papers_on_day(self.db, wanted)
        if not found:
            raise UserError(f"There is no digest for {wanted} (weekends and holidays have none).")
        hits = [SearchHit(paper=paper, snippet="") for paper in found]

        async def fetch(offset: int, limit: int) -> SearchPage:
            return SearchPage(hits=hits[offset : offset + limit], total=len(hits))

        title = f"📄 Papers for {wanted.isoformat()}"
        await self._send_pages(interaction, title, await fetch(0, self.settings.commands.page_size), fetch)

    @app_commands.command(name="top", description="The most-voted papers of the last week, month, year or ever")
    @app_commands.describe(period="Papers from the digests of the last week (default), month, year, or all")
    async def top(self, interaction: discord.Interaction, period: Period = "week") -> None:
        # The span ends on the latest digest day rather than today, so a pause in the feed
        # still leaves a week of papers to rank.
        await answer_later(interaction)
        latest = await papers.latest_day(self.db)
        if latest is None:
            raise UserError("The library is empty: no digest has been ingested yet.")
        days = PERIOD_DAYS[period]
        since = latest - timedelta(days=days - 1) if days else None

        async def fetch(offset: int, limit: int) -> votes.RankedPage:
            return await votes.ranked_papers(
                self.db, guild_id=interaction.guild_id, since=since, until=latest, limit=limit, offset=offset
            )

        size = self.settings.commands.page_size
        first = await fetch(0, size)
        if first.total == 0:
            raise UserError(f"No paper from {PERIOD_NAMES[period]} has a vote yet: "
                            "vote with the ▲ buttons under the digest posts.")
        page_count = math.ceil(first.total / size)
        span = f"since {since.isoformat()}" if since else "all time"
        title = f"🏆 Top papers · {span}"

        async def render_page(number: int) -> discord.Embed:
            page = first if number == 0 else await fetch(number * size, size)
            return render.top_papers_embed(page.papers, page.total, title=title, page_number=number + 1,
                                           page_count=page_count, first_number=number * size + 1)

        await Pager.send(interaction, page_count=page_count, render_page=render_page,
                         timeout=self.settings.commands.view_timeout_seconds)

    @app_commands.command(name="export", description="The papers matching a search or a tag, as a file")
    @app_commands.describe(
        query='Words, "an exact phrase", prefix*, -excluded, this OR that (or use tag)',
        tag="Every paper with this tag (or use query)",
        format="BibTeX (default), CSV or JSON",
    )
    @app_commands.autocomplete(tag=tag_autocomplete)
    @exports_are_limited
    async def export(
        self,
        interaction: discord.Interaction,
        query: app_commands.Range[str, 1, 200] | None = None,
        tag: str | None = None,
        format: Literal["bibtex", "csv", "json"] = "bibtex",
    ) -> None:
        if (query is None) == (tag is None):
            raise UserError("Give either `query` or `tag` (one of them, not both) to say which papers to export.")
        await answer_later(interaction, ephemeral=True)
        tag_name = await self._resolve_tag(tag)
        # A first, tiny lookup answers "no match" and bad queries at once, before the (slower) export.
        first = await (papers.search(self.db, query, limit=1) if query is not None
                       else papers.papers_with_tag(self.db, tag_name, limit=1))
        if first.total == 0:
            raise UserError(f"No papers match “{quoted(query)}”." if query is not None
                            else f"No paper is tagged {shown_tag(tag_name)}.")
        matches = await exports.matching_papers(self.db, query=query, tag=tag_name, limit=EXPORT_LIMIT)
        found = matches.papers
        render_file, extension, _ = exports.FORMATS[format]
        # Off the event loop: a thousand papers take long enough to render that other members would wait.
        raw = (await asyncio.to_thread(render_file, found)).encode("utf-8")
        if len(raw) > interaction.filesize_limit:
            raise UserError(f"That export is {len(raw) / 2**20:.1f} MB, more than Discord lets me upload here "
                            f"({interaction.filesize_limit / 2**20:.0f} MB). Narrow it down, or try CSV (the smallest).")
        what = f"matching “{quoted(query)}”" if query is not None else f"tagged {shown_tag(tag_name)}"
        label = exports.FORMAT_LABELS[format]
        if not matches.complete:
            text = (f"📦 The first {len(found)} of {matches.count.total_text} papers {what} ({'best matches' if query else 'newest'} first), "
                    f"as {label}: an export holds at most {EXPORT_LIMIT}. Narrow it down for the rest.")
        else:
            text = f"📦 {len(found)} paper{'s' if len(found) != 1 else ''} {what}, as {label}."
        await interaction.followup.send(
            text,
            file=discord.File(io.BytesIO(raw), filename=f"paperbot-{exports.file_slug(query or tag_name)}.{extension}"),
            ephemeral=True,
            allowed_mentions=render.NO_MENTIONS,
        )


class Library(commands.Cog):
    """The top-level commands: /paper and /tags."""

    def __init__(self, bot: commands.Bot) -> None:
        self.db = bot.db  # type: ignore[attr-defined]
        self.settings = bot.settings  # type: ignore[attr-defined]

    @app_commands.command(name="paper", description="One paper in full")
    @app_commands.describe(id="An arXiv id (2502.13923) or an arXiv/HuggingFace link")
    async def paper(self, interaction: discord.Interaction, id: app_commands.Range[str, 1, 200]) -> None:
        arxiv_id = arxiv_id_from(id)
        if arxiv_id is None:
            raise UserError(f"“{quoted(id)}” is not an arXiv id (like 2502.13923) or an arXiv/HuggingFace link.")
        await answer_later(interaction)
        found = await papers.get_paper(self.db, arxiv_id)
        if found is None:
            raise UserError(f"Paper {arxiv_id} is not in the library yet.")
        related = await related_papers(self.db, arxiv_id)
        await interaction.followup.send(embed=render.paper_embed(found, related=related), allowed_mentions=render.NO_MENTIONS)

    @app_commands.command(name="tags", description="Every tag with its number of papers")
    async def tags(self, interaction: discord.Interaction) -> None:
        counts = await papers.tag_counts(self.db)
        if not counts:
            raise UserError("No paper has a tag yet.")
        pages = render.tag_list_embeds(counts)

        async def render_page(number: int) -> discord.Embed:
            return pages[number]

        await Pager.send(
            interaction,
            page_count=len(pages),
            render_page=render_page,
            timeout=self.settings.commands.view_timeout_seconds,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Papers(bot))
    await bot.add_cog(Library(bot))
