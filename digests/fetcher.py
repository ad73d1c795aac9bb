"""The daily fetch job: pull each source's digest for a day, retrying until a deadline.

Producers publish a day's digest some time after the day starts, and not at all on weekends
and holidays, so a 404 first means "not yet" and only after the deadline "no digest for DAY".
Whatever goes wrong on the way (timeouts, 5xx, an HTML error page with status 200, a file cut
short) is retried or recorded in the fetch log (`storage.fetches`), never raised into the
scheduler, and never stored: a body is checked to be the requested day's whole digest before
`ingest_bytes` stores it in one transaction.

Discord-free: the scheduler calls `fetch_all` and posts what was ingested. The clock, `sleep`
and the jitter's random source are injected so tests run the whole retry schedule instantly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import string
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import aiohttp
import aiosqlite

from settings import FetchSettings, SourceSettings
from digests.ingest import FileOutcome, store_parsed
from digests.markdown import ends_row, starts_row
from digests.parse import DigestFormatError, date_from_name, decode, is_json, parse_bytes, without_query
from digests.sources import (
    fetch,
    Location,
    NotPublished,
    SourceError,
    is_url,
    read_file,
)
from storage import fetches
from storage.fetches import FetchKind, FetchRecord
from storage.models import Digest, IngestResult

log = logging.getLogger(__name__)

PLACEHOLDERS = ("yyyy", "mm", "dd", "date")
JITTER = 0.1  # each wait is shortened by up to 10 %, so sources retrying together drift apart
DEADLINE_SLACK_SECONDS = 1.0  # an attempt this close to the deadline is the last one

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
OnIngested = Callable[[date], Awaitable[None]]


class Outcome(StrEnum):
    """What one attempt at one file found."""

    INGESTED = "ingested"
    NOT_PUBLISHED = "not published"  # 404 (or no file in the folder): not yet, or not at all
    TRANSIENT = "transient"  # timeout, connection error, 5xx, 429: the server may do better later
    BROKEN = "broken"  # an answer that is not the day's digest: reported, nothing stored


@dataclass(frozen=True)
class FetchResult:
    """One attempt at one kind of file of a source's day, as recorded in the fetch log."""

    source: str
    day: date
    kind: FetchKind
    target: str  # the URL, or the folder
    outcome: Outcome
    detail: str
    record: FetchRecord
    files: tuple[FileOutcome, ...] = ()  # what was stored: one file per URL, a folder's day files

    @property
    def ingested(self) -> bool:
        return self.outcome is Outcome.INGESTED

    @property
    def result(self) -> IngestResult:
        """New/updated/unchanged papers over the stored files."""
        return sum((file.result for file in self.files), IngestResult())


@dataclass
class DayFetch:
    """How fetching one source's day ended."""

    source: str
    day: date
    results: dict[str, FetchResult] = field(default_factory=dict)  # kind -> its last attempt
    already_ingested: tuple[str, ...] = ()  # kinds the log says were stored before this run
    attempts: int = 0  # rounds of fetch_once
    error: str | None = None  # a bug stopped this source (fetch_all logged the traceback)

    @property
    def ingested_new(self) -> bool:
        """Something was stored during this run: the scheduler has a digest to post."""
        return any(result.ingested for result in self.results.values())

    @property
    def complete(self) -> bool:
        """Every kind of file of the day is in the library."""
        return self.error is None and all(result.ingested for result in self.results.values())


# --------------------------------------------------------------------------------------------
# Where a day's files are
# --------------------------------------------------------------------------------------------


def validate_source(source: SourceSettings) -> None:
    """Raise ValueError naming the source if a URL template or folder cannot work.

    Called at startup, so a typo like `{yyy}` stops the bot with a clear message instead of
    failing every morning. The JSON twin must end in `.json` (and the markdown must not):
    the suffix decides how a file is parsed and whether it is filed as `name/json`.
    """
    for kind, template in _templates(source):
        url = _render(source, kind, template, date(2000, 1, 31))
        if not is_url(url):
            raise ValueError(f"source {source.name!r}: {kind}_url must be an http(s) URL, got {template!r}")
        ends_in_json = {url.endswith(".json"), without_query(url).endswith(".json")}  # ingest checks both
        if ends_in_json != {kind == "json"}:
            wanted = "must end in .json, query included" if kind == "json" else "must not end in .json"
            raise ValueError(f"source {source.name!r}: {kind}_url {wanted}, got {template!r}")
    if source.folder is not None and not source.folder.is_dir():
        raise ValueError(f"source {source.name!r}: folder {str(source.folder)!r} is not a folder")


def validate_sources(sources: Iterable[SourceSettings]) -> None:
    """validate_source for each, and no two with one name (their digests would overwrite each other)."""
    seen: set[str] = set()
    for source in sources:
        validate_source(source)
        if source.name in seen:
            raise ValueError(f"two sources are named {source.name!r}; give each a name of its own")
        seen.add(source.name)


def source_kinds(source: SourceSettings) -> list[FetchKind]:
    """The kinds of file a source has each day, in fetch order."""
    kinds: list[FetchKind] = [kind for kind, _ in _templates(source)]
    return kinds + (["folder"] if source.folder is not None else [])


def day_urls(source: SourceSettings, day: date) -> list[tuple[FetchKind, str]]:
    """(kind, URL) of the day's published files, from the templates; ValueError for a bad template."""
    return [(kind, _render(source, kind, template, day)) for kind, template in _templates(source)]


def folder_files(source: SourceSettings, day: date) -> list[Path]:
    """The day's digest files anywhere below a folder source: `YYYY/MM/DD.md|json`, `YYYY-MM-DD.md|json`."""
    if source.folder is None or not source.folder.is_dir():
        return []
    dd, mm, yyyy = f"{day.day:02d}", f"{day.month:02d}", f"{day.year:04d}"
    found = []
    for path in source.folder.rglob("*"):
        if path.suffix not in (".md", ".json") or not path.is_file():
            continue
        nested = path.stem == dd and path.parent.name == mm and path.parent.parent.name == yyyy
        if nested or path.stem == day.isoformat():
            found.append(path)
    return sorted(found)


def _templates(source: SourceSettings) -> list[tuple[FetchKind, str]]:
    pairs: list[tuple[FetchKind, str | None]] = [("markdown", source.markdown_url), ("json", source.json_url)]
    return [(kind, template) for kind, template in pairs if template]


def _render(source: SourceSettings, kind: str, template: str, day: date) -> str:
    values = {"yyyy": f"{day.year:04d}", "mm": f"{day.month:02d}", "dd": f"{day.day:02d}", "date": day.isoformat()}
    allowed = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as error:  # a lone { or }
        raise ValueError(f"source {source.name!r}: {kind}_url {template!r} is malformed ({error}); "
                         f"placeholders are {allowed}, write {{{{ or }}}} for a literal brace") from None
    for _, name, spec, conversion in fields:
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"source {source.name!r}: {kind}_url has unknown placeholder {shown}; use {allowed}")
    return template.format(**values)


# --------------------------------------------------------------------------------------------
# One attempt
# --------------------------------------------------------------------------------------------


def digest_problem(data: bytes, target: str, day: date) -> str | None:
    """Why `data` is not `day`'s whole digest, or None when it is."""
    return checked_digest(data, target, day)[1]


def checked_digest(data: bytes, target: str, day: date) -> tuple[Digest | None, str | None]:
    """`data` parsed once, and why it is not `day`'s whole digest (None when it is).

    Parsed without the date the URL gives, so an HTML error page or yesterday's file served
    under today's name is caught instead of being filed under `day`. A markdown table whose
    last row stops before its closing `|` was cut short (a half-written or truncated file), and
    one none of whose rows can be read is a broken export: both are retried until the deadline.
    The digest returned is the one ingest would have parsed: an undated JSON day takes the
    name's date, as `parse_bytes` would have given it.
    """
    name = "undated" + PurePosixPath(without_query(target)).suffix
    try:
        digest = parse_bytes(data, name)
        text = decode(data)
    except DigestFormatError as error:
        return None, f"not a digest: {error}"
    if digest.date is None and not is_json(text, name):
        return None, "not a digest: no '## Papers for YYYY-MM-DD' heading"
    if digest.date is not None and digest.date != day:
        return None, f"the digest of {digest.date}, not of {day}"
    if not digest.papers and digest.problems:  # a producer's broken export, worth waiting for a fixed one
        return None, f"not one of its {len(digest.problems)} rows could be read"
    if not is_json(text, name):
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        if lines and starts_row(lines[-1]) and not ends_row(lines[-1]):
            return None, "the file ends in the middle of a table row (truncated)"
    if digest.date is None:
        digest = digest.model_copy(update={"date": date_from_name(target)})
    return digest, None


@dataclass
class _Attempt:
    outcome: Outcome
    detail: str
    files: list[FileOutcome] = field(default_factory=list)


async def _store(conn: aiosqlite.Connection, data: bytes, location: Location, day: date) -> _Attempt:
    """Check, then ingest one file (one transaction); a file that is not the day's digest is not stored."""
    digest, problem = await asyncio.to_thread(checked_digest, data, location.target, day)
    if digest is None:
        return _Attempt(Outcome.BROKEN, f"{location.target}: {problem}")
    try:
        outcome = await store_parsed(conn, digest, data, location)
    except sqlite3.OperationalError as error:  # locked past the busy timeout, disk full: rolled back
        log.warning("could not store %s", location.target, exc_info=True)
        return _Attempt(Outcome.TRANSIENT, f"{location.target}: could not store it ({error})")
    if outcome.error:
        return _Attempt(Outcome.BROKEN, outcome.error)
    return _Attempt(Outcome.INGESTED, _describe(outcome), [outcome])


def _describe(outcome: FileOutcome) -> str:
    r = outcome.result
    text = f"{outcome.location.target}: {outcome.papers} papers ({r.new} new, {r.updated} updated)"
    return text + (f", {len(outcome.problems)} unreadable rows" if outcome.problems else "")


async def _attempt_url(
    conn: aiosqlite.Connection,
    session: aiohttp.ClientSession,
    source: SourceSettings,
    day: date,
    url: str,
    timeout: float,
) -> _Attempt:
    try:
        data = await fetch(session, url, timeout=timeout)
    except NotPublished as error:
        return _Attempt(Outcome.NOT_PUBLISHED, str(error))
    except SourceError as error:
        return _Attempt(Outcome.TRANSIENT if error.transient else Outcome.BROKEN, str(error))
    return await _store(conn, data, Location(url, producer=source.name), day)


async def _attempt_folder(conn: aiosqlite.Connection, source: SourceSettings, day: date) -> _Attempt:
    """Every day file in the folder; the kind is ingested when all of them were."""
    folder = source.folder
    assert folder is not None
    if not await asyncio.to_thread(folder.is_dir):
        return _Attempt(Outcome.TRANSIENT, f"{folder}: no such folder")
    paths = await asyncio.to_thread(folder_files, source, day)
    if not paths:
        return _Attempt(Outcome.NOT_PUBLISHED, f"{folder}: no file for {day}")
    attempts = []
    for path in paths:
        try:
            data = await asyncio.to_thread(read_file, str(path))
        except SourceError as error:
            attempts.append(_Attempt(Outcome.TRANSIENT, str(error)))
            continue
        attempts.append(await _store(conn, data, Location(str(path), producer=source.name), day))
    failed = [a for a in attempts if a.outcome is not Outcome.INGESTED]
    outcome = failed[0].outcome if failed else Outcome.INGESTED
    return _Attempt(outcome, "; ".join(a.detail for a in failed or attempts), [f for a in attempts for f in a.files])


def _log_status(attempt: _Attempt, day: date, *, final: bool) -> tuple[fetches.FetchStatus, str]:
    if attempt.outcome is Outcome.INGESTED:
        return "ingested", attempt.detail
    if not final:
        return "waiting", attempt.detail
    if attempt.outcome is Outcome.NOT_PUBLISHED:
        return "missing", f"no digest for {day}"
    return "failed", attempt.detail


def utc_now() -> datetime:
    return datetime.now(UTC)


async def fetch_once(
    conn: aiosqlite.Connection,
    session: aiohttp.ClientSession,
    source: SourceSettings,
    day: date,
    *,
    timeout: float,
    kinds: Iterable[FetchKind] | None = None,
    final: bool = False,
    now: Clock = utc_now,
) -> list[FetchResult]:
    """One attempt at each of the source's kinds of file for `day` (or just `kinds`), recorded in the log.

    Not-yet-published, transient and broken files are logged 'waiting'; on the `final`
    attempt (the deadline has passed) a 404 becomes 'missing' ("no digest for DAY", normal
    on weekends) and anything else 'failed' with its reason. Raises only for bugs.
    """
    wanted = list(kinds) if kinds is not None else source_kinds(source)
    urls = dict(day_urls(source, day))
    results = []
    for kind in wanted:
        if kind == "folder":
            target = str(source.folder)
            attempt = await _attempt_folder(conn, source, day)
        else:
            target = urls[kind]
            attempt = await _attempt_url(conn, session, source, day, target, timeout)
        status, detail = _log_status(attempt, day, final=final)
        record = await fetches.record_attempt(conn, source.name, day, kind, status, detail, at=now())
        _log_attempt(source.name, day, kind, status, detail)
        files = tuple(attempt.files)
        results.append(FetchResult(source.name, day, kind, target, attempt.outcome, detail, record, files))
    return results


def _log_attempt(source: str, day: date, kind: str, status: str, detail: str) -> None:
    level = {"ingested": logging.INFO, "missing": logging.INFO, "failed": logging.WARNING}.get(status, logging.DEBUG)
    log.log(level, "%s %s %s: %s: %s", source, day, kind, status, detail)


# --------------------------------------------------------------------------------------------
# Retrying until the deadline
# --------------------------------------------------------------------------------------------


def fetch_deadline(day: date, settings: FetchSettings) -> datetime:
    """When to give up on `day`: its fetch window opens at start_time in the configured zone,
    and lasts deadline_hours of real time (a DST change does not stretch or shrink it)."""
    opens = datetime.combine(day, settings.start_time.replace(tzinfo=None), tzinfo=ZoneInfo(settings.timezone))
    return opens.astimezone(UTC) + timedelta(hours=settings.deadline_hours)


def backoff_delays(settings: FetchSettings, rand: Callable[[], float] = random.random) -> Iterable[float]:
    """retry_initial_seconds, doubling up to retry_max_seconds, each shortened by up to JITTER."""
    delay = settings.retry_initial_seconds
    while True:
        capped = min(delay, settings.retry_max_seconds)
        yield capped * (1 - JITTER * rand())
        delay = capped * 2


async def fetch_day(
    conn: aiosqlite.Connection,
    session: aiohttp.ClientSession,
    source: SourceSettings,
    day: date,
    settings: FetchSettings,
    *,
    now: Clock = utc_now,
    sleep: Sleep = asyncio.sleep,
    rand: Callable[[], float] = random.random,
    on_ingested: OnIngested | None = None,
) -> DayFetch:
    """Fetch the source's `day` until every kind is ingested or the deadline has passed.

    Kinds the log already shows ingested (a restart, a second run) are not fetched again.
    Between rounds it sleeps along `backoff_delays`, the last sleep ending at the deadline so
    the final attempt happens then; called after the deadline it makes that one final attempt.
    `on_ingested(day)` is awaited after each round that stored something (the scheduler
    posts late digests from it; it must tolerate being called again for the same day); it
    runs in this job's write turn on `conn`, so it may write to the same connection.
    Never raises for network or digest problems.
    """
    deadline = fetch_deadline(day, settings)
    done = [k for k in source_kinds(source) if await _ingested_before(conn, source.name, day, k)]
    pending = [k for k in source_kinds(source) if k not in done]
    outcome = DayFetch(source.name, day, already_ingested=tuple(done))
    delays = iter(backoff_delays(settings, rand))
    reported: dict[str, str] = {}
    while pending:
        remaining = (deadline - now()).total_seconds()
        final = remaining <= DEADLINE_SLACK_SECONDS
        results = await fetch_once(
            conn, session, source, day, timeout=settings.http_timeout_seconds, kinds=pending, final=final, now=now
        )
        outcome.attempts += 1
        outcome.results.update((r.kind, r) for r in results)
        pending = [r.kind for r in results if not r.ingested]
        if on_ingested is not None and any(r.ingested for r in results):
            await _notify(conn, on_ingested, day)
        if not pending or final:
            break
        _report_waiting(results, reported, deadline)
        remaining = (deadline - now()).total_seconds()
        await sleep(max(0.0, min(next(delays), remaining)))
    return outcome


async def day_is_settled(conn: aiosqlite.Connection, sources: Iterable[SourceSettings], day: date) -> bool:
    """Every file of every fetched source has a final word in the log: ingested, missing or failed."""
    for source in sources:
        for kind in source_kinds(source):
            record = await fetches.get_fetch(conn, source.name, day, kind)
            if record is None or record.status == "waiting":
                return False
    return True


async def _ingested_before(conn: aiosqlite.Connection, source: str, day: date, kind: FetchKind) -> bool:
    record = await fetches.get_fetch(conn, source, day, kind)
    return record is not None and record.status == "ingested"


async def _notify(conn: aiosqlite.Connection, on_ingested: OnIngested, day: date) -> None:
    """A failing callback (Discord down) must not stop the other files from being fetched."""
    try:
        await on_ingested(day)
    except Exception:
        log.exception("on_ingested(%s) failed; fetching goes on", day)


def _report_waiting(results: list[FetchResult], reported: dict[str, str], deadline: datetime) -> None:
    """Say once per kind that we are waiting, and again only when the reason changes."""
    for result in results:
        if result.ingested or reported.get(result.kind) == result.outcome + result.detail:
            continue
        reported[result.kind] = result.outcome + result.detail
        level = logging.INFO if result.outcome is Outcome.NOT_PUBLISHED else logging.WARNING
        log.log(level, "%s %s %s: %s (%s); retrying until %s", result.source, result.day, result.kind,
                result.outcome, result.detail, deadline.isoformat(timespec="minutes"))


async def fetch_all(
    conn: aiosqlite.Connection,
    session: aiohttp.ClientSession | None,
    sources: Iterable[SourceSettings],
    day: date,
    settings: FetchSettings,
    *,
    now: Clock = utc_now,
    sleep: Sleep = asyncio.sleep,
    rand: Callable[[], float] = random.random,
    on_ingested: OnIngested | None = None,
) -> list[DayFetch]:
    """fetch_day for every source at once, one DayFetch per source in order.

    A bug in one source's fetch is logged with its traceback and reported in that source's
    `DayFetch.error`; the others carry on. With no `session`, one is opened for the run.
    """
    sources = list(sources)
    async with AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        outcomes = await asyncio.gather(
            *(
                fetch_day(
                    conn, session, source, day, settings, now=now, sleep=sleep, rand=rand, on_ingested=on_ingested
                )
                for source in sources
            ),
            return_exceptions=True,
        )
    results = []
    for source, outcome in zip(sources, outcomes):
        if isinstance(outcome, DayFetch):
            results.append(outcome)
        elif isinstance(outcome, Exception):
            log.error("fetching %s for %s failed", source.name, day, exc_info=outcome)
            results.append(DayFetch(source.name, day, error=f"{type(outcome).__name__}: {outcome}"))
        else:
            raise outcome  # CancelledError, KeyboardInterrupt: not ours to swallow
    return results
