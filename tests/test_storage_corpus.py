"""The library built from the real corpus: four producers telling the same papers in their own words."""

from __future__ import annotations

from pathlib import Path


from digests.ingest import ingest_locations, ingest_targets
from digests.sources import expand
from storage import db
from storage.models import IngestResult
from storage.papers import get_paper, resolve_tag, tag_counts
from storage.tags import normalize_tag
from tests.backends import write_mark
from tests.conftest import CORPUS
from tests.test_storage_papers import library_state


async def test_ingesting_the_corpus_twice_changes_nothing_the_second_time(conn):
    first = await ingest_targets(conn, [str(CORPUS)])
    assert first.failed == 0 and first.result.new == 2005
    changes = await write_mark(conn)
    second = await ingest_targets(conn, [str(CORPUS)])
    assert second.result == IngestResult(unchanged=first.papers)
    assert await write_mark(conn) == changes  # not one row written
    assert await db.integrity_check(conn) == []


async def test_the_corpus_in_reverse_order_gives_the_same_library(library_path: Path, tmp_path: Path):
    """Sources and days backwards: every paper shows the same version, links and tags; the same rows."""
    reverse = await db.connect(tmp_path / "reverse.db")
    forward = await db.connect(library_path)
    try:
        summary = await ingest_locations(reverse, list(reversed(expand([str(CORPUS)]))))
        assert summary.failed == 0 and summary.result.new == 2005
        assert await library_state(reverse) == await library_state(forward)
        assert await db.integrity_check(reverse) == []
    finally:
        await reverse.close()
        await forward.close()


async def test_the_richest_version_of_the_latest_day_is_shown(library_path: Path):
    conn = await db.connect(library_path)
    try:
        paper = await get_paper(conn, "2409.17481")  # MaskLLM: three timlrx days, gabrielchua on the first
        assert paper.sources == ["gabrielchua", "timlrx", "timlrx/json"]
        assert paper.summary.startswith("- MaskLLM, a new learnable pruning method")  # timlrx, its latest day
        assert paper.github_urls == ["https://github.com/NVlabs/MaskLLM"]
        assert paper.huggingface_urls == ["https://huggingface.co/papers/2409.17481"]  # gabrielchua's, kept
        assert await resolve_tag(conn, "multi modal") is not None
        names = [tag.name for tag in await tag_counts(conn)]
        assert len({normalize_tag(name) for name in names}) == len(names)  # Multimodal/Multi-Modal are one
    finally:
        await conn.close()
