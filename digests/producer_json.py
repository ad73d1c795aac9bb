"""Reading the producers' `daily_results/YYYY/MM/DD.json`: a list of paper objects.

The JSON is the ground truth the markdown table is printed from, so each object is read into
exactly the paper its markdown row gives (see `tests/test_digests_corpus.py`). Objects are
decoded one at a time so a malformed one becomes a `Problem` at the line where it starts.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Iterator

from digests.markdown import (
    clean_tags,
    clean_url,
    date_in,
    fold,
    GITHUB_SITE,
    HUGGINGFACE_SITE,
    paper_identity,
    repair,
    site_urls,
    split_authors,
    tags_from_list_text,
    unique,
)
from storage.models import Digest, Paper, Problem


class DigestFormatError(ValueError):
    """The whole input is unreadable (not UTF-8 text, JSON that isn't a list, ...)."""


# The fields the producer writes; any other key is kept in `Paper.extra`.
_KNOWN_KEYS = frozenset(
    {"title", "authors", "link", "github_repo", "summary", "classification",
     "github_urls", "huggingface_urls", "date"}
)
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class ObjectError(ValueError):
    """An element that cannot become a paper; its message is shown to people as is."""


def read_producer_json(text: str, date_hint: dt.date | None = None) -> Digest:
    """One day's digest from the producer's JSON list; each element is a paper or a problem.

    The date comes from the objects' `date`, else from `date_hint` (the file name), so an empty
    list still has one when the name gives it.
    """
    papers: list[Paper] = []
    problems: list[Problem] = []
    date: dt.date | None = None
    for line, element in elements_with_lines(text):
        try:
            papers.append(paper_from_object(element))
        except ObjectError as error:
            problems.append(Problem(line=line, message=str(error)))
        if date is None and isinstance(element, dict) and isinstance(element.get("date"), str):
            date = date_in(element["date"])
    return Digest(date=date or date_hint, papers=papers, problems=problems)


def elements_with_lines(text: str) -> Iterator[tuple[int, Any]]:
    """Each element of the top-level list with the 1-based line it starts on.

    Decoding element by element costs no more than `json.loads` and gives the line numbers.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    position = skip_whitespace(text, 0)
    if not text.startswith("[", position):
        raise not_a_list(text, position)
    position = skip_whitespace(text, position + 1)
    line, counted_to = 1, 0
    while not text.startswith("]", position):
        line += text.count("\n", counted_to, position)
        counted_to = position
        element, position = decode_value(text, position)
        yield line, element
        position = skip_whitespace(text, position)
        if text.startswith(",", position):
            position = skip_whitespace(text, position + 1)  # a trailing comma is tolerated
        elif position >= len(text):
            raise syntax_error(text, position, "the list is not closed")
        elif not text.startswith("]", position):
            raise syntax_error(text, position, "expected ',' or ']' after a list element")
    if skip_whitespace(text, position + 1) != len(text):
        raise syntax_error(text, position + 1, "text after the end of the list")


def skip_whitespace(text: str, position: int) -> int:
    return _JSON_WHITESPACE.match(text, position).end()


def decode_value(text: str, position: int) -> tuple[Any, int]:
    """One JSON value at `position`, or DigestFormatError saying where the JSON breaks."""
    if position >= len(text):
        raise syntax_error(text, position, "the list is not closed")
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as error:
        raise syntax_error(text, error.pos, error.msg) from None
    except RecursionError:
        raise syntax_error(text, position, "nested too deeply") from None
    except ValueError as error:  # e.g. an integer too long to convert
        raise syntax_error(text, position, str(error)) from None


def syntax_error(text: str, position: int, what: str) -> DigestFormatError:
    line = 1 + text.count("\n", 0, position)
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return DigestFormatError(f"not valid JSON: {what} (line {line}, column {column})")


def not_a_list(text: str, position: int) -> DigestFormatError:
    """The error for input that holds something other than a list, saying what it holds."""
    if position >= len(text):
        return DigestFormatError("the input is empty, not a list of papers")
    try:
        value, _ = _DECODER.raw_decode(text, position)
    except (ValueError, RecursionError):
        return DigestFormatError("the input is not JSON; a JSON digest is a list of papers")
    return DigestFormatError(f"the JSON is {kind(value)}, not a list of papers")


# --------------------------------------------------------------------------------------------
# One object
# --------------------------------------------------------------------------------------------


def paper_from_object(element: Any) -> Paper:
    """The paper one JSON object describes, or ObjectError saying why it can't be read."""
    if not isinstance(element, dict):
        raise ObjectError(f"list element is {kind(element)}, not a paper object")
    identity = paper_identity([text_field(element, "link")])
    if identity.arxiv_id is None:
        raise ObjectError("no arXiv id in the paper's link")
    title = fold(repair(text_field(element, "title")))
    if not title:
        raise ObjectError("the paper has no title")
    github = site_urls(list_field(element, "github_urls"), GITHUB_SITE)
    huggingface = site_urls(list_field(element, "huggingface_urls"), HUGGINGFACE_SITE)
    return Paper(
        arxiv_id=identity.arxiv_id,
        title=title,
        url=identity.url,
        authors=authors_field(element),
        summary=repair(text_field(element, "summary")).strip(),
        tags=tags_field(element),
        github_urls=github,
        huggingface_urls=unique(identity.hf_pages + huggingface),
        extra=extra_fields(element, github),
    )


def text_field(element: dict, key: str) -> str:
    """A text field; missing or null reads as empty, anything else is a malformed object."""
    value = element.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ObjectError(f"the paper's {key!r} is {kind(value)}, not a string")
    return value


def list_field(element: dict, key: str) -> list[str]:
    """A list of strings; a lone string counts as a one-item list, null as empty."""
    value = element.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ObjectError(f"the paper's {key!r} is {kind(value)}, not a list")
    return [item for item in value if isinstance(item, str)]


def authors_field(element: dict) -> list[str]:
    """Authors as the producer writes them (one comma-separated string) or as a list."""
    value = element.get("authors")
    if isinstance(value, list):
        return [name for item in value if isinstance(item, str) for name in split_authors(item)]
    return split_authors(text_field(element, "authors"))


def tags_field(element: dict) -> list[str]:
    """Tags from `classification`: a list, or the markdown's list-as-text."""
    value = element.get("classification")
    if isinstance(value, str):
        return tags_from_list_text(value)
    return clean_tags(repair(item) for item in list_field(element, "classification"))


def extra_fields(element: dict, github_urls: list[str]) -> dict[str, str]:
    """Keys Paperbot doesn't model, as text, so nothing the producer wrote is lost.

    `github_repo` is kept here, not in `github_urls`: the markdown's GitHub column lists only
    `github_urls`, and the same paper must read the same from either format.
    """
    extra = {
        key: repair(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in element.items()
        if key not in _KNOWN_KEYS
    }
    repo = element.get("github_repo")
    if isinstance(repo, str) and (url := clean_url(repo)) and url not in github_urls:
        extra["github_repo"] = repo
    return extra


def kind(value: Any) -> str:
    """A JSON value's type in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"  # the only JSON value left
