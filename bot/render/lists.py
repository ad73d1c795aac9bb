"""Long lists as pages of embed fields, so a reply fits Discord's limits at any length.

A server with 18 digest channels once got an 8,472-character `/digest status` embed (the limit is
6,000 per message); a list is therefore cut into pages here and shown with `bot.views.Pager`.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.render.payloads import embed_size
from bot.render.text import (
    BRAND_COLOUR,
    MAX_FIELD_NAME,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    MAX_MESSAGE_EMBED_CHARS,
    MAX_TITLE,
    _plain,
    _plural,
    truncate,
)


def field_pages(title: str, fields: Sequence[tuple[str, str]], *, noun: str) -> list[discord.Embed]:
    """`fields` (name, value: Paperbot-composed, already escaped) as embeds of whole fields.

    Each page keeps within 25 fields and 6,000 characters, title and footer included; the footer
    says `Page i of n · N <noun>s`. Over-long names and values are cut to Discord's field limits.
    """
    fields = [(truncate(name, MAX_FIELD_NAME) or "\u200b", truncate(value, MAX_FIELD_VALUE) or "\u200b")
              for name, value in fields]
    footer_room = len(f"Page {len(fields) or 1} of {len(fields) or 1} · {_plural(len(fields), noun)}")
    budget = MAX_MESSAGE_EMBED_CHARS - footer_room
    pages: list[discord.Embed] = []
    embed = _page(title)
    for name, value in fields:
        if len(embed.fields) >= MAX_FIELDS or (embed.fields and embed_size(embed) + len(name) + len(value) > budget):
            pages.append(embed)
            embed = _page(title)
        embed.add_field(name=name, value=value, inline=False)
    pages.append(embed)
    for number, page in enumerate(pages, start=1):
        page.set_footer(text=f"Page {number} of {len(pages)} · {_plural(len(fields), noun)}")
    return pages


def _page(title: str) -> discord.Embed:
    return discord.Embed(title=_plain(title, MAX_TITLE), colour=BRAND_COLOUR)
