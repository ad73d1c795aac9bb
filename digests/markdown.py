"""Reading the producers' markdown digests: a `## Papers for YYYY-MM-DD` heading and one table.

The producers changed their table four times and never escaped what they wrote, so nothing here
assumes a layout: columns are recognised by their header, rows are rejoined when a cell wrapped
onto the next line, and a row that cannot be read becomes a `Problem` instead of stopping the file.

The field cleaning at the top (mojibake repair, authors, tags, link lists) is shared with the
JSON reader, so the same paper reads the same from either format.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import ftfy

from storage.models import Digest, Paper, Problem, arxiv_id_from

# --------------------------------------------------------------------------------------------
# Field cleaning shared with the JSON reader
# --------------------------------------------------------------------------------------------

# Only undo mis-decoding: every other ftfy fix would rewrite correct text (curly quotes,
# full-width letters, ligatures, HTML entities, line breaks, Unicode normalisation).
_REPAIR_ONLY_ENCODING = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)


_SPACING = re.compile(r"([ \t\n\r]+)")


def repair(text: str) -> str:
    """Undo mojibake such as `Aim√©e`, word by word, leaving correct text as it is.

    ASCII cannot be mis-decoded, so only words with other characters go through ftfy. Word by
    word also mends a mis-decoded name in a summary that has correct `→` elsewhere, which ftfy
    given the whole text leaves alone (no single encoding explains both).
    """
    if text.isascii():
        return text
    parts = _SPACING.split(text)
    for index in range(0, len(parts), 2):
        if not parts[index].isascii():
            parts[index] = repair_word(parts[index])
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def repair_word(word: str) -> str:
    """One word through ftfy; the same names and symbols recur day after day, hence the cache."""
    try:
        return ftfy.fix_text(word, _REPAIR_ONLY_ENCODING)
    except Exception:  # a repair that fails must never cost the paper
        return word


def fold(text: str) -> str:
    """Single spaces, no leading or trailing whitespace: how a title or a name is compared."""
    return " ".join(text.split())


def split_authors(text: str) -> list[str]:
    """Authors are one comma-separated cell; an empty cell is a valid empty list."""
    return [name for name in (fold(part) for part in repair(text).split(",")) if name]


def unique(items: Iterable[str]) -> list[str]:
    """The items in first-seen order without repeats."""
    items = list(items)
    return items if len(items) < 2 else list(dict.fromkeys(items))


# A classification cell as the producer writes it: a Python list of plain single-quoted strings.
_SIMPLE_STR_LIST = re.compile(r"\[\s*(?:'[^'\\\n]*'\s*(?:,\s*'[^'\\\n]*'\s*)*,?\s*)?\]")
_QUOTED_ITEM = re.compile(r"'[^'\\\n]*'")
# Fallback for lists literal_eval rejects, e.g. ['Alzheimer's Disease', 'NLP']: an item runs
# from a quote to the matching quote that is followed by a comma or the end of the list.
_LOOSE_ITEM = re.compile(r"""(['"])(.*?)\1(?=\s*(?:,|\]|$))""", re.S)


def tags_from_list_text(text: str) -> list[str]:
    """Tags from a `['A', 'B']` cell: literal_eval when it can, a tolerant split when it can't."""
    text = repair(text).strip()
    if not text or text.upper() in {"N/A", "NONE", "NULL", "[]"}:
        return []
    if _SIMPLE_STR_LIST.fullmatch(text):
        return clean_tags(item[1:-1] for item in _QUOTED_ITEM.findall(text))
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except Exception:  # SyntaxError, ValueError, MemoryError, RecursionError, ...
            value = None
        if isinstance(value, (list, tuple, set)):
            return clean_tags(str(item) for item in value if item is not None)
        inner = text[1:-1] if text.endswith("]") else text[1:]
        loose = _LOOSE_ITEM.findall(inner)
        if loose:
            return clean_tags(item for _, item in loose)
        text = inner
    return clean_tags(item.strip().strip("'\"") for item in text.split(","))


def clean_tags(items: Iterable[str]) -> list[str]:
    """Tags folded, without empties or repeats."""
    return unique(tag for tag in map(fold, items) if tag)


_URL_OK = re.compile(r"https?://[\w-]+(?:\.[\w-]+)+(?::\d+)?(?:[/?#]\S*)?", re.I)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:", re.I)
# Hosts whose scheme-less links (`github.com/org/repo`) the producers are known to emit.
_BARE_HOST = re.compile(
    r"(?:www\.)?(?:github\.com|huggingface\.co|hf\.co|[\w-]+\.github\.io|(?:[\w-]+\.)*arxiv\.org)"
    r"(?:[/?#]|$)",
    re.I,
)


def clean_url(candidate: str) -> str | None:
    """A real http(s) URL from a link target, or None for `null`, `N/A`, `string`, `org/repo`.

    Whitespace is removed because it can only come from a wrapped cell, and the scheme is added
    to `//host/...` and to bare GitHub/HuggingFace links, which are plainly meant as web links.
    """
    url = "".join(candidate.split()).strip("<>")
    if url.startswith("//"):
        url = "https:" + url
    elif not _SCHEME.match(url) and _BARE_HOST.match(url):
        url = "https://" + url
    return url if _URL_OK.fullmatch(url) else None


def http_urls(candidates: Iterable[str]) -> list[str]:
    """The real http(s) URLs among link targets, in order, without repeats."""
    return unique(url for url in map(clean_url, candidates) if url)


GITHUB_SITE = "https://github.com/"
HUGGINGFACE_SITE = "https://huggingface.co/"
# A path relative to a site, as the producers write repos in the GitHub and HuggingFace
# columns (`org/repo`, `spaces/smolvlm2`): two or more segments, the first no host name.
_SITE_PATH = re.compile(r"[\w-]+(?:/[\w.-]+)+/?")
_NOT_A_PATH = {"n/a"}


def site_urls(candidates: Iterable[str], site: str) -> list[str]:
    """`http_urls`, with paths relative to `site` made absolute (`apple/huggingsnap` -> site + it).

    Only the GitHub and HuggingFace columns mean their site by a bare path; elsewhere a
    bare `org/repo` stays unreadable (see clean_url).
    """
    urls = []
    for candidate in candidates:
        text = "".join(candidate.split()).strip("<>")
        url = clean_url(text) or (
            site + text.strip("/") if _SITE_PATH.fullmatch(text) and text.lower() not in _NOT_A_PATH else None
        )
        if url:
            urls.append(url)
    return unique(urls)


_ARXIV_HOST = re.compile(r"(?:https?:)?(?://)?(?:[\w-]+\.)*arxiv\.org(?P<path>[/?#]\S*)", re.I)
_HF_PAPER = re.compile(
    r"(?:https?:)?(?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/papers/(?P<path>\S+)", re.I
)


def arxiv_id_of_arxiv_url(url: str) -> str | None:
    """The id in an arxiv.org link (`/abs/2409.02889v2` -> `2409.02889`)."""
    match = _ARXIV_HOST.match(url)
    return arxiv_id_from(match.group("path")) if match else None


def arxiv_id_of_hf_paper_url(url: str) -> str | None:
    """The id in a HuggingFace paper page link (`huggingface.co/papers/2409.02889`)."""
    match = _HF_PAPER.match(url)
    return arxiv_id_from(match.group("path")) if match else None


@dataclass(frozen=True)
class Identity:
    """What a paper's own links (title and Link cells, or the JSON `link`) say about it."""

    arxiv_id: str | None
    url: str
    hf_pages: list[str]  # its HuggingFace paper pages
    other_links: list[str]  # links that are neither, e.g. `[Code](https://github.com/...)`


def paper_identity(links: Iterable[str]) -> Identity:
    """The paper's id and url from its links.

    The arXiv link wins and is kept as given; failing that the id comes from the HuggingFace
    paper page and the url is the canonical arXiv abstract page.
    """
    arxiv_links: list[tuple[str, str]] = []
    hf_pages: list[str] = []
    hf_ids: list[str] = []
    others: list[str] = []
    for link in links:
        url = "".join(link.split())
        if (arxiv_id := arxiv_id_of_arxiv_url(url)) is not None:
            arxiv_links.append((arxiv_id, clean_url(url) or url))
        elif (hf_id := arxiv_id_of_hf_paper_url(url)) is not None:
            hf_ids.append(hf_id)
            hf_pages.append(clean_url(url) or url)
        else:
            others.append(link)
    if arxiv_links:
        arxiv_id, url = arxiv_links[0]
    elif hf_ids:
        arxiv_id, url = hf_ids[0], f"https://arxiv.org/abs/{hf_ids[0]}"
    else:
        arxiv_id, url = None, ""
    return Identity(arxiv_id, url, unique(hf_pages), http_urls(others))


_GITHUB_HOST = re.compile(r"https?://(?:www\.)?github\.com/", re.I)
_HF_HOST = re.compile(r"https?://(?:www\.)?(?:huggingface\.co|hf\.co)/", re.I)


# --------------------------------------------------------------------------------------------
# Markdown constructs
# --------------------------------------------------------------------------------------------

# `[text](target)`: the text may hold one level of brackets (`GPT-[n]`), the target one level
# of parentheses; both may hold pipes and line breaks (wrapped cells). Possessive quantifiers
# keep a failed attempt linear.
_LINK_PATTERN = (
    r"\[(?P<text>(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*+)\]"
    r"\((?P<target>(?:[^()\\]|\\.|\([^()]*\))*+)\)"
)
LINK = re.compile(_LINK_PATTERN, re.S)
# What protects a pipe from splitting a row: a backslash escape or a whole link.
_UNNAMED_LINK_PATTERN = _LINK_PATTERN.replace("?P<text>", "?:").replace("?P<target>", "?:")
_PROTECTED = re.compile(r"\\.?|" + _UNNAMED_LINK_PATTERN, re.S)
_BARE_URL = re.compile(r"(?:https?:)?//[^\s<>()\[\]|,]+", re.I)


def split_cells(row: str) -> list[str]:
    """The raw cells of a table row, split on pipes that are not escaped and not inside a link.

    The outer pipes are optional, as in GitHub markdown. See `cell_text` for a cell's content.
    """
    text = row.strip()
    if text.startswith("|"):
        text = text[1:]
    if "[" in text or "\\" in text:
        cells = split_outside_protected(text)
    else:
        cells = text.split("|")
    if len(cells) > 1 and not cells[-1]:
        cells.pop()  # the row's closing pipe
    return cells


def split_outside_protected(text: str) -> list[str]:
    """`text.split("|")`, except for pipes inside links and escaped pipes.

    `str.find` jumps to each `[` or `\\` (far faster than a regex scan of the whole row) and
    only the stretches between protected spans are split, so the cost stays linear.
    """
    cells: list[str] = []
    current: list[str] = []
    position = 0
    for start, end in protected_spans(text):
        split_into(cells, current, text[position:start])
        current.append(text[start:end])
        position = end
    split_into(cells, current, text[position:])
    cells.append("".join(current))
    return cells


def protected_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each escape and each whole link, left to right."""
    next_bracket = text.find("[")
    next_backslash = text.find("\\")
    while next_bracket >= 0 or next_backslash >= 0:
        if next_backslash < 0 or 0 <= next_bracket < next_backslash:
            start = next_bracket
        else:
            start = next_backslash
        match = _PROTECTED.match(text, start)
        resume = match.end() if match else start + 1
        if match:
            yield start, resume
        if next_bracket >= 0 and next_bracket < resume:
            next_bracket = text.find("[", resume)
        if next_backslash >= 0 and next_backslash < resume:
            next_backslash = text.find("\\", resume)


def split_into(cells: list[str], current: list[str], stretch: str) -> None:
    """Add an unprotected stretch: each of its pipes closes the current cell."""
    pieces = stretch.split("|")
    current.append(pieces[0])
    for piece in pieces[1:]:
        cells.append("".join(current))
        current[:] = [piece]


def cell_text(raw: str) -> str:
    """A cell's content: stripped, with the table's `\\|` escape undone."""
    return raw.replace("\\|", "|").strip() if "\\|" in raw else raw.strip()


def link_targets(cell: str) -> list[str]:
    """Every link target in a cell: `[text](url)` targets first, then bare URLs outside links."""
    targets = [match.group("target") for match in LINK.finditer(cell)] if "](" in cell else []
    if cell.count("//") > sum(target.count("//") for target in targets):
        targets.extend(_BARE_URL.findall(LINK.sub(" ", cell)))
    return targets


def rendered_text(cell: str) -> str:
    """What a reader sees: each link replaced by its text."""
    return LINK.sub(lambda match: match.group("text"), cell) if "](" in cell else cell


# `Title (Read more on [arXiv](…) or [HuggingFace](…))`, and early on `Title - read more on …`.
_READ_MORE = re.compile(r"read\s+more\s+(?:on|at)\s*\[", re.I)


def title_and_links(cell: str) -> tuple[str, list[str]]:
    """(title, links) from a title cell in any of the producers' three styles."""
    links = link_targets(cell) if ("](" in cell or "//" in cell) else []
    read_more = _READ_MORE.search(cell) if links else None
    title = before_read_more(cell[: read_more.start()]) if read_more else cell
    return fold(repair(rendered_text(title))), links


def before_read_more(text: str) -> str:
    """The title without the `(` or ` - ` that opened its "read more" part."""
    text = text.rstrip()
    return text[:-1].rstrip() if text.endswith(("(", "-", "–", "—", ":")) else text


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------

TITLE, AUTHORS, SUMMARY, LINKS, TAG_LIST, CATEGORY, GITHUB, HUGGINGFACE = (
    "title", "authors", "summary", "links", "tag list", "category", "github", "huggingface",
)
_ROLE_OF_HEADER = {
    **dict.fromkeys(["title", "titles", "paper", "papertitle"], TITLE),
    **dict.fromkeys(["authors", "author"], AUTHORS),
    **dict.fromkeys(["summary", "summaries"], SUMMARY),
    **dict.fromkeys(
        ["link", "links", "url", "urls", "paperlink", "paperurl", "arxiv", "readmore"], LINKS
    ),
    **dict.fromkeys(["classification", "classifications", "tags"], TAG_LIST),
    **dict.fromkeys(["category", "categories"], CATEGORY),
    **dict.fromkeys(["githuburls", "githuburl", "github", "githublinks", "code"], GITHUB),
    **dict.fromkeys(
        ["huggingfaceurls", "huggingfaceurl", "huggingface", "huggingfacelinks", "hfurls"],
        HUGGINGFACE,
    ),
}
_NOT_ALNUM = re.compile(r"[\W_]+")
# Roles that take one column; a second such column is kept in `extra` instead.
_SINGLE_ROLES = {TITLE, AUTHORS, SUMMARY}


def role_of(header: str) -> str | None:
    """The known column a header names, however it is cased or spaced (`GitHub URLs`)."""
    return _ROLE_OF_HEADER.get(_NOT_ALNUM.sub("", header.lower()))


@dataclass(frozen=True)
class Layout:
    """A table's columns as its header row names them: a role, or an `extra` key, per column."""

    roles: tuple[str | None, ...]
    extra_keys: tuple[str, ...]

    @classmethod
    def from_header(cls, raw_cells: list[str]) -> Layout:
        """Known headers get their role; others, and repeats of one-column roles, go to `extra`."""
        roles: list[str | None] = []
        keys: list[str] = []
        seen: set[str] = set()
        for number, raw in enumerate(raw_cells, 1):
            header = fold(repair(cell_text(raw))) or f"column {number}"
            role = role_of(header)
            if role in _SINGLE_ROLES and role in seen:
                role = None
            if role:
                seen.add(role)
            key = header if header not in keys else f"{header} ({number})"
            roles.append(role)
            keys.append(key)
        return cls(tuple(roles), tuple(keys))

    @property
    def width(self) -> int:
        return len(self.roles)

    @property
    def has_title(self) -> bool:
        return TITLE in self.roles

    def looks_like_header(self) -> bool:
        """Every column is a known one: a header even without its `|---|` line."""
        return self.has_title and all(self.roles)


# --------------------------------------------------------------------------------------------
# Rows to papers
# --------------------------------------------------------------------------------------------


class RowError(ValueError):
    """A row that cannot become a paper; its message is shown to people as is."""


def paper_from_cells(layout: Layout, cells: list[str]) -> Paper:
    """The paper a row describes, or RowError saying in words why it can't be read."""
    if len(cells) != layout.width:
        cell_count, column_count = plural(len(cells), "cell"), plural(layout.width, "column")
        raise RowError(f"row has {cell_count} but the header has {column_count}")
    if not layout.has_title:
        raise RowError("the table has no Title column")
    fields = RowFields()
    for role, key, cell in zip(layout.roles, layout.extra_keys, cells):
        fields.take(role, key, cell)
    return fields.paper()


@dataclass
class RowFields:
    """A row's cells as they are read, column by column, before they become a paper."""

    title: str = ""
    paper_links: list[str] = field(default_factory=list)  # from the title and Link cells
    authors: list[str] = field(default_factory=list)
    summary: str = ""
    tags: list[str] = field(default_factory=list)
    github: list[str] = field(default_factory=list)
    huggingface: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    def take(self, role: str | None, key: str, cell: str) -> None:
        """Read one cell as its column's role says."""
        if role == TITLE:
            self.title, title_links = title_and_links(cell)
            self.paper_links[:0] = title_links
        elif role == LINKS:
            self.paper_links.extend(link_targets(cell))
        elif role == AUTHORS:
            self.authors = split_authors(cell)
        elif role == SUMMARY:
            self.summary = repair(cell)
        elif role == TAG_LIST:
            self.tags.extend(tags_from_list_text(cell))
        elif role == CATEGORY:
            self.tags.extend(category_tags(cell))
        elif role == GITHUB:
            self.github.extend(link_targets(cell))
        elif role == HUGGINGFACE:
            self.huggingface.extend(link_targets(cell))
        else:
            self.extra[key] = repair(cell)

    def paper(self) -> Paper:
        """The paper, or RowError if its links give no arXiv id or it has no title."""
        identity = paper_identity(self.paper_links)
        if identity.arxiv_id is None:
            raise RowError("no arXiv id in the title or link cells")
        if not self.title:
            raise RowError("the title cell is empty")
        unplaced = file_other_links(identity.other_links, self.github, self.huggingface)
        if unplaced:
            self.extra["other links"] = " ".join(unplaced)
        return Paper(
            arxiv_id=identity.arxiv_id,
            title=self.title,
            url=identity.url,
            authors=self.authors,
            summary=self.summary,
            tags=unique(self.tags),
            github_urls=site_urls(self.github, GITHUB_SITE),
            huggingface_urls=unique(identity.hf_pages + site_urls(self.huggingface, HUGGINGFACE_SITE)),
            extra=self.extra,
        )


def file_other_links(links: list[str], github: list[str], huggingface: list[str]) -> list[str]:
    """Put a title or Link cell's code and model links with the others; return the rest."""
    unplaced = []
    for link in links:
        if _GITHUB_HOST.match(link):
            github.append(link)
        elif _HF_HOST.match(link):
            huggingface.append(link)
        else:
            unplaced.append(link)
    return unplaced


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def category_tags(cell: str) -> list[str]:
    """A Category cell is one tag, unless a producer wrote it as a list."""
    if cell.startswith("["):
        return tags_from_list_text(cell)
    return clean_tags([repair(cell)])


# --------------------------------------------------------------------------------------------
# Lines to rows
# --------------------------------------------------------------------------------------------

_SEPARATOR = re.compile(r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]*papers[ \t]+for\b(?P<rest>.*)$", re.I | re.M)
_DATE = re.compile(r"(?<!\d)(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)")


@dataclass(frozen=True)
class Row:
    """A table row rejoined from its lines; `line` is the 1-based number of its first line.

    `tail` holds the unpiped lines up to the next row: prose after the table, or the rest of
    a row whose cell wrapped just after a pipe. Only the header's column count can tell which,
    so the row keeps them aside.
    """

    line: int
    text: str
    tail: tuple[str, ...] = ()

    def is_separator(self) -> bool:
        return "-" in self.text and _SEPARATOR.fullmatch(self.text.strip()) is not None


def ends_row(line: str) -> bool:
    """A row is complete when a line ends with a pipe that is not escaped (`\\|`)."""
    line = line.rstrip()
    if not line.endswith("|"):
        return False
    backslashes = len(line) - 1 - len(line[:-1].rstrip("\\"))
    return backslashes % 2 == 0


def starts_row(line: str) -> bool:
    """Only a line that begins with `|` starts a row: wrapped cells continue on lines that don't."""
    return line.startswith("|")


def rows_of(lines: list[str]) -> Iterator[Row]:
    """Table rows with wrapped cells rejoined.

    A row starts at a line beginning with `|` and runs to the first line ending with `|`;
    the lines between (even blank ones) are its wrapped cells. If no such line comes before
    the next row, heading or the end, the row stops at its first blank line instead.
    """
    count = len(lines)
    index = 0
    while index < count:
        if not starts_row(lines[index]):
            index += 1
            continue
        first = index
        index = first + 1 if ends_row(lines[first]) else end_of_continuation(lines, first + 1)
        tail_end = index
        while tail_end < count and continues_row(lines[tail_end]):
            tail_end += 1
        yield Row(first + 1, "\n".join(lines[first:index]), tuple(lines[index:tail_end]))


def end_of_continuation(lines: list[str], start: int) -> int:
    """The index just past the lines from `start` that continue a row.

    They run to the first line ending with a pipe; without one, to the first blank line.
    """
    first_blank = None
    index = start
    while index < len(lines) and continues_row(lines[index]):
        line = lines[index]
        if first_blank is None and not line.strip():
            first_blank = index
        index += 1
        if ends_row(line):
            return index
    return first_blank if first_blank is not None else index


def continues_row(line: str) -> bool:
    """A line can belong to the row above: it doesn't start a row and isn't a heading."""
    return not starts_row(line) and not _HEADING_START.match(line)


_HEADING_START = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")


def find_heading(text: str) -> tuple[int, str] | None:
    """(line number, the text after 'Papers for') of the first digest heading, if any."""
    match = _HEADING.search(text)
    if not match:
        return None
    return text.count("\n", 0, match.start()) + 1, match.group("rest")


def date_in(text: str) -> dt.date | None:
    """The first valid YYYY-MM-DD (or / or .) date in the text."""
    for match in _DATE.finditer(text):
        try:
            return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------


def read_markdown(text: str, date_hint: dt.date | None = None) -> Digest:
    """One day's digest from markdown; every table row becomes a paper or a problem.

    `date_hint` (from the file name) is used only when the heading gives no date.
    """
    text = normalise_newlines(text)
    problems: list[Problem] = []
    date = date_from_heading(text, problems) or date_hint
    papers: list[Paper] = []
    for row, outcome in read_rows(text.split("\n")):
        if isinstance(outcome, Paper):
            papers.append(outcome)
        else:
            problems.append(Problem(line=row.line, message=outcome))
    problems.sort(key=lambda problem: problem.line)
    return Digest(date=date, papers=papers, problems=problems)


def normalise_newlines(text: str) -> str:
    """Without a BOM and with `\\n` line ends, so line numbers count as an editor does."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def date_from_heading(text: str, problems: list[Problem]) -> dt.date | None:
    """The digest's date from its heading, noting a problem when there is no usable heading."""
    heading = find_heading(text)
    if heading is None:
        message = "no '## Papers for YYYY-MM-DD' heading: not a digest"
        problems.append(Problem(line=1, message=message))
        return None
    line, rest = heading
    date = date_in(rest)
    if date is None:
        message = f"the digest heading has no valid date: {fold(rest)!r}"
        problems.append(Problem(line=line, message=message))
    return date


def read_rows(lines: list[str]) -> Iterator[tuple[Row, Paper | str]]:
    """Each data row with its paper or the reason it can't be read; header rows set the layout."""
    rows = list(rows_of(lines))
    layout: Layout | None = None
    index = 0
    while index < len(rows):
        row = rows[index]
        index += 1
        if row.is_separator():
            continue  # a separator without a header before it carries nothing
        cells = split_cells(row.text)
        if index < len(rows) and rows[index].is_separator():
            layout = Layout.from_header(cells)
            index += 1
        elif layout is None:
            candidate = Layout.from_header(cells)
            if candidate.looks_like_header():
                layout = candidate
            else:
                yield row, "table row before any header row"
        else:
            yield row, paper_or_reason(layout, row, cells)


def paper_or_reason(layout: Layout, row: Row, raw_cells: list[str]) -> Paper | str:
    """The row's paper, or why it can't be read.

    The producers never escape pipes, so a row may be split too often (`Conf(V|X)` in a
    summary) or, when a cell wrapped right after a pipe, too little; both are mended when the
    mended row reads cleanly. Otherwise the row is reported as it stands.
    """
    if len(raw_cells) < layout.width and row.tail:
        raw_cells = completed_by_tail(layout, row) or raw_cells
    if len(raw_cells) > layout.width:
        for mended in with_pipes_back(layout, raw_cells):
            try:
                return paper_from_cells(layout, [cell_text(raw) for raw in mended])
            except RowError:
                continue
    try:
        return paper_from_cells(layout, [cell_text(raw) for raw in raw_cells])
    except RowError as error:
        return str(error)


# A short row takes at most this many more pipe-ended lines from its tail: each adds a cell at
# least, and the limit keeps a long tail from being split over and over.
_MOST_TAIL_LINES_TRIED = 8


def completed_by_tail(layout: Layout, row: Row) -> list[str] | None:
    """The cells of a short row with as much of its tail as makes it as wide as the header.

    It may come out wider, when a cell also holds an unescaped pipe; that is mended next.
    """
    lines = [row.text]
    tries = 0
    for line in row.tail:
        lines.append(line)
        if not ends_row(line):
            continue
        cells = split_cells("\n".join(lines))
        if len(cells) >= layout.width:
            return cells
        tries += 1
        if tries == _MOST_TAIL_LINES_TRIED:
            return None
    return None


def with_pipes_back(layout: Layout, raw_cells: list[str]) -> Iterator[list[str]]:
    """The row with its surplus cells rejoined into a free-text column: summary, then title.

    Only candidates whose tag-list and link-list columns still read as such are offered.
    """
    surplus = len(raw_cells) - layout.width
    for role in (SUMMARY, TITLE):
        if role not in layout.roles:
            continue
        start = layout.roles.index(role)
        mended = raw_cells[:start] + ["|".join(raw_cells[start : start + surplus + 1])]
        mended += raw_cells[start + surplus + 1 :]
        if all(reads_as(column, cell_text(raw)) for column, raw in zip(layout.roles, mended)):
            yield mended


_EMPTY_LINK_LIST = re.compile(r"(?:\s|,|;|n/?a|none|null|-)*", re.I)


def reads_as(role: str | None, cell: str) -> bool:
    """Whether a cell could be in its column: tag lists and link lists have a shape to check."""
    if role == TAG_LIST:
        return (
            _EMPTY_LINK_LIST.fullmatch(cell) is not None
            or (cell.startswith("[") and cell.endswith("]"))
        )
    if role in (LINKS, GITHUB, HUGGINGFACE):
        rest = _BARE_URL.sub(" ", LINK.sub(" ", cell))
        return _EMPTY_LINK_LIST.fullmatch(rest) is not None
    return True
