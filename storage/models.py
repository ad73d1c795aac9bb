"""The library's data model, shared by the parser, the store and the bot.

Plain pydantic models with no knowledge of Discord or SQL, so every layer can
speak the same language and `paperbot parse` can print them as JSON.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# New-style ids (2409.02889, optionally versioned) and old-style ones (hep-th/9901001).
ARXIV_ID = re.compile(
    r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z.-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>\d+))?"
)


def arxiv_id_from(text: str) -> str | None:
    """The unversioned arXiv id in an id, an arXiv/HuggingFace URL or a file name, if any."""
    match = ARXIV_ID.search(text or "")
    return match.group("id") if match else None


class Paper(BaseModel):
    """One paper as a digest presents it."""

    model_config = ConfigDict(frozen=True)

    arxiv_id: str
    title: str
    url: str
    authors: list[str] = Field(default_factory=list)
    summary: str = ""
    tags: list[str] = Field(default_factory=list)
    github_urls: list[str] = Field(default_factory=list)
    huggingface_urls: list[str] = Field(default_factory=list)
    # Columns a digest had that Paperbot does not understand: header -> cell text.
    extra: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The `paperbot parse` form: the eight documented fields, plus `extra` only when present."""
        data = self.model_dump(mode="json")
        if not data["extra"]:
            del data["extra"]
        return data


class Problem(BaseModel):
    """Something in a digest file that could not be read, located by its 1-based line."""

    model_config = ConfigDict(frozen=True)

    line: int
    message: str


class Digest(BaseModel):
    """One day's digest from one source file."""

    date: dt.date | None
    papers: list[Paper] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat() if self.date else None,
            "papers": [paper.to_json() for paper in self.papers],
            "problems": [problem.model_dump() for problem in self.problems],
        }


class StoredPaper(Paper):
    """A paper as the library holds it: merged over every digest it appeared in."""

    days: list[dt.date] = Field(default_factory=list)  # digest dates, oldest first
    sources: list[str] = Field(default_factory=list)  # producers that published it


class SearchHit(BaseModel):
    """A search result: the paper and its best-matching text, matched words in **bold**."""

    paper: StoredPaper
    snippet: str


class SearchPage(BaseModel):
    """One page of results and how many there are in all, for "page n of m".

    Counting a million matches costs more than finding a page of them, so a search may
    stop counting: then `total_is_exact` is False and `total` is a lower bound ("1,000+").
    """

    hits: list[SearchHit]
    total: int
    total_is_exact: bool = True

    @property
    def total_text(self) -> str:
        """The total for people: `1,234`, or `1,000+` when counting stopped."""
        return f"{self.total:,}" if self.total_is_exact else f"{self.total:,}+"


class TagCount(BaseModel):
    """A tag in its display form, with how many papers carry it."""

    name: str
    count: int


class IngestResult(BaseModel):
    """What one digest changed in the library: the figures ingest reports."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            new=self.new + other.new,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
        )
