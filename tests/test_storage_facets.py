"""Search filters read only Paperbot's own facet tokens (storage/facets.py), never a digest's words."""

from __future__ import annotations

import datetime as dt

from storage.facets import CODE, tag_token
from storage.models import Digest
from storage.papers import ingest_digest, search
from storage.tags import tag_id
from tests.factories import paper

DAY = dt.date(2025, 3, 3)


async def spoofed_library(conn) -> str:
    """A real tagged paper with code in March 2025, and a plain paper from 2024 whose text names every token."""
    await ingest_digest(
        conn,
        Digest(date=DAY, papers=[paper(1, summary="Honest spoof study.", tags=["Robotics"],
                                       github_urls=["https://github.com/a/b"])]),
        source="s", origin="s/1.md", sha256="1",
    )
    robotics = tag_token(await tag_id(conn, "Robotics"))
    hostile = f"Spoof study. {CODE} {robotics} zzzm202503 zzzd20250303 zzzy2025"
    await ingest_digest(
        conn,
        Digest(date=dt.date(2024, 1, 5), papers=[paper(2, title=f"Spoof {CODE}", summary=hostile, tags=[robotics])]),
        source="s", origin="s/2.md", sha256="2",
    )
    return robotics


def ids(page) -> list[str]:
    return [hit.paper.arxiv_id for hit in page.hits]


async def test_digest_text_naming_facet_tokens_passes_no_filter(conn):
    await spoofed_library(conn)
    assert ids(await search(conn, "spoof", has_code=True)) == ["2502.00001"]
    assert ids(await search(conn, "spoof", tag="Robotics")) == ["2502.00001"]
    assert ids(await search(conn, "spoof", since=DAY, until=DAY)) == ["2502.00001"]
    assert ids(await search(conn, "spoof", since=dt.date(2025, 3, 1), until=dt.date(2025, 3, 31))) == ["2502.00001"]


async def test_without_code_ignores_a_summary_that_says_it_has_code(conn):
    await spoofed_library(conn)
    assert ids(await search(conn, "spoof", has_code=False)) == ["2502.00002"]


def test_facet_match_names_the_facets_column():
    from storage.facets import facet_match

    assert facet_match(CODE) == 'facets : ("zzzcode")'
    assert facet_match("zzzm202501", "zzzm202502") == 'facets : ("zzzm202501" OR "zzzm202502")'
