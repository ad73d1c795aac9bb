"""One storage test suite, run on each backend: SQLite, and PostgreSQL where it answers.

Tests in `tests/test_storage_*.py` (and `ALSO_ON_EACH_BACKEND`) that take `conn` (an empty library) or `library` (the corpus)
run once per backend, the PostgreSQL run marked `postgres` (skipped where absent, required in
CI). Other modules get SQLite. On PostgreSQL an empty library is a fresh schema in the test
database; the corpus is ingested once per run into a template database, copied for each test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from storage import db
from storage.postgres import scratch_schema
from tests.services import service_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQLITE_ONLY = "sqlite_only"
ALSO_ON_EACH_BACKEND = {"test_stats"}  # storage modules whose tests are not named test_storage_*


def sqlite_only(reason: str) -> pytest.MarkDecorator:
    """For a storage test whose subject exists only in SQLite (its file, a PRAGMA, its reader threads):
    its PostgreSQL run is skipped, saying `reason`, instead of faking an equivalent."""
    return getattr(pytest.mark, SQLITE_ONLY)(reason=reason)


def configure_markers(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{SQLITE_ONLY}(reason): a storage test about SQLite itself; not run on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "backend" in metafunc.fixturenames and (module.startswith("test_storage_") or module in ALSO_ON_EACH_BACKEND):
        only = metafunc.definition.get_closest_marker(SQLITE_ONLY)
        if only is None:
            metafunc.parametrize("backend", BACKENDS, indirect=True)
        else:  # not marked `postgres`: a deliberate skip, not a missing service
            skipped = pytest.param("postgres", marks=pytest.mark.skip(reason=f"SQLite only: {only.kwargs['reason']}"))
            metafunc.parametrize("backend", ["sqlite", skipped], indirect=True)


async def table_names(conn) -> list[str]:
    """The library's tables, by name."""
    if db.dialect(conn) == "postgresql":
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    async with conn.execute(sql) as cursor:
        return [row[0] for row in await cursor.fetchall()]


async def write_mark(conn):
    """A value that changes once any row of the library is written: SQLite counts changed rows
    (total_changes); on PostgreSQL every written row is a new row version (its ctid and xmin)."""
    if db.dialect(conn) != "postgresql":
        return conn.total_changes
    versions = {}
    for table in await table_names(conn):
        async with conn.execute(f'SELECT ctid::text, xmin::text FROM "{table}" ORDER BY 1') as cursor:
            versions[table] = [tuple(row) for row in await cursor.fetchall()]
    return versions


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@asynccontextmanager
async def empty_postgres_library(url: str | None = None) -> AsyncIterator[db.Library]:
    """A new library in a schema of its own, dropped afterwards."""
    async with scratch_schema(url or service_url("postgres"), "t") as schema_url:
        library = await db.connect(schema_url)
        try:
            yield library
        finally:
            await library.close()


async def create_database(url: str, name: str, template: str | None = None, options: str = "") -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "") + f" {options}")
    finally:
        await conn.close()


async def drop_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def corpus_template(corpus: str) -> str:
    """The corpus ingested into a database of its own, once per run; returns its name."""
    from digests.ingest import ingest_targets

    url = service_url("postgres")
    name = f"paperbot_corpus_{os.getpid()}"

    async def build() -> None:
        await create_database(url, name)
        library = await db.connect(with_database(url, name))
        try:
            summary = await ingest_targets(library, [corpus])
            assert summary.failed == 0, [o.error for o in summary.outcomes if o.error]
        finally:
            await library.close()

    in_thread(build())
    return name


def in_thread(coroutine) -> None:
    """Run `coroutine` to completion from sync code, even while an event loop runs (async fixtures)."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, coroutine).result()


@asynccontextmanager
async def corpus_postgres_library(template: str) -> AsyncIterator[db.Library]:
    url = service_url("postgres")
    name = f"paperbot_t_{uuid.uuid4().hex[:12]}"
    await create_database(url, name, template)
    library = await db.connect(with_database(url, name))
    try:
        yield library
    finally:
        await library.close()
        await drop_database(url, name)
