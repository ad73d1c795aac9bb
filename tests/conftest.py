"""Shared fixtures: the real corpus as a library, and a running Paperbot on a fake Discord."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import pytest_asyncio

from digests.ingest import ingest_targets
from storage import db
from testing.fixtures import fake_discord  # noqa: F401  (a fixture)
from tests.world import world  # noqa: F401  (a fixture)
from tests.services import (  # noqa: F401  (markers redis/postgres: skipped where absent, required in CI)
    postgres_url, pytest_configure, pytest_runtest_setup, redis_url,
)

DATA = Path(__file__).parent / "data"
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

    asyncio.run(build())
    return path


@pytest.fixture
def library_path(corpus_library: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "library.db"
    shutil.copyfile(corpus_library, copy)
    return copy


@pytest_asyncio.fixture
async def conn(tmp_path: Path):
    """An empty library on a real SQLite file."""
    connection = await db.connect(tmp_path / "library.db")
    yield connection
    await connection.close()


@pytest_asyncio.fixture
async def library(library_path: Path):
    """A connection to a copy of the corpus library."""
    connection = await db.connect(library_path)
    yield connection
    await connection.close()


@pytest.fixture(autouse=True)
def quick_ambiguous_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poster's immediate retries of an ambiguous send, without the seconds of waiting between them."""
    import bot.posting.poster

    monkeypatch.setattr(bot.posting.poster, "RETRY_DELAYS", (0.01, 0.01, 0.01))
