"""Papers and lists of papers: `/paper`, search pages, top papers, roundups and tag lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import discord

from storage.models import SearchPage, StoredPaper, TagCount
from storage.votes import RankedPaper

from bot.render.payloads import (
    MessagePayload,
    VoteButton,
    _vote_buttons,
    embed_size,
)
from bot.render.text import (
    BRAND_COLOUR,
    MAX_BUTTONS,
    MAX_DESCRIPTION,
    MAX_FIELD_VALUE,
    MAX_FOOTER,
    MAX_MESSAGE_EMBED_CHARS,
    MAX_TITLE,
    NO_MENTIONS,
    _ENTRY_AUTHORS,
    _ENTRY_SNIPPET,
    _ENTRY_SUMMARY,
    _ENTRY_TAGS,
    _ENTRY_TITLE,
    _ENTRY_URL,
    _FOOTER_BUDGET,
    _LINK_LABEL,
    _TAG_NAME,
    _escaped,
    _fit,
    _join_fitting,
    _label,
    _links,
    _one_line,
    _paper_url,
    _plain,
    _plural,
    _render_snippet,
    _summary_start,
    escape_text,
)

# --------------------------------------------------------------------------------------------
# One paper
# --------------------------------------------------------------------------------------------


def _title_text(paper: StoredPaper) -> str:
    title = _one_line(paper.title)
    if title:
        return title
    return f"arXiv:{_one_line(paper.arxiv_id)}" if _one_line(paper.arxiv_id) else "Untitled paper"


def _footer_text(paper: StoredPaper, position: tuple[int, int] | None) -> str:
    parts = []
    if position:
        parts.append(f"{position[0]}/{position[1]}")
    arxiv_id = _one_line(paper.arxiv_id)
    if arxiv_id:
        parts.append(f"arXiv:{arxiv_id}")
    return _plain(" · ".join(parts), _FOOTER_BUDGET)


def _cut_escaped(item: str, room: int) -> str:
    return _escaped(item, room)


def paper_embed(
    paper: StoredPaper, *, position: tuple[int, int] | None = None, related: Sequence[StoredPaper] = ()
) -> discord.Embed:
    """One paper in full (`/paper`, and each message of a threaded digest).

    Title linked to arXiv, summary as the description, fields for authors, tags, code, Hugging
    Face, the digests it appeared in and `related` papers (storage.related); `arXiv:<id>`
    (after `n/m` when `position` is given) in the footer.
    """
    embed = discord.Embed(
        title=_escaped(_title_text(paper), MAX_TITLE),
        url=_paper_url(paper),
        colour=BRAND_COLOUR,
    )

    authors = [_one_line(a) for a in paper.authors if _one_line(a)]
    if authors:
        value = _join_fitting(
            [_escaped(a, MAX_FIELD_VALUE) for a in authors],
            MAX_FIELD_VALUE,
            cut_first=_cut_escaped,
        )
        embed.add_field(name="Authors", value=value, inline=False)

    tags = [_one_line(t) for t in paper.tags if _one_line(t)]
    if tags:
        value = _join_fitting(
            [_escaped(t, MAX_FIELD_VALUE) for t in tags],
            MAX_FIELD_VALUE,
            sep=" · ",
            cut_first=_cut_escaped,
        )
        embed.add_field(name="Tags", value=value, inline=False)

    for name, urls, segments in (
        ("Code", paper.github_urls, 2),
        ("Hugging Face", paper.huggingface_urls, 3),
    ):
        # A link longer than a field could never be shown; leave it out rather than cut it.
        links = _links(urls, segments, max_len=MAX_FIELD_VALUE - _LINK_LABEL - 20)
        if links:
            embed.add_field(name=name, value=_join_fitting(links, MAX_FIELD_VALUE, sep="\n"))

    days = [d.isoformat() for d in paper.days]
    sources = [_one_line(s) for s in paper.sources if _one_line(s)]
    if days or sources:
        lines = []
        if days:
            lines.append(_join_fitting(days, 600))
        if sources:
            room = MAX_FIELD_VALUE - sum(len(line) + 1 for line in lines) - len("via ")
            items = [_escaped(s, room) for s in sources]
            lines.append("via " + _join_fitting(items, room, cut_first=_cut_escaped))
        embed.add_field(name="In digests", value="\n".join(lines))

    if related:
        embed.add_field(name="Related", value=_related_list(related, MAX_FIELD_VALUE), inline=False)

    footer = _footer_text(paper, position)
    if footer:
        embed.set_footer(text=footer)

    # The description goes last: it gets whatever the 6000 per message leaves.
    summary = (paper.summary or "").strip()
    if summary:
        room = min(MAX_DESCRIPTION, MAX_MESSAGE_EMBED_CHARS - embed_size(embed))
        description = _fit(summary, room, escape_text)
        if description:
            embed.description = description
    return embed


def _related_entry(paper: StoredPaper) -> str:
    title = _label(_title_text(paper), _ENTRY_TITLE)
    url = _paper_url(paper, _ENTRY_URL)
    return f"• [{title}]({url})" if url else f"• {title}"


def _related_list(related: Sequence[StoredPaper], limit: int) -> str:
    """One line per related paper, title linked to arXiv; whole lines only, then "+N more"."""
    return _join_fitting([_related_entry(p) for p in related], limit, sep="\n")


def related_embed(paper: StoredPaper, related: Sequence[StoredPaper]) -> discord.Embed:
    """The private answer to a Related button: the papers most like `paper`, or a note that there are none."""
    embed = discord.Embed(title=_escaped("Related: " + _title_text(paper), MAX_TITLE), colour=BRAND_COLOUR)
    if related:
        embed.description = _related_list(related, MAX_DESCRIPTION)
    else:
        embed.description = "No paper in the library is close enough to this one yet."
    footer = _footer_text(paper, None)
    if footer:
        embed.set_footer(text=footer)
    return embed


# --------------------------------------------------------------------------------------------
# Lists of papers
# --------------------------------------------------------------------------------------------


def _entry_heading(number: int, paper: StoredPaper) -> str:
    title = _label(_title_text(paper), _ENTRY_TITLE)
    url = _paper_url(paper, _ENTRY_URL)
    return f"**{number}. [{title}]({url})**" if url else f"**{number}. {title}**"


def _entry_tags(paper: StoredPaper, limit: int, shown: int) -> str:
    """Up to `shown` tags in `limit` characters, then "+N more" for all the others."""
    tags = [_one_line(t) for t in paper.tags if _one_line(t)]
    return _join_fitting(
        [_escaped(t, 60) for t in tags[:shown]],
        limit,
        sep=" · ",
        cut_first=_cut_escaped,
        hidden=max(0, len(tags) - shown),
    )


def _entry_authors(paper: StoredPaper) -> str:
    authors = [_one_line(a) for a in paper.authors if _one_line(a)]
    if not authors:
        return ""
    first = ", ".join(authors[:3]) + (" et al." if len(authors) > 3 else "")
    return _escaped(first, _ENTRY_AUTHORS)


def _search_entry(number: int, hit_paper: StoredPaper, snippet: str) -> str:
    lines = [_entry_heading(number, hit_paper)]
    byline = [part for part in (_entry_authors(hit_paper),) if part]
    tags = _entry_tags(hit_paper, _ENTRY_TAGS, 3)
    if tags:
        byline.append(f"*{tags}*")
    if byline:
        lines.append(" · ".join(byline))
    snippet = _one_line(snippet)
    if snippet:
        lines.append(_fit(snippet, _ENTRY_SNIPPET, _render_snippet))
    else:
        start = _summary_start(hit_paper.summary)
        if start:
            lines.append(_escaped(start, _ENTRY_SNIPPET))
    return "\n".join(lines)


def search_results_embed(
    page: SearchPage,
    *,
    title: str,
    page_number: int,
    page_count: int,
    description_prefix: str = "",
    first_number: int = 1,
) -> discord.Embed:
    """One page of search results (the caller picks the page size, e.g. 5).

    `title` is shown as plain text (escaped); `description_prefix` is caller-composed markdown
    (mentions are still neutralised; escape user input in it with `escape_text`). Entries are
    numbered from `first_number` and kept whole or left out, with "N not shown" in the footer.
    """
    embed = discord.Embed(title=_escaped(title, MAX_TITLE) or None, colour=BRAND_COLOUR)
    footer = f"Page {page_number} of {page_count} · {page.total_text} result{'' if page.total == 1 else 's'}"
    # Room for the footer's "· N not shown" even before we know N.
    footer_room = len(footer) + len(f" · {len(page.hits)} not shown")
    budget = min(MAX_DESCRIPTION, MAX_MESSAGE_EMBED_CHARS - embed_size(embed) - footer_room)

    prefix = _plain(description_prefix.strip(), min(1024, budget)) if description_prefix else ""
    description = prefix
    shown = 0
    for offset, hit in enumerate(page.hits):
        entry = _search_entry(first_number + offset, hit.paper, hit.snippet)
        candidate = f"{description}\n\n{entry}" if description else entry
        if len(candidate) > budget:
            break
        description, shown = candidate, shown + 1
    if not page.hits:
        description = f"{description}\n\nNo results." if description else "No results."
    if shown < len(page.hits):
        footer += f" · {len(page.hits) - shown} not shown"
    embed.description = description or None
    embed.set_footer(text=_plain(footer, MAX_FOOTER))
    return embed


def _ranked_entry(number: int, ranked: RankedPaper) -> str:
    lines = [_entry_heading(number, ranked.paper)]
    byline = [f"▲ {_plural(ranked.votes, 'vote')}"]
    authors = _entry_authors(ranked.paper)
    if authors:
        byline.append(authors)
    tags = _entry_tags(ranked.paper, _ENTRY_TAGS, 3)
    if tags:
        byline.append(f"*{tags}*")
    lines.append(" · ".join(byline))
    start = _summary_start(ranked.paper.summary)
    if start:
        lines.append(_escaped(start, _ENTRY_SUMMARY))
    return "\n".join(lines)


def _ranked_description(ranked: Sequence[RankedPaper], first_number: int, budget: int) -> tuple[str, int]:
    """As many whole entries as fit in `budget`, and how many that is."""
    description, shown = "", 0
    for offset, paper in enumerate(ranked):
        entry = _ranked_entry(first_number + offset, paper)
        candidate = f"{description}\n\n{entry}" if description else entry
        if len(candidate) > budget:
            break
        description, shown = candidate, shown + 1
    return description, shown


def top_papers_embed(
    ranked: Sequence[RankedPaper],
    total: int,
    *,
    title: str,
    page_number: int,
    page_count: int,
    first_number: int = 1,
) -> discord.Embed:
    """One page of `/papers top`: numbered entries with their votes, most first."""
    embed = discord.Embed(title=_escaped(title, MAX_TITLE) or None, colour=BRAND_COLOUR)
    footer = f"Page {page_number} of {page_count} · {_plural(total, 'paper')} with votes"
    footer_room = len(footer) + len(f" · {len(ranked)} not shown")
    budget = min(MAX_DESCRIPTION, MAX_MESSAGE_EMBED_CHARS - embed_size(embed) - footer_room)
    description, shown = _ranked_description(ranked, first_number, budget)
    if shown < len(ranked):
        footer += f" · {len(ranked) - shown} not shown"
    embed.description = description or "No papers."
    embed.set_footer(text=_plain(footer, MAX_FOOTER))
    return embed


_ROUNDUP_TAGS = 10


def roundup_message(
    week_start: dt.date, week_end: dt.date, ranked: Sequence[RankedPaper], paper_count: int, tags: Sequence[TagCount]
) -> MessagePayload:
    """The weekly roundup: the week's top papers (votes, then newest) with vote buttons, and its busiest tags.

    `paper_count` is how many papers the week had in all; without any, a one-line note. Never pings.
    """
    span = f"{week_start.isoformat()} – {week_end.isoformat()}"
    if not paper_count:
        return MessagePayload(content=f"🏆 Weekly roundup, {span}: no new papers this week.", embeds=[])
    embed = discord.Embed(title=f"🏆 The week's top papers · {span}", colour=BRAND_COLOUR)
    tag_text = _join_fitting(
        [f"{_escaped(t.name, _TAG_NAME)} ({t.count})" for t in tags[:_ROUNDUP_TAGS] if _one_line(t.name)],
        MAX_FIELD_VALUE, sep=" · ",
    )
    if tag_text:
        embed.add_field(name="Busiest tags", value=tag_text, inline=False)
    embed.set_footer(text=f"{_plural(paper_count, 'paper')} this week · vote with the ▲ buttons")
    budget = min(MAX_DESCRIPTION, MAX_MESSAGE_EMBED_CHARS - embed_size(embed))
    description, shown = _ranked_description(ranked, 1, budget)
    embed.description = description or None
    numbered = [(n, r.paper) for n, r in enumerate(ranked[:shown], start=1)]
    buttons = tuple(
        VoteButton(b.arxiv_id, b.number, ranked[b.number - 1].votes) for b in _vote_buttons(numbered[:MAX_BUTTONS])
    )
    return MessagePayload(content=None, embeds=[embed], allowed_mentions=NO_MENTIONS, votes=buttons)


def tag_list_embeds(tags: Sequence[TagCount], *, per_page: int = 40) -> list[discord.Embed]:
    """Pages of "name — count", at most `per_page` lines (fewer if 4096 characters run out)."""
    per_page = max(1, per_page)
    lines = [f"{_escaped(t.name, _TAG_NAME) or '(unnamed)'} — {t.count}" for t in tags]
    pages: list[list[str]] = []
    current: list[str] = []
    length = 0
    for line in lines:
        added = len(line) + (1 if current else 0)
        if current and (len(current) >= per_page or length + added > MAX_DESCRIPTION):
            pages.append(current)
            current, length, added = [], 0, len(line)
        current.append(line)
        length += added
    if current or not pages:
        pages.append(current)

    embeds = []
    for number, page_lines in enumerate(pages, start=1):
        embed = discord.Embed(
            title="Tags",
            description="\n".join(page_lines) or "No tags yet.",
            colour=BRAND_COLOUR,
        )
        embed.set_footer(text=f"Page {number} of {len(pages)} · {_plural(len(tags), 'tag')}")
        embeds.append(embed)
    return embeds


