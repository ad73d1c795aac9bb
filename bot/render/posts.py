"""Daily digests for channels, threads and forums, their notices, and subscribers' DMs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import discord

from storage.models import StoredPaper
from storage.tags import normalize_tag

from bot.render.papers import (
    _cut_escaped,
    _entry_heading,
    _entry_tags,
    paper_embed,
)
from bot.render.payloads import (
    MessagePayload,
    _vote_buttons,
)
from bot.render.text import (
    BRAND_COLOUR,
    MAX_ALLOWED_ROLES,
    MAX_BUTTONS,
    MAX_CONTENT,
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_MESSAGE_EMBED_CHARS,
    MAX_THREAD_NAME,
    NO_MENTIONS,
    _ENTRY_SUMMARY,
    _ENTRY_TAGS,
    _ENTRY_URL,
    _escaped,
    escape_text,
    _join_fitting,
    _links,
    _one_line,
    _plural,
    _summary_start,
    neutralize_mentions,
    truncate,
)

# --------------------------------------------------------------------------------------------
# Daily digests
# --------------------------------------------------------------------------------------------


#: Papers one channel post or one DM shows at most (`[delivery] max_papers_per_post`). The biggest real
#: day in the corpus has about 45 papers; a digest of thousands is stored whole but posted capped.
DEFAULT_MAX_PAPERS_PER_POST = 200


def more_papers_note(day: dt.date, left_out: int) -> str:
    """How to see the papers a capped post leaves out."""
    return (f"… and {left_out:,} more paper{'' if left_out == 1 else 's'} this day: "
            f"`/papers day day:{day.isoformat()}` lists them all.")


def _capped(items: Sequence, max_papers: int) -> tuple[Sequence, int]:
    """The first `max_papers` items, and how many were left out."""
    if max_papers < 1:
        raise ValueError(f"max_papers must be at least 1, not {max_papers}")
    return items[:max_papers], max(0, len(items) - max_papers)


def _with_note(payloads: list[MessagePayload], note: str) -> list[MessagePayload]:
    """`note` at the end of the last message's content, or as one more message when it does not fit."""
    last = payloads[-1]
    content = f"{last.content}\n{note}" if last.content else note
    if len(content) <= MAX_CONTENT:
        return payloads[:-1] + [MessagePayload(content, last.embeds, last.allowed_mentions, last.votes)]
    return payloads + [MessagePayload(content=note, embeds=[], allowed_mentions=NO_MENTIONS)]


def digest_header(day: dt.date, count: int, *, late: bool = False) -> str:
    """`📄 Papers for 2025-02-20 (12 papers)`, plus ` · posted late` when late."""
    header = f"📄 Papers for {day.isoformat()} ({_plural(count, 'paper')})"
    return header + " · posted late" if late else header


def digest_thread_name(day: dt.date) -> str:
    """Name for the thread a `thread`-style digest is posted in (max 100 characters)."""
    return f"Papers for {day.isoformat()}"[:MAX_THREAD_NAME]


def day_tags_by_frequency(papers: Sequence[StoredPaper]) -> list[str]:
    """The tags of a day's papers, most frequent first (ties: first seen first), one per `normalize_tag` identity.

    A forum digest post carries the forum's tags that match the first of these.
    """
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for paper in papers:
        for tag in dict.fromkeys(normalize_tag(t) for t in paper.tags if normalize_tag(t)):
            counts[tag] = counts.get(tag, 0) + 1
        for name in paper.tags:
            names.setdefault(normalize_tag(name), name.strip())
    order = sorted(counts, key=lambda norm: -counts[norm])  # stable: first seen first among equals
    return [names[norm] for norm in order]


def _header_payload(
    header: str, mention_role_ids: Sequence[int], extra: str = ""
) -> MessagePayload:
    roles = list(dict.fromkeys(int(r) for r in mention_role_ids if int(r) > 0))
    content = header + extra
    mentioned: list[int] = []
    for role in roles[:MAX_ALLOWED_ROLES]:
        sep = "\n" if not mentioned else " "
        piece = f"{sep}<@&{role}>"
        if len(content) + len(piece) > MAX_CONTENT:
            break
        content += piece
        mentioned.append(role)
    if mentioned:
        allowed = discord.AllowedMentions(
            everyone=False,
            users=False,
            roles=[discord.Object(id=r) for r in mentioned],
            replied_user=False,
        )
    else:
        allowed = NO_MENTIONS
    return MessagePayload(content=content, embeds=[], allowed_mentions=allowed)


def _compact_entry(number: int, paper: StoredPaper) -> str:
    lines = [_entry_heading(number, paper)]
    tags = _entry_tags(paper, _ENTRY_TAGS, 4)
    if tags:
        lines.append(f"*{tags}*")
    start = _summary_start(paper.summary)
    if start:
        lines.append(_escaped(start, _ENTRY_SUMMARY))
    code = _links(paper.github_urls, 2, max_len=_ENTRY_URL)
    if code:
        more = f" · +{len(code) - 1} more" if len(code) > 1 else ""
        lines.append(f"💻 {code[0]}{more}")
    return "\n".join(lines)


def _pack_compact(entries: list[str], *, per_message: int | None = None) -> list[list[list[str]]]:
    """Entries into messages of embeds of entries: ≤ 4096 per embed, ≤ 6000 and 10 per message.

    Each message is a list of embeds, each embed the list of its entries (joined by a blank line
    in the description). `per_message` caps the entries of one message (one vote button each).
    """
    messages: list[list[list[str]]] = []
    embeds: list[list[str]] = []
    lengths: list[int] = []  # description length of each embed of the current message
    for entry in entries:
        if embeds and (per_message is None or sum(map(len, embeds)) < per_message):
            grown = lengths[-1] + 2 + len(entry)
            if grown <= MAX_DESCRIPTION and sum(lengths) - lengths[-1] + grown <= MAX_MESSAGE_EMBED_CHARS:
                embeds[-1].append(entry)
                lengths[-1] = grown
                continue
            if len(embeds) < MAX_EMBEDS and sum(lengths) + len(entry) <= MAX_MESSAGE_EMBED_CHARS:
                embeds.append([entry])
                lengths.append(len(entry))
                continue
        if embeds:
            messages.append(embeds)
        embeds, lengths = [[entry]], [len(entry)]
    if embeds:
        messages.append(embeds)
    return messages


def _compact_embeds(message: list[list[str]]) -> list[discord.Embed]:
    return [discord.Embed(description="\n\n".join(entries), colour=BRAND_COLOUR) for entries in message]



def digest_messages(
    day: dt.date,
    papers: Sequence[StoredPaper],
    *,
    style: Literal["compact", "thread"],
    late: bool = False,
    mention_role_ids: Sequence[int] = (),
    max_papers: int = DEFAULT_MAX_PAPERS_PER_POST,
) -> list[MessagePayload]:
    """How a day's digest is posted, one payload per message, in order.

    `compact`: as few messages as possible; the first carries the header as content, then
    numbered entries (linked title, tags, one-line summary start, code link) fill embed
    descriptions, at most 25 per message so that each gets its numbered vote button. `thread`: a
    header message (to start the thread from, see `digest_thread_name`), then one `paper_embed`
    message per paper with its vote button. `mention_role_ids` are pinged by the header message
    only, and only those roles are allowed to be.

    At most `max_papers` papers are shown (the header still counts them all); the last message
    then says how to see the rest, so a hostile or broken 95,000-paper day stays a few messages.
    """
    if style not in ("compact", "thread"):
        raise ValueError(f"unknown digest style {style!r}")
    header = digest_header(day, len(papers), late=late)
    total = len(papers)
    papers, left_out = _capped(papers, max_papers)
    payloads = _digest_payloads(papers, total, header, style, mention_role_ids)
    return _with_note(payloads, more_papers_note(day, left_out)) if left_out else payloads


def _digest_payloads(
    papers: Sequence[StoredPaper], total: int, header: str, style: str, mention_role_ids: Sequence[int]
) -> list[MessagePayload]:
    if style == "compact":
        if not papers:
            return [_header_payload(header, mention_role_ids, "\nNo papers in this digest.")]
        entries = [_compact_entry(n, paper) for n, paper in enumerate(papers, start=1)]
        payloads = []
        first_number = 1
        for index, message in enumerate(_pack_compact(entries, per_message=MAX_BUTTONS)):
            count = sum(map(len, message))
            numbered = list(enumerate(papers[first_number - 1 : first_number - 1 + count], start=first_number))
            first_number += count
            content, mentions = None, NO_MENTIONS
            if index == 0:
                first = _header_payload(header, mention_role_ids)
                content, mentions = first.content, first.allowed_mentions
            payloads.append(MessagePayload(content, _compact_embeds(message), mentions, _vote_buttons(numbered)))
        return payloads
    if style == "thread":
        return [_header_payload(header, mention_role_ids)] + [
            MessagePayload(None, [paper_embed(paper, position=(n, total))], NO_MENTIONS, _vote_buttons([(0, paper)]))
            for n, paper in enumerate(papers, start=1)
        ]
    raise AssertionError(style)


def empty_day_message(day: dt.date) -> MessagePayload:
    """The short note a channel with `empty_day_note` gets on a day without papers."""
    return MessagePayload(content=f"📄 No new papers for {day.isoformat()}.", embeds=[])


def broken_channel_notice(reason: str, *, server: str | None = None) -> MessagePayload:
    """What the server (or the admin, by DM) is told once when Discord refuses a digest channel."""
    where = f"In **{escape_text(server)}**: " if server else ""
    text = (
        f"⚠️ {where}{reason}, so the daily papers digest is paused there. Give Paperbot View Channel, "
        "Send Messages and Embed Links in that channel (for the thread style also Create Public Threads "
        "and Send Messages in Threads), then run `/digest setup` for it again to resume."
    )
    return MessagePayload(content=truncate(neutralize_mentions(text), MAX_CONTENT))


# --------------------------------------------------------------------------------------------
# Personal subscription digests (direct messages)
# --------------------------------------------------------------------------------------------

_ENTRY_MATCHED = 200


def subscription_digest_header(day: dt.date, count: int) -> str:
    return f"📬 Your papers for {day.isoformat()}: {_plural(count, 'paper')} matching your subscriptions"


def subscription_digest_messages(
    day: dt.date, matches: Sequence[tuple[StoredPaper, Sequence[str]]], *,
    max_papers: int = DEFAULT_MAX_PAPERS_PER_POST,
) -> list[MessagePayload]:
    """A subscriber's DM for `day`: each matching paper once, with the subscriptions it matched.

    Entries are the compact digest's (linked title, tags, summary start, code) plus a
    "🔔 matched" line, packed like `digest_messages` (compact) within every limit. The first
    message carries the header; the last one says how to manage subscriptions. Never pings.
    At most `max_papers` papers are listed; the last message then says how to see the rest.
    """
    header = subscription_digest_header(day, len(matches))
    matches, left_out = _capped(matches, max_papers)
    entries = []
    for number, (paper, matched) in enumerate(matches, start=1):
        labels = _join_fitting(
            [_escaped(label, 80) for label in dict.fromkeys(_one_line(m) for m in matched) if label],
            _ENTRY_MATCHED, sep=" · ", cut_first=_cut_escaped, hidden=0,
        )
        entries.append(_compact_entry(number, paper) + (f"\n🔔 {labels}" if labels else ""))
    footer = "Manage these with `/subscriptions list`, `/unsubscribe` or `/subscriptions pause`."
    if left_out:
        footer = f"{more_papers_note(day, left_out)}\n{footer}"
    if not entries:
        return [MessagePayload(content=f"{header}\n{footer}", embeds=[], allowed_mentions=NO_MENTIONS)]
    payloads = []
    packed = _pack_compact(entries)
    for index, message in enumerate(packed):
        embeds = _compact_embeds(message)
        content = header if index == 0 else None
        if index == len(packed) - 1:
            content = f"{content}\n{footer}" if content else footer
        payloads.append(MessagePayload(content, embeds, NO_MENTIONS))
    return payloads
