"""storage.vocabulary: "did you mean …?" from the words of the library's titles and tags."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import db
from storage.models import Digest
from storage.papers import ingest_digest
from storage.vocabulary import did_you_mean
from tests.backends import empty_postgres_library
from tests.factories import paper

DAY = dt.date(2025, 3, 3)


async def add(conn, *papers, day: dt.date = DAY) -> None:
    await ingest_digest(conn, Digest(date=day, papers=list(papers)), source="s", origin=f"{day}.md", sha256=str(day))


async def test_typos_in_the_real_corpus_are_corrected(library):
    assert await did_you_mean(library, "reinforcment lerning") == "reinforcement learning"
    assert await did_you_mean(library, "difusion modles") == "diffusion models"  # a swap is one edit


async def test_the_query_syntax_is_kept_around_the_corrected_words(library):
    assert await did_you_mean(library, '"lange languge" -robot') == '"large language" -robot'


async def test_tag_words_are_in_the_vocabulary(conn):
    await add(conn, paper(1, title="Grasping", tags=["Robotics"]))
    assert await did_you_mean(conn, "robtics") == "robotics"


async def test_no_suggestion_for_known_words_gibberish_or_a_correction_that_finds_nothing(conn):
    await add(conn, paper(1, title="Sparse attention", tags=["Efficiency"]), paper(2, title="Dense retrieval"))
    assert await did_you_mean(conn, "sparse dense") is None  # every word is known: nothing to correct
    assert await did_you_mean(conn, "qwxzy") is None
    assert await did_you_mean(conn, "sprase", tag="Robotics") is None  # no paper passes the filter
    assert await did_you_mean(conn, "sprase attenton") == "sparse attention"


async def test_the_vocabulary_follows_changed_and_new_titles(conn):
    await add(conn, paper(1, title="Quantum annealing"))
    assert await did_you_mean(conn, "quantun") == "quantum"
    await add(conn, paper(1, title="Classical annealing"), paper(2, title="Tensor networks"), day=DAY + dt.timedelta(days=1))
    assert await did_you_mean(conn, "quantun") is None  # the old title's word is gone
    assert await did_you_mean(conn, "tensr") == "tensor"


async def test_a_library_made_before_the_vocabulary_gets_one(tmp_path, monkeypatch):
    before = [migration for migration in db.MIGRATIONS if migration[1] < "012"]
    monkeypatch.setattr(db, "MIGRATIONS", before)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(before))
    conn = await db.connect(tmp_path / "old.db")
    try:
        await add(conn, paper(1, title="Protein folding"))
        monkeypatch.undo()
        assert await db.migrate(conn) == db.SCHEMA_VERSION
        assert await did_you_mean(conn, "protien") == "protein"
        assert await db.integrity_check(conn) == []
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_a_postgres_library_made_before_the_vocabulary_gets_one(monkeypatch):
    from storage import postgres

    before = [migration for migration in postgres.MIGRATIONS if migration[1] < "012"]
    monkeypatch.setattr(postgres, "MIGRATIONS", before)
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", len(before))
    async with empty_postgres_library() as conn:
        await add(conn, paper(1, title="Protein folding"), paper(2, title="Protein design"))
        monkeypatch.undo()
        assert await postgres.migrate(conn) == db.SCHEMA_VERSION
        assert await did_you_mean(conn, "protien") == "protein"
        rows = await (await conn.execute("SELECT papers FROM search_words WHERE word = 'protein'")).fetchall()
        assert rows[0][0] == 2
