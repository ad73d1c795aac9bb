"""Untrusted text made safe for Discord: limits, cutting, escaping, mentions and links.

Every string from a digest or a member passes through here before it reaches a payload.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import discord

from storage.models import ARXIV_ID, StoredPaper

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


# A scheme right before `//` is where Discord starts a link (bare, `<url>` or a masked link's target).
_LINK_SCHEME = re.compile(r"(?i)(?<![\\\w])([a-z][a-z0-9+.\-]*):(?=//)")
# Line-start list markers: escape_markdown leaves `- item` and `1. item` as live lists.
_BULLET_MARKER = re.compile(r"(?m)^([ \t]*)([-+])(?=[ \t])")
_NUMBER_MARKER = re.compile(r"(?m)^([ \t]*[0-9]+)([.)])(?=[ \t])")
# Stand-ins for square brackets while escape_markdown runs: it escapes a whole `[label](url)` with a
# single backslash and leaves the label's own markdown live, so it must never see one.
_OPEN, _CLOSE = "\ue000", "\ue001"


def defuse_links(text: str) -> str:
    """`https\\://…`: reads the same, but Discord no longer sees a link in it (bare, `<…>` or masked).

    Digest and member text may only ever show links as text: the links in a Paperbot message
    are the ones it builds itself (from checked URLs, see `_safe_url`).
    """
    return _LINK_SCHEME.sub(r"\1\\:", text)


def escape_text(text: str) -> str:
    """Untrusted text made inert: Discord markdown escaped (lists and links too), mentions neutralised."""
    hidden = text.replace(_OPEN, "").replace(_CLOSE, "").replace("[", _OPEN).replace("]", _CLOSE)
    escaped = discord.utils.escape_markdown(hidden, ignore_links=False)
    escaped = escaped.replace(_OPEN, "\\[").replace(_CLOSE, "\\]")
    escaped = _NUMBER_MARKER.sub(r"\1\\\2", _BULLET_MARKER.sub(r"\1\\\2", escaped))
    return neutralize_mentions(defuse_links(escaped))


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


