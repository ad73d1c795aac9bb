"""The daily fetch job against a local producer on 127.0.0.1 serving real corpus files.

The producer follows a script per path (404 for a while, 5xx, a slow answer, garbage, a cut-off
body, yesterday's file...). Retries run on a fake clock whose `sleep` only moves `now`, so a whole
day of backoff takes milliseconds; only HTTP timeouts use real time (a fraction of a second).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from settings import FetchSettings, SourceSettings
from digests import fetcher
from digests.fetcher import (
    Outcome,
    day_urls,
    fetch_all,
    fetch_day,
    fetch_deadline,
    fetch_once,
    folder_files,
    validate_source,
    validate_sources,
)
from digests.ingest import ingest_bytes
from digests.sources import Location
from storage import db, fetches, papers

CORPUS = Path(__file__).parent / "data" / "corpus"
DAY = date(2025, 2, 21)  # a Friday the corpus has (14 papers in markdown, 18 in JSON)
BEFORE = date(2025, 2, 20)
WEEKEND = date(2025, 2, 22)  # a Saturday: never published
MD, JSON = "/timlrx/archive/2025/02/21.md", "/timlrx/daily_results/2025/02/21.json"
ONLY_ON_DAY = "2502.14739"  # SuperGPQA: listed on 2025-02-21 only
START = datetime(2025, 2, 21, 6, 0, tzinfo=UTC)

SETTINGS = FetchSettings(
    start_time=time(6, 0), timezone="UTC", deadline_hours=1,
    retry_initial_seconds=60, retry_max_seconds=600, http_timeout_seconds=0.3,
)
# 60 doubling to the 600 cap; the last sleep ends exactly at the deadline (06:00 + 1 h).
SCHEDULE = [60, 120, 240, 480, 600, 600, 600, 600, 300]
TEST_SECONDS = 10  # no test may hang: every fetch runs under this bound
MAX_REQUESTS = 200

HTML_ERROR = b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"
GARBAGE = bytes(range(256)) * 8


class Producer:
    """A stand-in for raw.githubusercontent.com serving the corpus, answering each path by a script.

    An answer is an HTTP status, or: "ok" (the file), "slow" (the file, after the client gave
    up), "garbage" (binary), "html" (an error page with status 200), "cut" (the connection
    drops halfway through the body), "half" (the first half of the file, published like that),
    "yesterday" (the day before's file under this day's name). The last answer repeats.
    """

    def __init__(self) -> None:
        self.scripts: dict[str, list[str | int]] = {}
        self.requests: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.base = ""

    def script(self, path: str, *answers: str | int) -> None:
        self.scripts[path] = list(answers)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        count = self.requests[path]
        self.requests[path] += 1
        if self.total > MAX_REQUESTS:
            return web.Response(status=410, text="test producer: too many requests")
        answers = self.scripts.get(path, ["ok"])
        answer = answers[min(count, len(answers) - 1)]
        if isinstance(answer, int):
            return web.Response(status=answer, text=f"HTTP {answer}")
        if answer == "garbage":
            return web.Response(body=GARBAGE)
        if answer == "html":
            return web.Response(body=HTML_ERROR, content_type="text/html")
        file = CORPUS / path.lstrip("/").replace("/21.", "/20.") if answer == "yesterday" else CORPUS / path.lstrip("/")
        if not file.is_file():
            return web.Response(status=404, text="404: Not Found")
        body = file.read_bytes()
        if answer == "slow":
            try:
                await asyncio.wait_for(self.release.wait(), 5)
            except TimeoutError:
                pass
        if answer == "half":
            return web.Response(body=body[: len(body) // 2])
        if answer == "cut":
            response = web.StreamResponse()
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            request.transport.close()
            return response
        return web.Response(body=body)


class FakeClock:
    """`now` and `sleep` for the fetch job: sleeping moves the clock instead of waiting."""

    def __init__(self, start: datetime = START) -> None:
        self.time = start
        self.sleeps: list[float] = []
        self.during_sleep = None  # an async probe run at each sleep, e.g. to look at the library
        self.seen: list = []

    def now(self) -> datetime:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.during_sleep is not None:
            self.seen.append(await self.during_sleep())
        self.time += timedelta(seconds=seconds)


@pytest.fixture
async def producer():
    producer = Producer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", producer.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    producer.base = str(server.make_url("/")).rstrip("/")
    yield producer
    producer.release.set()
    await server.close()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


def timlrx(producer: Producer, *, markdown: bool = True, json: bool = True) -> SourceSettings:
    return SourceSettings(
        name="timlrx",
        markdown_url=f"{producer.base}/timlrx/archive/{{yyyy}}/{{mm}}/{{dd}}.md" if markdown else None,
        json_url=f"{producer.base}/timlrx/daily_results/{{yyyy}}/{{mm}}/{{dd}}.json" if json else None,
    )


async def run_day(conn, session, source, day, clock, **options) -> fetcher.DayFetch:
    return await asyncio.wait_for(
        fetch_day(conn, session, source, day, SETTINGS, now=clock.now, sleep=clock.sleep, rand=lambda: 0.0, **options),
        TEST_SECONDS,
    )


async def once(conn, session, source, day=DAY, **options) -> list[fetcher.FetchResult]:
    return await asyncio.wait_for(
        fetch_once(conn, session, source, day, timeout=SETTINGS.http_timeout_seconds, now=lambda: START, **options),
        TEST_SECONDS,
    )


async def library_state(conn) -> tuple:
    """What a reader of the library sees: the days, the latest one, a paper only 2025-02-21 lists."""
    return (
        await papers.digest_days(conn),
        await papers.latest_day(conn),
        [p.arxiv_id for p in await papers.papers_on_day(conn, DAY)],
        await papers.get_paper(conn, ONLY_ON_DAY),
    )


# --------------------------------------------------------------------------------------------
# Templates and folders
# --------------------------------------------------------------------------------------------


def test_day_urls_fill_the_templates():
    source = SourceSettings(
        name="p", markdown_url="https://h/{yyyy}/{mm}/{dd}.md", json_url="https://h/d/{date}.json?raw={yyyy}{{x}}.json"
    )
    assert day_urls(source, date(2025, 3, 7)) == [
        ("markdown", "https://h/2025/03/07.md"),
        ("json", "https://h/d/2025-03-07.json?raw=2025{x}.json"),
    ]
    assert day_urls(SourceSettings(name="f", folder=Path("/srv")), DAY) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"markdown_url": "https://h/{yyy}/{dd}.md"}, r"source 'bad': markdown_url has unknown placeholder \{yyy\}"),
        ({"markdown_url": "https://h/{dd:>3}.md"}, r"unknown placeholder \{dd:>3\}"),
        ({"markdown_url": "https://h/{dd!r}.md"}, r"unknown placeholder \{dd!r\}"),
        ({"json_url": "https://h/{}.json"}, r"source 'bad': json_url has unknown placeholder \{\}"),
        ({"json_url": "https://h/{0}.json"}, r"unknown placeholder \{0\}"),
        ({"markdown_url": "https://h/{dd.md"}, r"source 'bad': markdown_url 'https://h/\{dd.md' is malformed"),
        ({"markdown_url": "ftp://h/{dd}.md"}, r"source 'bad': markdown_url must be an http\(s\) URL"),
        ({"markdown_url": "/srv/{dd}.md"}, r"must be an http\(s\) URL"),
        ({"json_url": "https://h/{dd}.md"}, r"source 'bad': json_url must end in .json"),
        ({"markdown_url": "https://h/{dd}.json"}, r"source 'bad': markdown_url must not end in .json"),
        ({"json_url": "https://h/{dd}.json?raw=1"}, r"json_url must end in .json, query included"),
        ({"markdown_url": "https://h/{dd}.json?x.md"}, r"markdown_url must not end in .json"),
        ({"folder": "/no/such/folder"}, r"source 'bad': folder '/no/such/folder' is not a folder"),
    ],
)
def test_unusable_sources_are_refused_naming_the_source(fields, message):
    source = SourceSettings(name="bad", **fields)
    with pytest.raises(ValueError, match=message):
        validate_source(source)
    if "url" in next(iter(fields)) and "must" not in message:
        with pytest.raises(ValueError, match="source 'bad'"):
            day_urls(source, DAY)


def test_good_sources_pass_and_names_must_be_unique(tmp_path):
    good = SourceSettings(
        name="timlrx", markdown_url="https://h/archive/{yyyy}/{mm}/{dd}.md", json_url="https://h/{date}.json"
    )
    local = SourceSettings(name="local", folder=tmp_path)
    validate_sources([good, local])
    with pytest.raises(ValueError, match="two sources are named 'timlrx'"):
        validate_sources([good, local, good.model_copy(update={"json_url": None})])


def test_folder_files_finds_the_days_files_anywhere_below(tmp_path):
    wanted = [
        tmp_path / "timlrx/archive/2025/02/21.md",
        tmp_path / "timlrx/daily_results/2025/02/21.json",
        tmp_path / "flat/2025-02-21.md",
    ]
    others = [
        tmp_path / "timlrx/archive/2025/02/20.md",
        tmp_path / "timlrx/archive/2024/02/21.md",
        tmp_path / "timlrx/archive/2025/03/21.md",
        tmp_path / "timlrx/archive/2025/02/21.md.partial",
        tmp_path / "flat/2025-02-21.txt",
        tmp_path / "flat/README.md",
    ]
    for path in wanted + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (tmp_path / "dir/2025/02/21.md").mkdir(parents=True)  # a folder with a file's name
    source = SourceSettings(name="local", folder=tmp_path)
    assert folder_files(source, DAY) == sorted(wanted)
    assert folder_files(source, WEEKEND) == []
    assert folder_files(SourceSettings(name="gone", folder=tmp_path / "gone"), DAY) == []


def test_the_deadline_counts_real_hours_from_the_local_start():
    new_york = SETTINGS.model_copy(update={"timezone": "America/New_York", "deadline_hours": 18})
    assert fetch_deadline(DAY, new_york) == datetime(2025, 2, 22, 5, 0, tzinfo=UTC)  # 06:00 EST + 18 h
    # 2025-03-09 06:00 is already EDT (clocks went forward at 02:00): still 18 real hours.
    assert fetch_deadline(date(2025, 3, 9), new_york) == datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
    assert fetch_deadline(DAY, SETTINGS) == START + timedelta(hours=1)


# --------------------------------------------------------------------------------------------
# One attempt: how each answer is classified, and that only a whole digest of the day is stored
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome", "detail"),
    [
        (404, Outcome.NOT_PUBLISHED, "not published yet (HTTP 404)"),
        (500, Outcome.TRANSIENT, "HTTP 500 Internal Server Error"),
        (503, Outcome.TRANSIENT, "HTTP 503 Service Unavailable"),
        (429, Outcome.TRANSIENT, "HTTP 429 Too Many Requests"),
        (403, Outcome.BROKEN, "HTTP 403 Forbidden"),
        ("slow", Outcome.TRANSIENT, "no complete answer within 0.3 s"),
        ("cut", Outcome.TRANSIENT, "the answer was cut short"),
        ("garbage", Outcome.BROKEN, "not a digest: not UTF-8 text"),
        ("html", Outcome.BROKEN, "not a digest: no '## Papers for YYYY-MM-DD' heading"),
        ("half", Outcome.BROKEN, "ends in the middle of a table row (truncated)"),
        ("yesterday", Outcome.BROKEN, "the digest of 2025-02-20, not of 2025-02-21"),
    ],
)
async def test_a_markdown_answer_that_is_not_the_days_digest_is_reported_and_not_stored(
    conn, session, producer, answer, outcome, detail
):
    await _ingest_corpus_day(conn, BEFORE)
    before = await library_state(conn)
    producer.script(MD, answer)
    [result] = await once(conn, session, timlrx(producer, json=False))
    assert (result.outcome, result.kind, result.files) == (outcome, "markdown", ())
    assert detail in result.detail and result.detail.startswith(producer.base)
    assert (result.record.status, result.record.detail, result.record.attempts) == ("waiting", result.detail, 1)
    assert await library_state(conn) == before
    assert producer.requests[MD] == 1


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        ("garbage", "not UTF-8 text"),
        ("html", "not a digest: the input is not JSON"),
        ("half", "not a digest: not valid JSON"),
        ("yesterday", "the digest of 2025-02-20, not of 2025-02-21"),
    ],
)
async def test_a_json_answer_that_is_not_the_days_digest_is_not_stored(conn, session, producer, answer, detail):
    producer.script(JSON, answer)
    [result] = await once(conn, session, timlrx(producer, markdown=False))
    assert result.outcome is Outcome.BROKEN and detail in result.detail
    assert await library_state(conn) == ([], None, [], None)


async def test_a_good_answer_never_replaces_a_stored_digest_with_garbage(conn, session, producer):
    """The day was ingested by hand (no fetch log); a 200 error page later must not wipe it."""
    await _ingest_corpus_day(conn, DAY)
    before = await library_state(conn)
    assert len(before[2]) == 14
    producer.script(MD, "html")
    [result] = await once(conn, session, timlrx(producer, json=False), final=True)
    assert (result.outcome, result.record.status) == (Outcome.BROKEN, "failed")
    assert await library_state(conn) == before


async def test_both_files_are_ingested_and_the_json_twin_is_filed_as_its_own_producer(conn, session, producer):
    results = await once(conn, session, timlrx(producer))
    assert [(r.kind, r.outcome, r.record.status) for r in results] == [
        ("markdown", Outcome.INGESTED, "ingested"),
        ("json", Outcome.INGESTED, "ingested"),
    ]
    assert [(r.result.new, r.files[0].papers) for r in results] == [(14, 14), (4, 18)]
    assert "18 papers (4 new, 0 updated)" in results[1].detail
    assert (await papers.get_paper(conn, ONLY_ON_DAY)).sources == ["timlrx", "timlrx/json"]
    assert await papers.latest_day(conn) == DAY


async def test_each_fetched_file_is_parsed_once(conn, session, producer, monkeypatch):
    """Checking a file and storing it share one parse: a large day costs one parse, not two."""
    from digests import ingest, parse

    parsed: list[str] = []

    def counting(data: bytes, name: str):
        parsed.append(name)
        return parse.parse_bytes(data, name)

    monkeypatch.setattr(fetcher, "parse_bytes", counting)
    monkeypatch.setattr(ingest, "parse_bytes", counting)
    results = await once(conn, session, timlrx(producer))
    assert [r.outcome for r in results] == [Outcome.INGESTED, Outcome.INGESTED]
    assert len(parsed) == 2, parsed  # the markdown file and its JSON twin, once each


# --------------------------------------------------------------------------------------------
# Retrying until the deadline
# --------------------------------------------------------------------------------------------


async def test_a_late_digest_is_ingested_on_a_retry_with_doubling_capped_backoff(conn, session, producer):
    producer.script(MD, 404, 404, 404, "ok")
    producer.script(JSON, 404, 404, 404, 404, 404, "ok")
    clock, announced = FakeClock(), []

    async def on_ingested(day: date) -> None:
        announced.append((day, clock.now()))

    outcome = await run_day(conn, session, timlrx(producer), DAY, clock, on_ingested=on_ingested)
    assert clock.sleeps == [60, 120, 240, 480, 600]
    assert (outcome.attempts, outcome.ingested_new, outcome.complete, outcome.error) == (6, True, True, None)
    assert dict(producer.requests) == {MD: 4, JSON: 6}
    assert announced == [(DAY, START + timedelta(seconds=420)), (DAY, START + timedelta(seconds=1500))]
    markdown = await fetches.get_fetch(conn, "timlrx", DAY, "markdown")
    assert (markdown.status, markdown.attempts, markdown.first_attempt_at) == ("ingested", 4, START)
    assert markdown.last_attempt_at == START + timedelta(seconds=420)
    assert (await fetches.get_fetch(conn, "timlrx", DAY, "json")).attempts == 6
    assert (await papers.get_paper(conn, ONLY_ON_DAY)).sources == ["timlrx", "timlrx/json"]


async def test_jitter_only_shortens_the_waits(conn, session, producer):
    producer.script(MD, 404, 404, 404, "ok")
    clock = FakeClock()
    await asyncio.wait_for(
        fetch_day(conn, session, timlrx(producer, json=False), DAY, SETTINGS,
                  now=clock.now, sleep=clock.sleep, rand=lambda: 1.0),
        TEST_SECONDS,
    )
    assert clock.sleeps == pytest.approx([54, 108, 216])


async def test_a_weekend_is_missing_after_the_deadline_not_an_error(conn, session, producer, caplog):
    clock = FakeClock(datetime(2025, 2, 22, 6, 0, tzinfo=UTC))
    with caplog.at_level(logging.INFO, logger="digests.fetcher"):
        outcome = await run_day(conn, session, timlrx(producer), WEEKEND, clock, on_ingested=_never)
    assert clock.sleeps == SCHEDULE
    assert clock.now() == datetime(2025, 2, 22, 7, 0, tzinfo=UTC)  # the last attempt at the deadline
    assert (outcome.attempts, outcome.ingested_new, outcome.complete) == (10, False, False)
    assert set(producer.requests.values()) == {10}
    for kind in ("markdown", "json"):
        record = await fetches.get_fetch(conn, "timlrx", WEEKEND, kind)
        assert (record.status, record.detail, record.attempts) == ("missing", "no digest for 2025-02-22", 10)
        assert record.last_attempt_at == datetime(2025, 2, 22, 7, 0, tzinfo=UTC)
    assert await fetches.day_is_missing(conn, WEEKEND)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "no digest for 2025-02-22" in caplog.text
    assert await library_state(conn) == ([], None, [], None)


async def test_server_errors_and_timeouts_are_retried(conn, session, producer):
    producer.script(MD, 500, 503, "slow", "cut", "ok")
    producer.script(JSON, 429, "slow", "ok")
    clock = FakeClock()
    outcome = await run_day(conn, session, timlrx(producer), DAY, clock)
    assert outcome.complete and outcome.attempts == 5
    assert clock.sleeps == [60, 120, 240, 480]
    assert dict(producer.requests) == {MD: 5, JSON: 3}
    assert len(await papers.papers_on_day(conn, DAY)) == 18


async def test_garbage_is_never_stored_while_retrying(conn, session, producer):
    producer.script(MD, "garbage", "html", "yesterday", "half", "cut", "ok")
    clock = FakeClock()
    clock.during_sleep = lambda: library_state(conn)
    outcome = await run_day(conn, session, timlrx(producer, json=False), DAY, clock)
    assert outcome.complete and outcome.attempts == 6
    assert clock.seen == [([], None, [], None)] * 5
    assert (await library_state(conn))[1] == DAY


async def test_a_file_still_failing_at_the_deadline_is_recorded_failed_with_its_last_error(
    conn, session, producer, caplog
):
    producer.script(MD, 503, "html")
    clock = FakeClock()
    outcome = await run_day(conn, session, timlrx(producer, json=False), DAY, clock)
    assert outcome.attempts == 10 and not outcome.ingested_new
    record = await fetches.get_fetch(conn, "timlrx", DAY, "markdown")
    assert record.status == "failed" and record.detail.endswith("not a digest: no '## Papers for YYYY-MM-DD' heading")
    assert not await fetches.day_is_missing(conn, DAY)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3  # the 503, the change to a broken answer, the final failure: not one per retry
    assert await library_state(conn) == ([], None, [], None)


async def test_after_the_deadline_one_final_attempt_is_made(conn, session, producer):
    clock = FakeClock(datetime(2025, 2, 24, 9, 0, tzinfo=UTC))  # catching up on Saturday, on Monday
    outcome = await run_day(conn, session, timlrx(producer), WEEKEND, clock)
    assert (outcome.attempts, clock.sleeps) == (1, [])
    assert [r.status for r in await fetches.fetches_for_day(conn, WEEKEND)] == ["missing", "missing"]


async def test_a_day_already_ingested_is_not_fetched_again(conn, session, producer):
    await run_day(conn, session, timlrx(producer), DAY, FakeClock())
    assert producer.total == 2
    again = await run_day(conn, session, timlrx(producer), DAY, FakeClock(), on_ingested=_never)
    assert (again.attempts, again.already_ingested, again.ingested_new, again.complete) == (
        0, ("markdown", "json"), False, True,
    )
    assert producer.total == 2


async def test_a_failing_callback_does_not_stop_the_fetch(conn, session, producer, caplog):
    producer.script(JSON, 404, "ok")

    async def broken(day: date) -> None:
        raise RuntimeError("discord is down")

    outcome = await run_day(conn, session, timlrx(producer), DAY, FakeClock(), on_ingested=broken)
    assert outcome.complete and outcome.attempts == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("discord is down" in str(r.exc_info[1]) for r in errors)


# --------------------------------------------------------------------------------------------
# Folder sources and every source at once
# --------------------------------------------------------------------------------------------


async def test_a_folder_source_ingests_the_days_files(conn, session, tmp_path):
    folder = tmp_path / "clone"
    for relative in ("archive/2025/02/21.md", "daily_results/2025/02/21.json"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / "timlrx" / relative, folder / relative)
    source = SourceSettings(name="local", folder=folder)
    outcome = await run_day(conn, session, source, DAY, FakeClock())
    [result] = outcome.results.values()
    assert (result.kind, result.outcome, len(result.files), outcome.attempts) == ("folder", Outcome.INGESTED, 2, 1)
    assert result.result.new == 18
    assert (await papers.get_paper(conn, ONLY_ON_DAY)).sources == ["local", "local/json"]

    weekend = await run_day(conn, session, source, WEEKEND, FakeClock(datetime(2025, 2, 22, 6, tzinfo=UTC)))
    assert weekend.attempts == 10
    assert (await fetches.get_fetch(conn, "local", WEEKEND, "folder")).detail == "no digest for 2025-02-22"


async def test_a_folder_with_a_half_written_file_stores_only_the_whole_ones(conn, session, tmp_path):
    folder = tmp_path / "digests"
    folder.mkdir()
    markdown = (CORPUS / "timlrx/archive/2025/02/21.md").read_bytes()
    (folder / "2025-02-21.md").write_bytes(markdown[: len(markdown) // 2])
    (folder / "2025-02-21.json").write_bytes((CORPUS / "timlrx/daily_results/2025/02/21.json").read_bytes())
    clock = FakeClock()

    async def finish_writing() -> None:  # the sync job finishes the file during the first wait
        (folder / "2025-02-21.md").write_bytes(markdown)

    clock.during_sleep = finish_writing
    outcome = await run_day(conn, session, SourceSettings(name="local", folder=folder), DAY, clock)
    assert outcome.complete and outcome.attempts == 2
    record = await fetches.get_fetch(conn, "local", DAY, "folder")
    assert (record.status, record.attempts) == ("ingested", 2)
    assert (await papers.get_paper(conn, ONLY_ON_DAY)).sources == ["local", "local/json"]


async def test_fetch_all_fetches_every_source_and_survives_a_bug_in_one(conn, producer, monkeypatch, caplog):
    real_fetch_day = fetcher.fetch_day

    async def fetch_day_with_a_bug(conn, session, source, day, settings, **options):
        if source.name == "buggy":
            raise KeyError("a bug")
        return await real_fetch_day(conn, session, source, day, settings, **options)

    monkeypatch.setattr(fetcher, "fetch_day", fetch_day_with_a_bug)
    producer.script("/elsewhere/2025/02/21.md", 404)
    sources = [
        timlrx(producer),
        SourceSettings(name="buggy", markdown_url=f"{producer.base}/buggy/{{dd}}.md"),
        SourceSettings(name="late", markdown_url=f"{producer.base}/elsewhere/{{yyyy}}/{{mm}}/{{dd}}.md"),
    ]
    clock, announced = FakeClock(), []

    async def on_ingested(day: date) -> None:
        announced.append(day)

    results = await asyncio.wait_for(
        fetch_all(conn, None, sources, DAY, SETTINGS, now=clock.now, sleep=clock.sleep, rand=lambda: 0.0,
                  on_ingested=on_ingested),
        TEST_SECONDS,
    )
    assert [(r.source, r.complete, r.ingested_new) for r in results] == [
        ("timlrx", True, True), ("buggy", False, False), ("late", False, False),
    ]
    assert results[1].error == "KeyError: 'a bug'"
    assert "fetching buggy for 2025-02-21 failed" in caplog.text and "KeyError" in caplog.text
    assert announced == [DAY]
    assert (await fetches.get_fetch(conn, "late", DAY, "markdown")).status == "missing"
    assert await fetches.get_fetch(conn, "buggy", DAY, "markdown") is None


async def test_sources_ingesting_at_once_share_the_connection_safely(conn, producer):
    """Two sources' ingests interleave on one connection; each is still one whole transaction."""
    sources = [timlrx(producer)] + [
        SourceSettings(name=f"mirror{n}", markdown_url=f"{producer.base}/timlrx/archive/{{yyyy}}/{{mm}}/{{dd}}.md")
        for n in range(3)
    ]
    results = await asyncio.wait_for(fetch_all(conn, None, sources, DAY, SETTINGS), TEST_SECONDS)
    assert all(r.complete for r in results)
    listed_by = (await papers.get_paper(conn, ONLY_ON_DAY)).sources
    assert listed_by == ["mirror0", "mirror1", "mirror2", "timlrx", "timlrx/json"]
    assert await db.integrity_check(conn) == []


async def _never(day: date) -> None:
    raise AssertionError(f"nothing should have been ingested for {day}")


async def _ingest_corpus_day(conn, day: date) -> None:
    path = CORPUS / f"timlrx/archive/{day:%Y/%m/%d}.md"
    outcome = await ingest_bytes(conn, path.read_bytes(), Location(str(path), producer="timlrx"))
    assert outcome.error is None
