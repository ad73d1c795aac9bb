"""Views of the library for the terminal.

The digest preview prints the very embeds the bot would post, so what a
newcomer sees without a token is what a channel would get. Search results and
a paper are terminal text instead (rich: bold titles that are links), never
Discord markdown.
"""

from __future__ import annotations

import io
import textwrap
from datetime import date

import discord
from rich.console import Console
from rich.style import Style
from rich.text import Text

from bot import render
from storage.models import SearchPage, StoredPaper

NO_TOKEN_HELP = """\
No DISCORD_TOKEN is set, so Paperbot runs in local preview mode, on a throw-away library
({library}); your configured library is not touched.
To run the bot: create an application at https://discord.com/developers/applications,
add a bot to it, copy its token and start Paperbot with DISCORD_TOKEN=<token> in the environment.
"""

TOKEN_MISSING = (
    "DISCORD_TOKEN is not set, and this is a configured deployment ({why}): set it in the "
    "environment (see .env.example), or run `paperbot run --preview` for a local preview"
)

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


def _link(url: str) -> Style:
    """A terminal hyperlink only for web addresses: digest text never becomes another kind of link."""
    return Style(link=url) if url.startswith(("https://", "http://")) else Style()


def _title(number: int | None, paper: StoredPaper) -> Text:
    prefix = f"{number:2d}. " if number is not None else ""
    return Text(prefix) + Text(paper.title, style=Style(bold=True) + _link(paper.url))


def _marked(snippet: str) -> Text:
    """A search snippet with its **matched words** in bold instead of Discord's asterisks."""
    text = Text()
    for index, part in enumerate(snippet.split("**")):
        text.append(part, style="bold" if index % 2 else "")
    return text


def _indented(text: Text, indent: str = "    ") -> Text:
    wrapped = Text("\n").join(Text(indent) + line for line in text.wrap(_measure, WIDTH - len(indent)))
    return wrapped


_measure = Console(width=WIDTH, color_system=None, file=io.StringIO())


def search_results(page: SearchPage) -> Text:
    """Terminal text (rich): bold linked titles, matched words in bold; no Discord markdown."""
    blocks = []
    for number, hit in enumerate(page.hits, start=1):
        paper = hit.paper
        first_seen = paper.days[0].isoformat() if paper.days else "?"
        block = [_title(number, paper), Text(f"    {paper.arxiv_id} · {first_seen} · ") + Text(paper.url, style=_link(paper.url))]
        if paper.tags:
            block.append(Text(f"    tags: {', '.join(paper.tags)}"))
        block.append(_indented(_marked(hit.snippet) if hit.snippet else Text(paper.summary[:200])))
        blocks.append(Text("\n").join(block))
    shown = len(page.hits)
    footer = f"{shown} of {page.total_text} results" if page.total > shown else f"{shown} results"
    return Text("\n\n").join([*blocks, Text(footer, style="dim")])


def paper_text(paper: StoredPaper) -> Text:
    """One paper in full, as terminal text: title (bold, linked), authors, tags, summary, links, days."""
    lines = [_title(None, paper), Text(paper.url, style=_link(paper.url))]
    if paper.authors:
        lines.append(Text("Authors: ", style="bold") + Text(", ".join(paper.authors)))
    if paper.tags:
        lines.append(Text("Tags: ", style="bold") + Text(" · ".join(paper.tags)))
    if paper.summary:
        lines += [Text(""), _indented(Text(paper.summary), indent=""), Text("")]
    for label, urls in (("Code", paper.github_urls), ("Hugging Face", paper.huggingface_urls)):
        for url in urls:
            lines.append(Text(f"{label}: ", style="bold") + Text(url, style=_link(url)))
    if paper.days:
        days = ", ".join(day.isoformat() for day in paper.days)
        lines.append(Text("In digests: ", style="bold") + Text(f"{days} via {', '.join(paper.sources)}"))
    lines.append(Text(f"arXiv:{paper.arxiv_id}", style="dim"))
    return Text("\n").join(lines)
