"""Papers as files: BibTeX, CSV and JSON, for `/papers export` and `paperbot export`.

The formatters are pure functions of a list of StoredPapers (no Discord, no
SQL); `matching_papers` asks the library's search or tag browsing once for
everything an export holds (one walk of the index, within one time budget).

Every text cell of a CSV file is made safe for spreadsheets (OWASP's CSV
injection rule): a cell a spreadsheet would read as a formula gets a leading `'`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import NamedTuple

import aiosqlite

from storage import db
from storage import papers as library
from storage.models import SearchPage, StoredPaper

LIST_SEPARATOR = "; "
CSV_COLUMNS = (
    "arxiv_id", "title", "url", "authors", "summary", "tags", "github_urls", "huggingface_urls", "days",
)

# ----- BibTeX ------------------------------------------------------------------------------

# LaTeX's special characters, written so BibTeX keeps braces balanced and LaTeX prints them as is.
_BIBTEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "%": r"\%",
    "&": r"\&",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "^": r"\^{}",
    "~": r"\~{}",
}
_NEW_STYLE_ID = re.compile(r"^(?P<yy>\d{2})(?P<mm>\d{2})\.\d{4,5}$")
_OLD_STYLE_ID = re.compile(r"^[a-z][a-z.-]*(?:\.[A-Z]{2})?/(?P<yy>\d{2})(?P<mm>\d{2})\d{3}$")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9:._-]+")
# URLs are verbatim in BibTeX (\url); only what would unbalance or end the field is percent-encoded.
_URL_UNSAFE = {"{": "%7B", "}": "%7D", "\\": "%5C", " ": "%20", "\n": "%0A", "\r": "%0D", "\t": "%09"}


def _unmatched_braces(text: str) -> set[int]:
    """Positions of the braces in `text` that have no partner."""
    opened: list[int] = []
    unmatched: set[int] = set()
    for position, char in enumerate(text):
        if char == "{":
            opened.append(position)
        elif char == "}":
            if opened:
                opened.pop()
            else:
                unmatched.add(position)
    return unmatched | set(opened)


def bibtex_escape(text: str) -> str:
    """`text` as a BibTeX field value: special characters escaped, whitespace on one line, Unicode kept.

    BibTeX counts every brace, escaped or not, to find a field's end; so paired
    braces become \\{ \\}, and a lone one \\textbraceleft{} or \\textbraceright{}.
    """
    one_line = " ".join(text.split())
    lone = _unmatched_braces(one_line)
    return "".join(
        (r"\textbraceleft{}" if char == "{" else r"\textbraceright{}") if position in lone
        else _BIBTEX_ESCAPES.get(char, char)
        for position, char in enumerate(one_line)
    )


def _bibtex_name(name: str) -> str:
    """One author; a name BibTeX would split or reorder (" and ", a comma) is braced as a unit."""
    escaped = bibtex_escape(name)
    if re.search(r"\sand\s", escaped, re.IGNORECASE) or "," in escaped:
        return "{" + escaped + "}"
    return escaped


def _bibtex_url(url: str) -> str:
    return "".join(_URL_UNSAFE.get(char, char) for char in url.strip())


def paper_year(paper: StoredPaper) -> int | None:
    """The year from the arXiv id (YYMM…), else the first digest day's, else None."""
    for pattern in (_NEW_STYLE_ID, _OLD_STYLE_ID):
        match = pattern.match(paper.arxiv_id)
        if match and 1 <= int(match.group("mm")) <= 12:
            yy = int(match.group("yy"))
            # New-style ids began in 2007; old-style ones ran from 1991 to 2007.
            return 2000 + yy if pattern is _NEW_STYLE_ID or yy < 91 else 1900 + yy
    return paper.days[0].year if paper.days else None


def bibtex_key(arxiv_id: str, taken: set[str]) -> str:
    """A citation key from the arXiv id: only characters every BibTeX tool accepts, unique in `taken`."""
    ascii_id = unicodedata.normalize("NFKD", arxiv_id).encode("ascii", "ignore").decode()
    base = _KEY_UNSAFE.sub("_", ascii_id).strip("_") or "paper"
    key, counter = base, 1
    while key.lower() in taken:  # BibTeX compares keys case-insensitively
        counter += 1
        key = f"{base}_{counter}"
    taken.add(key.lower())
    return key


def to_bibtex(papers: Sequence[StoredPaper]) -> str:
    """One `@misc` entry per paper, arXiv style (eprint, archivePrefix), tags in `note`."""
    taken: set[str] = set()
    entries = []
    for paper in papers:
        fields = [("title", bibtex_escape(paper.title))]
        if paper.authors:
            fields.append(("author", " and ".join(_bibtex_name(name) for name in paper.authors)))
        year = paper_year(paper)
        if year is not None:
            fields.append(("year", str(year)))
        fields += [("eprint", bibtex_escape(paper.arxiv_id)), ("archivePrefix", "arXiv")]
        if paper.url:
            fields.append(("url", _bibtex_url(paper.url)))
        if paper.tags:
            fields.append(("note", bibtex_escape(", ".join(paper.tags))))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        entries.append(f"@misc{{{bibtex_key(paper.arxiv_id, taken)},\n{body}\n}}\n")
    return "\n".join(entries)


# ----- CSV and JSON ----------------------------------------------------------------------


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """`text` as a spreadsheet shows it, never runs it: a leading `=`, `+`, `-`, `@`, tab or CR gets a `'` first."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_row(paper: StoredPaper) -> list[str]:
    return [csv_cell(cell) for cell in _csv_fields(paper)]


def _csv_fields(paper: StoredPaper) -> list[str]:
    return [
        paper.arxiv_id,
        paper.title,
        paper.url,
        LIST_SEPARATOR.join(paper.authors),
        paper.summary,
        LIST_SEPARATOR.join(paper.tags),
        LIST_SEPARATOR.join(paper.github_urls),
        LIST_SEPARATOR.join(paper.huggingface_urls),
        LIST_SEPARATOR.join(day.isoformat() for day in paper.days),
    ]


def to_csv(papers: Sequence[StoredPaper]) -> str:
    """A header row and one row per paper; lists joined with "; ", days as YYYY-MM-DD."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(paper) for paper in papers)
    return buffer.getvalue()


def to_json(papers: Sequence[StoredPaper]) -> str:
    """A JSON array of the papers as the library holds them (StoredPaper fields, dates as YYYY-MM-DD)."""
    return json.dumps([paper.model_dump(mode="json") for paper in papers], ensure_ascii=False, indent=2) + "\n"


class ExportFormat(NamedTuple):
    render: Callable[[Sequence[StoredPaper]], str]
    extension: str
    mime_type: str


FORMATS: dict[str, ExportFormat] = {
    "bibtex": ExportFormat(to_bibtex, "bib", "application/x-bibtex"),
    "csv": ExportFormat(to_csv, "csv", "text/csv"),
    "json": ExportFormat(to_json, "json", "application/json"),
}
FORMAT_LABELS = {"bibtex": "BibTeX", "csv": "CSV", "json": "JSON"}


def file_slug(text: str, *, max_length: int = 40) -> str:
    """A file-name-safe slug of a query or tag: "Text-to-Video" -> "text-to-video"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:max_length].rstrip("-") or "papers"


# ----- collecting the papers ---------------------------------------------------------------

EXPORT_BUDGET_SECONDS = 4.0  # a capped export (the bot's, deferred first): twice a search
FULL_EXPORT_BUDGET_SECONDS = 120.0  # an uncapped one (the CLI, run by the bot's admin)


class Matches(NamedTuple):
    papers: list[StoredPaper]
    count: SearchPage  # without hits: the total and whether it is exact

    @property
    def complete(self) -> bool:
        """Every matching paper is in `papers`."""
        return self.count.total_is_exact and len(self.papers) >= self.count.total


async def matching_papers(
    conn: aiosqlite.Connection, *, query: str | None = None, tag: str | None = None, limit: int | None = None
) -> Matches:
    """Up to `limit` (None: all) papers matching `query` (best first) or carrying `tag` (newest first), and the total.

    Exactly one of `query` and `tag`; a bad query raises QueryError as search does, and one
    too costly to finish in the budget QueryTooBroad.
    """
    if (query is None) == (tag is None):
        raise ValueError("give exactly one of query and tag")
    with db.budget(FULL_EXPORT_BUDGET_SECONDS if limit is None else EXPORT_BUDGET_SECONDS):
        if query is not None:
            page = await library.all_matches(conn, query, limit=limit)
        else:
            every = limit if limit is not None else 2**62
            page = await library.papers_with_tag(conn, tag, limit=every)  # type: ignore[arg-type]
    return Matches([hit.paper for hit in page.hits], page.model_copy(update={"hits": []}))
