"""Shared fixtures: the real corpus as a library, and a running Paperbot on a fake Discord."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_asyncio

from digests.ingest import ingest_targets
from storage import db
from testing.fixtures import fake_discord  # noqa: F401  (a fixture)
from tests.world import world  # noqa: F401  (a fixture)
from tests.backends import (  # noqa: F401  (storage tests run on each backend)
    backend, corpus_postgres_library, corpus_template, drop_database, empty_postgres_library, in_thread, pytest_generate_tests,
)
from tests.backends import configure_markers
from tests.services import (  # noqa: F401  (markers redis/postgres: skipped where absent, required in CI)
    postgres_url, pytest_runtest_setup, redis_url, service_url,
)
from tests.services import pytest_configure as configure_services

DATA = Path(__file__).parent / "data"


def pytest_configure(config: pytest.Config) -> None:
    configure_services(config)
    configure_markers(config)
CORPUS = DATA / "corpus"


@pytest.fixture(scope="session")
def corpus_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole corpus ingested once per run; tests get their own copy (`library_path`)."""
    path = tmp_path_factory.mktemp("corpus") / "library.db"

    async def build() -> None:
        conn = await db.connect(path)
        try:
            summary = await ingest_targets(conn, [str(CORPUS)])
            assert summary.failed == 0, [o.error for o in summary.outcomes if o.error]
        finally:
            await conn.close()

    in_thread(build())
    return path


@pytest.fixture
def library_path(corpus_library: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "library.db"
    shutil.copyfile(corpus_library, copy)
    return copy


@pytest.fixture(scope="session")
def corpus_postgres(request: pytest.FixtureRequest) -> str:
    """The corpus in a PostgreSQL template database, built on first use, dropped at the end."""
    name = corpus_template(str(CORPUS))
    request.addfinalizer(lambda: in_thread(drop_database(service_url("postgres"), name)))
    return name


@pytest_asyncio.fixture
async def conn(backend: str, tmp_path: Path):
    """An empty library: a real SQLite file, or a fresh PostgreSQL schema."""
    if backend == "postgres":
        async with empty_postgres_library() as connection:
            yield connection
        return
    connection = await db.connect(tmp_path / "library.db")
    yield connection
    await connection.close()


@pytest_asyncio.fixture
async def library(backend: str, request: pytest.FixtureRequest):
    """A connection to a copy of the corpus library, on the test's backend."""
    if backend == "postgres":
        async with corpus_postgres_library(request.getfixturevalue("corpus_postgres")) as connection:
            yield connection
        return
    connection = await db.connect(request.getfixturevalue("library_path"))
    yield connection
    await connection.close()


@pytest.fixture(autouse=True)
def quick_ambiguous_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poster's immediate retries of an ambiguous send, without the seconds of waiting between them."""
    import bot.posting.poster

    monkeypatch.setattr(bot.posting.poster, "RETRY_DELAYS", (0.01, 0.01, 0.01))
