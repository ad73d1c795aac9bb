"""Plain-text views of the library for the terminal.

The digest preview prints the very embeds the bot would post, so what a
newcomer sees without a token is what a channel would get.
"""

from __future__ import annotations

import textwrap
from datetime import date

import discord

from bot import render
from storage.models import SearchPage, StoredPaper

NO_TOKEN_HELP = """\
No DISCORD_TOKEN is set, so Paperbot runs in local preview mode.
To run the bot: create an application at https://discord.com/developers/applications,
add a bot to it, copy its token and start Paperbot with DISCORD_TOKEN=<token> in the environment.
"""

WIDTH = 100


def embed_text(embed: discord.Embed) -> str:
    """An embed as a boxed block of text: title, link, description, fields, footer."""
    lines: list[str] = []
    if embed.title:
        lines.append(f"■ {embed.title}")
    if embed.url:
        lines.append(f"  {embed.url}")
    if embed.description:
        lines.extend(_wrap(embed.description))
    for embed_field in embed.fields:
        lines.append(f"  {embed_field.name}:")
        lines.extend(_wrap(embed_field.value, indent="    "))
    if embed.footer and embed.footer.text:
        lines.append(f"  — {embed.footer.text}")
    return "\n".join(lines)


def _wrap(text: str, indent: str = "  ") -> list[str]:
    wrapped: list[str] = []
    for paragraph in str(text).splitlines():
        wrapped.extend(textwrap.wrap(paragraph, WIDTH, initial_indent=indent, subsequent_indent=indent) or [""])
    return wrapped


def payload_text(payload: render.MessagePayload) -> str:
    parts = [payload.content] if payload.content else []
    parts.extend(embed_text(embed) for embed in payload.embeds)
    return "\n\n".join(parts)


def digest_preview(day: date, papers: list[StoredPaper]) -> str:
    messages = render.digest_messages(day, papers, style="compact")
    rule = "─" * WIDTH
    return f"\n{rule}\n".join(payload_text(message) for message in messages)


def search_results(page: SearchPage) -> str:
    blocks = []
    for number, hit in enumerate(page.hits, start=1):
        paper = hit.paper
        first_seen = paper.days[0].isoformat() if paper.days else "?"
        block = [f"{number:2d}. {paper.title}", f"    {paper.arxiv_id} · {first_seen} · {paper.url}"]
        if paper.tags:
            block.append(f"    tags: {', '.join(paper.tags)}")
        block.extend(_wrap(hit.snippet or paper.summary[:200], indent="    "))
        blocks.append("\n".join(block))
    shown = len(page.hits)
    footer = f"{shown} of {page.total_text} results" if page.total > shown else f"{shown} results"
    return "\n\n".join(blocks) + f"\n\n{footer}"


def paper_text(paper: StoredPaper) -> str:
    return embed_text(render.paper_embed(paper))
