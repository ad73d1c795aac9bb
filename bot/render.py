"""Turns library objects into Discord messages: the one Discord-facing renderer.

Everything here is pure and deterministic (no clock, no randomness, no I/O): the same inputs give
the same payloads, so a payload can be stored in the delivery ledger (`payload_to_dict`) and
replayed after a crash (`payload_from_dict`).

Guarantees, checked by `check_message_limits` and the tests:

* No Discord limit is ever exceeded (embed title 256, description 4096, field name 256, field
  value 1024, footer 2048, author 256, 25 fields, 10 embeds and 6000 embed characters per message,
  2000 characters of content). Lengths are counted in code points, as discord.py's `len(Embed)`.
  Over-long text is cut at a word boundary and ends with `…`; a single over-long word is hard-cut.
  Lists (authors, links, days, search hits, digest entries) keep whole items and say "+N more".
* Paper text is untrusted. Titles, authors, tags and link labels have Discord markdown escaped;
  summaries keep their markdown where they stand alone (a `paper_embed` description) and are
  escaped where they share a description with other papers, so a stray `**` or ``` cannot
  reformat the next entry. Every visible string has mentions neutralised (`@​everyone`, `<@​123>`),
  and every payload carries an explicit `allowed_mentions` (`NO_MENTIONS` unless a digest is asked
  to ping roles, and then only those roles).
* Papers posted in channels carry vote buttons (`VoteButton`), one per paper, at most 25 per
  message (a compact digest starts a new message rather than leave a paper without one); the
  buttons are part of the payload, so the ledger replays them too.
* URLs are only used when they are http(s), at most 2048 characters, and percent-encoded so they
  cannot break a `[label](url)` link; otherwise the canonical arXiv URL is used or the link is
  dropped (an invalid embed URL makes Discord reject the whole message).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import discord

from storage.models import ARXIV_ID, SearchPage, StoredPaper, TagCount
from storage.tags import normalize_tag
from storage.votes import RankedPaper

__all__ = [
    "BRAND_COLOUR",
    "ELLIPSIS",
    "NO_MENTIONS",
    "VOTE_ID_TEMPLATE",
    "MessagePayload",
    "VoteButton",
    "check_message_limits",
    "digest_header",
    "digest_messages",
    "digest_thread_name",
    "embed_size",
    "escape_text",
    "neutralize_mentions",
    "paper_embed",
    "payload_from_dict",
    "payload_to_dict",
    "roundup_message",
    "search_results_embed",
    "subscription_digest_messages",
    "tag_list_embeds",
    "top_papers_embed",
    "truncate",
    "vote_view",
]

# --------------------------------------------------------------------------------------------
# Discord limits
# --------------------------------------------------------------------------------------------

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_MESSAGE_EMBED_CHARS = 6000  # sum over all embeds of one message
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_AUTHOR = 256
MAX_ACTION_ROWS = 5
MAX_ROW_BUTTONS = 5
MAX_BUTTONS = MAX_ACTION_ROWS * MAX_ROW_BUTTONS
MAX_BUTTON_LABEL = 80
MAX_CUSTOM_ID = 100
MAX_URL = 2048
MAX_THREAD_NAME = 100
MAX_ALLOWED_ROLES = 100  # allowed_mentions.roles

ELLIPSIS = "…"
ZWSP = "\u200b"

#: arXiv's red; every Paperbot embed uses it.
BRAND_COLOUR = discord.Colour(0xB31B1B)

#: The default for every payload: nothing in a Paperbot message may ping.
NO_MENTIONS = discord.AllowedMentions.none()

# How much room one entry of a list gets, so a single paper can never crowd out the rest.
_ENTRY_TITLE = 200
_ENTRY_AUTHORS = 120
_ENTRY_TAGS = 120
_ENTRY_SUMMARY = 180
_ENTRY_SNIPPET = 300
_ENTRY_URL = 300  # longer links are not worth a list entry's room
_LINK_LABEL = 80
_FOOTER_BUDGET = 300
_TAG_NAME = 100

# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------

_ZWJ = "\u200d"
_TRAILING_JUNK = " \t\r\n\f\v,;:-–—([{/"


def _is_joiner(ch: str) -> bool:
    """Characters that belong to the character before them: cutting right before one splits it."""
    return bool(
        unicodedata.combining(ch)
        or ch == _ZWJ
        or "\ufe00" <= ch <= "\ufe0f"  # variation selectors (emoji presentation)
        or "\U0001f3fb" <= ch <= "\U0001f3ff"  # skin-tone modifiers
        or "\U000e0020" <= ch <= "\U000e007f"  # tag characters (flag sequences)
    )


def truncate(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut to fit and ending in `…`.

    The cut is at the last word boundary, unless that would throw away more than half of the
    room (one over-long word, or a long unbroken run such as CJK text or a URL): then the text is
    hard-cut, never inside a grapheme built with combining marks, ZWJ or emoji modifiers.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit == 1:
        return ELLIPSIS
    budget = limit - 1
    cut = text[:budget]
    if text[budget].isspace():
        boundary = budget
    else:
        boundary = max((i for i in range(budget - 1, -1, -1) if cut[i].isspace()), default=-1)
    if boundary >= max(1, budget // 2):
        kept = cut[:boundary].rstrip(_TRAILING_JUNK) or cut[:boundary].rstrip()
    else:
        end = budget
        while end > 0 and (_is_joiner(text[end]) or text[end - 1] == _ZWJ):
            end -= 1
        # A single grapheme longer than the room (a long ZWJ sequence) is cut anyway, but not
        # right after a joiner.
        kept = (cut[:end] if end > 0 else cut.rstrip(_ZWJ)).rstrip()
    return kept + ELLIPSIS


_MENTION = re.compile(r"@(everyone|here|[!&]?[0-9]+)")


def neutralize_mentions(text: str) -> str:
    """Put a zero-width space after the `@` of `@everyone`, `@here`, `<@id>`, `<@!id>`, `<@&id>`."""
    return _MENTION.sub("@" + ZWSP + r"\1", text)


def escape_text(text: str) -> str:
    """Untrusted text made inert: Discord markdown escaped, mentions neutralised."""
    return neutralize_mentions(discord.utils.escape_markdown(text))


def _escape_label(text: str) -> str:
    """`escape_text`, plus every square bracket escaped so the text can be a `[label](url)`."""
    escaped = escape_text(text)
    out: list[str] = []
    i = 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "\\" and i + 1 < len(escaped):
            out.append(escaped[i : i + 2])
            i += 2
            continue
        out.append("\\" + ch if ch in "[]" else ch)
        i += 1
    return "".join(out)


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def _fit(raw: str, limit: int, render: Callable[[str], str]) -> str:
    """`render(truncate(raw, n))` for the largest n whose result still fits in `limit`.

    Escaping lengthens text, so the cut is made on the raw text (never inside an escape or a
    neutralised mention) and the rendered length is what is checked.
    """
    if limit <= 0:
        return ""
    out = render(truncate(raw, limit))
    if len(out) <= limit:
        return out
    best, lo, hi = "", 0, limit - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = render(truncate(raw, mid))
        if len(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def _plain(text: str, limit: int) -> str:
    """For places Discord shows without markdown (footer, author, content we compose)."""
    return _fit(text, limit, neutralize_mentions)


def _escaped(text: str, limit: int) -> str:
    return _fit(_one_line(text), limit, escape_text)


def _label(text: str, limit: int) -> str:
    return _fit(_one_line(text), limit, _escape_label)


def _render_snippet(text: str) -> str:
    """A search snippet: its `**bold**` kept (closed if the cut left it open), all else escaped."""
    parts = text.split("**")
    out: list[str] = []
    for i, part in enumerate(parts):
        escaped = escape_text(part)
        out.append(f"**{escaped}**" if i % 2 and part.strip() else escaped)
    return "".join(out)


_BULLET = re.compile(r"^[-•*]\s+")
_FLATTENED_BULLET = re.compile(r"\s[-•]\s+(?=\S)")


def _summary_start(summary: str) -> str:
    """The first point of a summary, without its bullet, on one line.

    Markdown digests flatten bullet lists into one cell ("- A. - B."), so a summary that starts
    with a bullet ends its first point at the next " - ".
    """
    for line in (summary or "").splitlines():
        line = line.strip()
        bullet = _BULLET.match(line)
        if bullet:
            line = _FLATTENED_BULLET.split(line[bullet.end() :], maxsplit=1)[0]
        line = _one_line(line.lstrip("-•*"))
        if line:
            return line
    return ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _join_fitting(
    items: Sequence[str],
    limit: int,
    *,
    sep: str = ", ",
    more: Callable[[int], str] = lambda n: f"+{n} more",
    cut_first: Callable[[str, int], str] | None = None,
    hidden: int = 0,
) -> str:
    """As many whole `items` as fit in `limit`, then `more(n)` for the n left out.

    `hidden` items were left out before the call and are counted in `more` too. When not even
    the first item fits, `cut_first(item, room)` may shorten it (for plain text; links must not
    be cut and leave `cut_first` unset).
    """
    shown: list[str] = []
    length = 0
    for i, item in enumerate(items):
        left_after = len(items) - i - 1 + hidden
        reserve = len(sep) + len(more(left_after)) if left_after else 0
        added = len(item) + (len(sep) if shown else 0)
        if length + added + reserve <= limit:
            shown.append(item)
            length += added
            continue
        if not shown and cut_first is not None:
            left = len(items) - 1 + hidden
            room = limit - len(sep) - len(more(left)) if left else limit
            first = cut_first(item, room)
            if first:
                shown.append(first)
        break
    text = sep.join(shown)
    left = len(items) - len(shown) + hidden
    if left:
        suffix = more(left)
        text = f"{text}{sep}{suffix}" if text else suffix
    return text if len(text) <= limit else truncate(text, limit)


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------

_URL_SAFE = "/?#&=+;,:!$'*%-._~"


def _safe_url(url: str | None, max_len: int = MAX_URL) -> str | None:
    """An http(s) URL that Discord accepts and that cannot break `[label](url)`, or None."""
    url = (url or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    netloc = parts.netloc
    if any(ch.isspace() or not ch.isprintable() or ch in '<>()\\"`|{}^' for ch in netloc):
        return None
    if _MENTION.search(netloc):
        return None
    if not netloc.isascii():
        try:
            netloc = netloc.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    # Path, query and fragment: percent-encode whatever markdown or Discord could read (spaces,
    # parentheses, brackets, backslashes, non-ASCII) and every `@` (structural only in the netloc).
    safe = urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE),
            quote(parts.fragment, safe=_URL_SAFE),
        )
    )
    return safe if len(safe) <= max_len else None


def _paper_url(paper: StoredPaper, max_len: int = MAX_URL) -> str | None:
    """The paper's own URL if usable, else its canonical arXiv URL, else None."""
    own = _safe_url(paper.url, max_len)
    if own:
        return own
    if ARXIV_ID.fullmatch(paper.arxiv_id or ""):
        return _safe_url(f"https://arxiv.org/abs/{paper.arxiv_id}", max_len)
    return None


def _link_label(url: str, segments: int) -> str:
    """A short readable label for a link: `owner/repo` for GitHub, `datasets/x/y` for HF."""
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p][:segments]
    return unquote("/".join(path)) or parts.netloc


def _links(urls: Sequence[str], segments: int, max_len: int = MAX_URL) -> list[str]:
    """`[label](url)` for each usable URL, duplicates dropped, order kept."""
    out: list[str] = []
    seen: set[str] = set()
    for url in urls:
        safe = _safe_url(url, max_len)
        if safe and safe not in seen:
            seen.add(safe)
            out.append(f"[{_label(_link_label(safe, segments), _LINK_LABEL)}]({safe})")
    return out


# --------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------


#: A vote button's custom_id: `paperbot:vote:<number>:<arXiv id>`; number 0 = the message's only paper.
#: bot.votes answers the clicks of every button matching it, also on messages sent before a restart.
VOTE_ID_TEMPLATE = r"paperbot:vote:(?P<number>[0-9]+):(?P<arxiv_id>[A-Za-z0-9./-]+)"
_VOTE_ID = re.compile(VOTE_ID_TEMPLATE)


@dataclass(frozen=True)
class VoteButton:
    """One paper's vote button: its number in the message's list (0 = the only paper) and its count."""

    arxiv_id: str
    number: int = 0
    count: int = 0

    @property
    def custom_id(self) -> str:
        return f"paperbot:vote:{self.number}:{self.arxiv_id}"

    @property
    def label(self) -> str:
        """`#3 ▲ 2`, or `▲ 2` for a message's only paper."""
        return f"#{self.number} ▲ {self.count}" if self.number else f"▲ {self.count}"

    def as_button(self) -> discord.ui.Button:
        return discord.ui.Button(style=discord.ButtonStyle.secondary, label=self.label, custom_id=self.custom_id)


class _Buttons(discord.ui.View):
    """Buttons sent for their look only: clicks are answered by custom_id (see `VOTE_ID_TEMPLATE`).

    Not dispatchable, so discord.py does not keep a view per sent message in memory: the
    persistent handler registered at start-up answers every click, before and after restarts.
    """

    def __init__(self) -> None:
        super().__init__(timeout=None)

    def is_dispatchable(self) -> bool:
        return False


def _usable(buttons: Sequence[VoteButton]) -> list[VoteButton]:
    """The buttons Discord accepts, at most 25: an id too long for a custom_id gets none."""
    return [b for b in buttons if len(b.custom_id) <= MAX_CUSTOM_ID][:MAX_BUTTONS]


def vote_view(buttons: Sequence[VoteButton]) -> discord.ui.View:
    """The vote buttons of a message, five to a row, in order."""
    view = _Buttons()
    for index, button in enumerate(_usable(buttons)):
        item = button.as_button()
        item.row = index // MAX_ROW_BUTTONS
        view.add_item(item)
    return view


@dataclass(frozen=True, eq=False)
class MessagePayload:
    """One Discord message: `channel.send(**payload.as_kwargs())`.

    Equality is equality of `payload_to_dict`, i.e. of what Discord would receive.
    """

    content: str | None
    embeds: list[discord.Embed] = field(default_factory=list)
    allowed_mentions: discord.AllowedMentions = NO_MENTIONS
    votes: tuple[VoteButton, ...] = ()  # one vote button per paper in the message

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Messageable.send`, `InteractionResponse.send_message`, `edit`."""
        kwargs: dict[str, Any] = {
            "content": self.content,
            "embeds": list(self.embeds),
            "allowed_mentions": self.allowed_mentions,
        }
        if self.votes:
            kwargs["view"] = vote_view(self.votes)
        return kwargs

    def components(self) -> list[dict[str, Any]]:
        """The message's components as Discord receives them."""
        return vote_view(self.votes).to_components() if self.votes else []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessagePayload):
            return NotImplemented
        return payload_to_dict(self) == payload_to_dict(other)

    __hash__ = None  # type: ignore[assignment]


_PAYLOAD_VERSION = 1


def payload_to_dict(payload: MessagePayload) -> dict[str, Any]:
    """A JSON-serialisable form of `payload` for the delivery ledger."""
    data = {
        "v": _PAYLOAD_VERSION,
        "content": payload.content,
        "embeds": [copy.deepcopy(embed.to_dict()) for embed in payload.embeds],
        "allowed_mentions": copy.deepcopy(payload.allowed_mentions.to_dict()),
    }
    if payload.votes:  # absent rather than empty: payloads stored before votes existed read the same
        data["votes"] = [[b.arxiv_id, b.number, b.count] for b in payload.votes]
    return data


def _allowed_mentions_from_dict(data: dict[str, Any]) -> discord.AllowedMentions:
    parse = set(data.get("parse", ()))
    users: bool | list[discord.Object] = "users" in parse
    roles: bool | list[discord.Object] = "roles" in parse
    if "users" in data:
        users = [discord.Object(id=int(i)) for i in data["users"]]
    if "roles" in data:
        roles = [discord.Object(id=int(i)) for i in data["roles"]]
    mentions = discord.AllowedMentions(
        everyone="everyone" in parse,
        users=users,
        roles=roles,
        replied_user=bool(data.get("replied_user", False)),
    )
    return NO_MENTIONS if mentions.to_dict() == NO_MENTIONS.to_dict() else mentions


def payload_from_dict(data: dict[str, Any]) -> MessagePayload:
    """The payload `payload_to_dict` stored (also after a trip through JSON)."""
    version = data.get("v", _PAYLOAD_VERSION)
    if version != _PAYLOAD_VERSION:
        raise ValueError(f"unknown payload version {version!r}")
    return MessagePayload(
        content=data.get("content"),
        embeds=[discord.Embed.from_dict(copy.deepcopy(e)) for e in data.get("embeds", [])],
        allowed_mentions=_allowed_mentions_from_dict(data.get("allowed_mentions") or {}),
        votes=tuple(VoteButton(str(a), int(n), int(c)) for a, n, c in data.get("votes", ())),
    )


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


def embed_size(embed: discord.Embed) -> int:
    """Characters the embed counts towards the 6000 per message (as Discord and `len(Embed)`)."""
    data = embed.to_dict()
    size = len(data.get("title") or "") + len(data.get("description") or "")
    for f in data.get("fields", []):
        size += len(f.get("name") or "") + len(f.get("value") or "")
    size += len((data.get("footer") or {}).get("text") or "")
    size += len((data.get("author") or {}).get("name") or "")
    return size


_RAW_EVERYONE = re.compile(r"@(?:everyone|here)")
_RAW_USER = re.compile(r"<@!?[0-9]+>")
_RAW_ROLE = re.compile(r"<@&([0-9]+)>")


def _visible_texts(payload: MessagePayload) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for i, embed in enumerate(payload.embeds):
        data = embed.to_dict()
        texts.append((f"embed[{i}].title", data.get("title") or ""))
        texts.append((f"embed[{i}].description", data.get("description") or ""))
        for j, f in enumerate(data.get("fields", [])):
            texts.append((f"embed[{i}].field[{j}].name", f.get("name") or ""))
            texts.append((f"embed[{i}].field[{j}].value", f.get("value") or ""))
        texts.append((f"embed[{i}].footer", (data.get("footer") or {}).get("text") or ""))
        texts.append((f"embed[{i}].author", (data.get("author") or {}).get("name") or ""))
    return texts


def check_message_limits(payload: MessagePayload) -> list[str]:
    """Every Discord limit (and Paperbot mention rule) the payload breaks; empty when it is fine."""
    problems: list[str] = []
    content = payload.content or ""
    if len(content) > MAX_CONTENT:
        problems.append(f"content has {len(content)} characters (max {MAX_CONTENT})")
    if not content.strip() and not payload.embeds:
        problems.append("message has neither content nor embeds")
    if len(payload.embeds) > MAX_EMBEDS:
        problems.append(f"message has {len(payload.embeds)} embeds (max {MAX_EMBEDS})")

    total = 0
    for i, embed in enumerate(payload.embeds):
        data = embed.to_dict()
        total += embed_size(embed)
        checks = [
            ("title", data.get("title") or "", MAX_TITLE),
            ("description", data.get("description") or "", MAX_DESCRIPTION),
            ("footer", (data.get("footer") or {}).get("text") or "", MAX_FOOTER),
            ("author", (data.get("author") or {}).get("name") or "", MAX_AUTHOR),
        ]
        for name, text, limit in checks:
            if len(text) > limit:
                problems.append(f"embed[{i}].{name} has {len(text)} characters (max {limit})")
        fields = data.get("fields", [])
        if len(fields) > MAX_FIELDS:
            problems.append(f"embed[{i}] has {len(fields)} fields (max {MAX_FIELDS})")
        for j, f in enumerate(fields):
            name, value = f.get("name") or "", f.get("value") or ""
            if len(name) > MAX_FIELD_NAME:
                problems.append(
                    f"embed[{i}].field[{j}].name has {len(name)} characters (max {MAX_FIELD_NAME})"
                )
            if len(value) > MAX_FIELD_VALUE:
                problems.append(
                    f"embed[{i}].field[{j}].value has {len(value)} characters "
                    f"(max {MAX_FIELD_VALUE})"
                )
            if not name.strip() or not value.strip():
                problems.append(f"embed[{i}].field[{j}] has an empty name or value")
        if not (data.get("title") or data.get("description") or fields):
            problems.append(f"embed[{i}] has no title, description or fields")
        url = data.get("url")
        if url is not None and _safe_url(url) != url:
            problems.append(f"embed[{i}].url is not a well-formed http(s) URL")
    if total > MAX_MESSAGE_EMBED_CHARS:
        problems.append(f"embeds have {total} characters in all (max {MAX_MESSAGE_EMBED_CHARS})")
    problems += _component_problems(payload)

    mentions = payload.allowed_mentions
    if not isinstance(mentions, discord.AllowedMentions):
        problems.append("allowed_mentions is not set")
        allowed_roles: set[int] = set()
    else:
        am = mentions.to_dict()
        if set(am.get("parse", [])) & {"everyone", "users", "roles"} or am.get("users"):
            problems.append(f"allowed_mentions allows more than listed roles: {am}")
        allowed_roles = set(am.get("roles", []))
        if len(allowed_roles) > MAX_ALLOWED_ROLES:
            problems.append(f"allowed_mentions lists {len(allowed_roles)} roles (max 100)")

    for where, text in [("content", content), *_visible_texts(payload)]:
        if _RAW_EVERYONE.search(text):
            problems.append(f"{where} has an unneutralised @everyone/@here")
        if _RAW_USER.search(text):
            problems.append(f"{where} has an unneutralised user mention")
        for role in _RAW_ROLE.findall(text):
            if where != "content" or int(role) not in allowed_roles:
                problems.append(f"{where} mentions role {role} not in allowed_mentions")
    return problems


def _component_problems(payload: MessagePayload) -> list[str]:
    """Discord's component limits: 5 rows of 5 buttons, labels of 80, unique custom_ids of 100."""
    problems: list[str] = []
    rows = payload.components()
    if len(rows) > MAX_ACTION_ROWS:
        problems.append(f"message has {len(rows)} action rows (max {MAX_ACTION_ROWS})")
    ids: list[str] = []
    for i, row in enumerate(rows):
        buttons = row.get("components", [])
        if not 1 <= len(buttons) <= MAX_ROW_BUTTONS:
            problems.append(f"action row {i} has {len(buttons)} buttons (1 to {MAX_ROW_BUTTONS})")
        for button in buttons:
            label, custom_id = button.get("label") or "", button.get("custom_id") or ""
            if not label or len(label) > MAX_BUTTON_LABEL:
                problems.append(
                    f"button {custom_id!r} has a label of {len(label)} characters (1 to {MAX_BUTTON_LABEL})"
                )
            if not custom_id or len(custom_id) > MAX_CUSTOM_ID:
                problems.append(f"a button has a custom_id of {len(custom_id)} characters (1 to {MAX_CUSTOM_ID})")
            ids.append(custom_id)
    if len(ids) != len(set(ids)):
        problems.append("two buttons share a custom_id")
    if len(payload.votes) != sum(len(row.get("components", [])) for row in rows):
        problems.append("some papers of the message have no vote button")
    return problems


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


def paper_embed(paper: StoredPaper, *, position: tuple[int, int] | None = None) -> discord.Embed:
    """One paper in full (`/paper`, and each message of a threaded digest).

    Title linked to arXiv, summary as the description, fields for authors, tags, code, Hugging
    Face and the digests it appeared in; `arXiv:<id>` (after `n/m` when `position` is given) in
    the footer.
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

    footer = _footer_text(paper, position)
    if footer:
        embed.set_footer(text=footer)

    # The description goes last: it gets whatever the 6000 per message leaves.
    summary = (paper.summary or "").strip()
    if summary:
        room = min(MAX_DESCRIPTION, MAX_MESSAGE_EMBED_CHARS - embed_size(embed))
        description = _fit(summary, room, neutralize_mentions)
        if description:
            embed.description = description
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


# --------------------------------------------------------------------------------------------
# Daily digests
# --------------------------------------------------------------------------------------------


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


def _vote_buttons(numbered: Sequence[tuple[int, StoredPaper]]) -> tuple[VoteButton, ...]:
    """A vote button per paper (number 0: the message's only paper); an id no custom_id can carry gets none."""
    buttons = (VoteButton(paper.arxiv_id, number) for number, paper in numbered)
    return tuple(b for b in buttons if len(b.custom_id) <= MAX_CUSTOM_ID and _VOTE_ID.fullmatch(b.custom_id))


def digest_messages(
    day: dt.date,
    papers: Sequence[StoredPaper],
    *,
    style: Literal["compact", "thread"],
    late: bool = False,
    mention_role_ids: Sequence[int] = (),
) -> list[MessagePayload]:
    """How a day's digest is posted, one payload per message, in order.

    `compact`: as few messages as possible; the first carries the header as content, then
    numbered entries (linked title, tags, one-line summary start, code link) fill embed
    descriptions, at most 25 per message so that each gets its numbered vote button. `thread`: a
    header message (to start the thread from, see `digest_thread_name`), then one `paper_embed`
    message per paper with its vote button. `mention_role_ids` are pinged by the header message
    only, and only those roles are allowed to be.
    """
    header = digest_header(day, len(papers), late=late)
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
        count = len(papers)
        return [_header_payload(header, mention_role_ids)] + [
            MessagePayload(None, [paper_embed(paper, position=(n, count))], NO_MENTIONS, _vote_buttons([(0, paper)]))
            for n, paper in enumerate(papers, start=1)
        ]
    raise ValueError(f"unknown digest style {style!r}")


def empty_day_message(day: dt.date) -> MessagePayload:
    """The short note a channel with `empty_day_note` gets on a day without papers."""
    return MessagePayload(content=f"📄 No new papers for {day.isoformat()}.", embeds=[])


def broken_channel_notice(reason: str, *, server: str | None = None) -> MessagePayload:
    """What the server (or the admin, by DM) is told once when Discord refuses a digest channel."""
    where = f"In **{discord.utils.escape_markdown(server)}**: " if server else ""
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
    day: dt.date, matches: Sequence[tuple[StoredPaper, Sequence[str]]]
) -> list[MessagePayload]:
    """A subscriber's DM for `day`: each matching paper once, with the subscriptions it matched.

    Entries are the compact digest's (linked title, tags, summary start, code) plus a
    "🔔 matched" line, packed like `digest_messages` (compact) within every limit. The first
    message carries the header; the last one says how to manage subscriptions. Never pings.
    """
    entries = []
    for number, (paper, matched) in enumerate(matches, start=1):
        labels = _join_fitting(
            [_escaped(label, 80) for label in dict.fromkeys(_one_line(m) for m in matched) if label],
            _ENTRY_MATCHED, sep=" · ", cut_first=_cut_escaped, hidden=0,
        )
        entries.append(_compact_entry(number, paper) + (f"\n🔔 {labels}" if labels else ""))
    footer = "Manage these with `/subscriptions list`, `/unsubscribe` or `/subscriptions pause`."
    header = subscription_digest_header(day, len(matches))
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
