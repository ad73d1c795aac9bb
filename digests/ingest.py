"""Read digests from their locations, parse them and store them: the ingest pipeline.

Shared by the CLI and the bot's fetch job. One file is one transaction in the
store, so a file that fails leaves nothing half-written and the batch goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date

import aiohttp
import aiosqlite

from digests.markdown import find_heading
from digests.parse import DigestFormatError, is_json, parse_bytes
from digests.sources import Location, SourceError, expand, fetch, read_file
from storage import papers
from storage.models import Digest, IngestResult, Problem


@dataclass
class FileOutcome:
    """What happened to one digest file: its changes and problems, or why it failed."""

    location: Location
    day: date | None = None
    papers: int = 0
    result: IngestResult = field(default_factory=IngestResult)
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None


@dataclass
class IngestSummary:
    """The figures a batch ends with."""

    files: int = 0
    failed: int = 0
    papers: int = 0
    problems: int = 0
    result: IngestResult = field(default_factory=IngestResult)
    outcomes: list[FileOutcome] = field(default_factory=list)

    def add(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)
        self.files += 1
        self.failed += outcome.error is not None
        self.papers += outcome.papers
        self.problems += len(outcome.problems)
        self.result += outcome.result

    def describe(self) -> str:
        r = self.result
        text = (
            f"{self.files} files, {self.papers} papers: {r.new} new, {r.updated} updated, "
            f"{r.unchanged} unchanged; {self.problems} problems"
        )
        return text + (f"; {self.failed} files failed" if self.failed else "")


def has_heading(data: bytes, name: str) -> bool:
    """JSON digests carry no heading; a markdown digest without one is not a digest."""
    text = data.decode("utf-8", errors="replace")
    return is_json(text, name) or find_heading(text) is not None


def digest_key(location: Location) -> str:
    """The store's source key: a producer's JSON twin is a digest of its own, not a correction."""
    return f"{location.producer}/json" if location.target.endswith(".json") else location.producer


async def ingest_bytes(conn: aiosqlite.Connection, data: bytes, location: Location) -> FileOutcome:
    """Parse one digest's bytes and store it; problems in rows are reported, not fatal."""
    try:
        digest = await asyncio.to_thread(parse_bytes, data, location.target)
    except DigestFormatError as error:
        outcome = FileOutcome(location)
        outcome.error = f"{location.target}: {error}"
        return outcome
    if digest.date is None or not has_heading(data, location.target):
        # An error page served under a dated URL must not replace that day's digest.
        outcome = FileOutcome(location)
        outcome.day, outcome.papers, outcome.problems = digest.date, len(digest.papers), digest.problems
        outcome.error = f"{location.target}: no '## Papers for YYYY-MM-DD' heading: not a digest, nothing stored"
        return outcome
    return await store_parsed(conn, digest, data, location)


async def store_parsed(conn: aiosqlite.Connection, digest: Digest, data: bytes, location: Location) -> FileOutcome:
    """Store a digest already parsed from `data` (one transaction), so a checked file is parsed once."""
    outcome = FileOutcome(location)
    outcome.day, outcome.papers, outcome.problems = digest.date, len(digest.papers), digest.problems
    outcome.result = await papers.ingest_digest(
        conn,
        digest,
        source=digest_key(location),
        origin=location.target,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return outcome


async def ingest_locations(
    conn: aiosqlite.Connection,
    locations: Iterable[Location],
    *,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> IngestSummary:
    """Ingest each location in order; a failing file is recorded and the rest still run."""
    summary = IngestSummary()
    async with AsyncExitStack() as stack:
        session: aiohttp.ClientSession | None = None
        for location in locations:
            try:
                if location.is_url:
                    if session is None:
                        session = await stack.enter_async_context(aiohttp.ClientSession())
                    data = await fetch(session, location.target)
                else:
                    data = await asyncio.to_thread(read_file, location.target)
                outcome = await ingest_bytes(conn, data, location)
            except SourceError as error:
                outcome = FileOutcome(location, error=str(error))
            summary.add(outcome)
            if on_file:
                on_file(outcome)
    return summary


async def ingest_targets(
    conn: aiosqlite.Connection,
    targets: Iterable[str],
    *,
    producer: str | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> IngestSummary:
    """Files, folders and URLs, as the CLI takes them."""
    return await ingest_locations(conn, expand(targets, producer), on_file=on_file)
