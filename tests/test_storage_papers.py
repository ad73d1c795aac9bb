"""storage.papers on real SQLite files and on PostgreSQL: ingest, reading, tags and search."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import db, ingest
from storage.models import Digest, IngestResult, Paper, SearchPage, TagCount
from storage.papers import (
    QueryError,
    closest_tags,
    digest_days,
    get_paper,
    ingest_digest,
    latest_day,
    papers_on_day,
    papers_with_tag,
    resolve_tag,
    search,
    suggest_tags,
    tag_counts,
)
from storage.facets import tag_token
from storage.tags import normalize_tag
from tests.backends import table_names, write_mark
from tests.factories import paper

DAY1, DAY2, DAY3 = dt.date(2025, 2, 18), dt.date(2025, 2, 19), dt.date(2025, 2, 20)




def digest(day: dt.date | None, *papers: Paper) -> Digest:
    return Digest(date=day, papers=list(papers))


async def ingest_as(conn, source: str, dig: Digest, sha256: str = "sha") -> IngestResult:
    return await ingest_digest(conn, dig, source=source, origin=f"{source}/{dig.date}.md", sha256=sha256)


async def dump(conn) -> dict[str, list[tuple]]:
    """Every row of every table (FTS shadow tables included), to compare whole databases."""
    contents = {}
    for table in await table_names(conn):
        if table == "papers_fts":
            continue
        async with conn.execute(f'SELECT * FROM "{table}"') as cursor:
            contents[table] = sorted(tuple(row) for row in await cursor.fetchall())
    return contents


# --- ingest -------------------------------------------------------------------------------------


async def test_ingest_then_get_paper(conn):
    result = await ingest_as(
        conn,
        "timlrx",
        digest(DAY1, paper(1, tags=["Computer Vision"], github_urls=["https://github.com/a/b"], extra={"X": "y"})),
    )
    assert result == IngestResult(new=1)
    stored = await get_paper(conn, "2502.00001")
    assert stored.title == "Untitled study 1"
    assert stored.tags == ["Computer Vision"]
    assert stored.github_urls == ["https://github.com/a/b"]
    assert stored.extra == {"X": "y"}
    assert stored.days == [DAY1] and stored.sources == ["timlrx"]
    assert (await get_paper(conn, "https://arxiv.org/abs/2502.00001v3")).arxiv_id == "2502.00001"
    assert await get_paper(conn, "2502.99999") is None


async def test_same_digest_twice_is_all_unchanged_and_writes_nothing(conn):
    dig = digest(DAY1, paper(1, tags=["A", "B"]), paper(2), paper(3, tags=["b"]))
    assert await ingest_as(conn, "s", dig) == IngestResult(new=3)
    before, changes = await dump(conn), await write_mark(conn)
    assert await ingest_as(conn, "s", dig) == IngestResult(unchanged=3)
    assert await write_mark(conn) == changes
    assert await dump(conn) == before


async def test_digest_without_date_is_refused(conn):
    with pytest.raises(ValueError, match="has no date"):
        await ingest_as(conn, "s", digest(None, paper(1)))
    assert await get_paper(conn, "2502.00001") is None


async def test_corrected_digest_updates_and_withdraws(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1), paper(2, tags=["Old"]), paper(3)))
    corrected = digest(DAY1, paper(1, title="Fixed title"), paper(3), paper(4))
    assert await ingest_as(conn, "s", corrected, sha256="sha2") == IngestResult(new=1, updated=1, unchanged=1)
    assert (await get_paper(conn, "2502.00001")).title == "Fixed title"
    withdrawn = await get_paper(conn, "2502.00002")
    assert withdrawn is not None and withdrawn.days == [] and withdrawn.tags == []
    assert [p.arxiv_id for p in await papers_on_day(conn, DAY1)] == ["2502.00001", "2502.00003", "2502.00004"]
    assert await tag_counts(conn) == []
    assert await db.integrity_check(conn) == []


async def test_withdrawn_paper_keeps_its_other_appearances(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, tags=["T"])))
    await ingest_as(conn, "s", digest(DAY2, paper(1, tags=["T"]), paper(2)))
    await ingest_as(conn, "s", digest(DAY2, paper(2)), sha256="sha2")
    kept = await get_paper(conn, "2502.00001")
    assert kept.days == [DAY1] and kept.tags == ["T"]
    assert await db.integrity_check(conn) == []


async def test_known_paper_on_a_new_day_is_unchanged_but_recorded(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1)))
    assert await ingest_as(conn, "s", digest(DAY3, paper(1))) == IngestResult(unchanged=1)
    assert await ingest_as(conn, "other", digest(DAY2, paper(1))) == IngestResult(unchanged=1)
    stored = await get_paper(conn, "2502.00001")
    assert stored.days == [DAY1, DAY2, DAY3]
    assert stored.sources == ["other", "s"]


async def test_new_tags_from_another_source_count_as_updated(conn):
    await ingest_as(conn, "a", digest(DAY1, paper(1, tags=["NLP"])))
    assert await ingest_as(conn, "b", digest(DAY1, paper(1, tags=["nlp"]))) == IngestResult(unchanged=1)
    assert await ingest_as(conn, "c", digest(DAY1, paper(1, tags=["Robotics"]))) == IngestResult(updated=1)
    assert (await get_paper(conn, "2502.00001")).tags == ["NLP", "Robotics"]


async def test_newer_digest_wins_and_older_only_fills_gaps(conn):
    await ingest_as(conn, "s", digest(DAY2, paper(1, title="Day two title", summary="")))
    result = await ingest_as(conn, "s", digest(DAY1, paper(1, title="Day one title", summary="Filled in.")))
    assert result == IngestResult(updated=1)
    stored = await get_paper(conn, "2502.00001")
    assert (stored.title, stored.summary) == ("Day two title", "Filled in.")
    await ingest_as(conn, "s", digest(DAY3, paper(1, title="Day three title", authors=[])))
    stored = await get_paper(conn, "2502.00001")
    assert stored.title == "Day three title"
    assert stored.authors == ["Author 1"]  # an empty value never erases


async def test_reingesting_a_source_replaces_its_tags_only(conn):
    await ingest_as(conn, "a", digest(DAY1, paper(1, tags=["Vision", "Audio"])))
    await ingest_as(conn, "b", digest(DAY1, paper(1, tags=["Robotics"])))
    await ingest_as(conn, "a", digest(DAY1, paper(1, tags=["Vision"])), sha256="sha2")
    assert (await get_paper(conn, "2502.00001")).tags == ["Robotics", "Vision"]
    assert {t.name: t.count for t in await tag_counts(conn)} == {"Robotics": 1, "Vision": 1}
    assert await db.integrity_check(conn) == []


async def test_failure_mid_ingest_leaves_database_exactly_as_before(conn, monkeypatch):
    await ingest_as(conn, "s", digest(DAY1, paper(1, tags=["A"]), paper(2)))
    before = await dump(conn)
    original_write = ingest._DigestIngest.write

    async def write_then_fail(self, writes):
        await original_write(self, writes)  # papers, tags, appearances all written …
        raise RuntimeError("disk on fire")  # … then the ingest dies

    monkeypatch.setattr(ingest._DigestIngest, "write", write_then_fail)
    changed = digest(DAY2, paper(1, title="New", tags=["B"]), paper(3, tags=["C"]))
    with pytest.raises(RuntimeError, match="disk on fire"):
        await ingest_as(conn, "s", changed)
    assert not conn.in_transaction
    assert await dump(conn) == before
    assert (await search(conn, "new")).total == 0
    monkeypatch.undo()
    assert await ingest_as(conn, "s", changed) == IngestResult(new=1, updated=1)


async def test_database_error_mid_ingest_rolls_back(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1)))
    before = await dump(conn)
    if db.dialect(conn) == "postgresql":
        await conn.execute("CREATE FUNCTION explode() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'boom'; END $$")
        await conn.execute("CREATE TRIGGER explode BEFORE INSERT ON paper_tags FOR EACH ROW EXECUTE FUNCTION explode()")
    else:
        await conn.execute("CREATE TRIGGER explode BEFORE INSERT ON paper_tags BEGIN SELECT RAISE(ABORT, 'boom'); END")
    before = await dump(conn)
    with pytest.raises(Exception, match="boom"):
        await ingest_as(conn, "s", digest(DAY2, paper(2, tags=["T"]), paper(1)))
    assert await dump(conn) == before


async def test_duplicate_ids_in_one_digest_keep_the_first(conn):
    result = await ingest_as(conn, "s", digest(DAY1, paper(1, title="First"), paper(1, title="Second")))
    assert result == IngestResult(new=1)
    assert (await get_paper(conn, "2502.00001")).title == "First"


# --- several sources: idempotent, order-independent merging ------------------------------------


async def library_state(conn) -> dict:
    """Everything ingest decides, keyed by arXiv id and tag identity instead of row ids.

    Left out on purpose, as they depend on the order digests came in: tag display names
    (the first spelling seen is kept) and papers every digest dropped again (they stay,
    as they were last shown).
    """
    sql = "SELECT id, arxiv_id, first_day, last_day, facet_text FROM papers WHERE first_day IS NOT NULL"
    async with conn.execute(sql) as cursor:
        papers = {row[0]: tuple(row)[1:] for row in await cursor.fetchall()}
    async with conn.execute("SELECT id, norm FROM tags") as cursor:
        norms = {row[0]: row[1] for row in await cursor.fetchall()}
    tag_tokens = {tag_token(tag): f"tag:{norm}" for tag, norm in norms.items()}
    state: dict = {"papers": {}}
    for arxiv_id, first_day, last_day, facets in papers.values():
        stored = (await get_paper(conn, arxiv_id)).model_dump()
        stored["tags"] = sorted(normalize_tag(tag) for tag in stored["tags"])
        facets = sorted(tag_tokens.get(token, token) for token in facets.split())
        state["papers"][arxiv_id] = (stored, first_day, last_day, facets)

    async def rows(sql: str, tag_column: int | None = None, tag_list: int | None = None) -> list:
        async with conn.execute(sql) as cursor:
            found = []
            for row in await cursor.fetchall():
                row = list(row)
                row[0] = papers[row[0]][0]
                if tag_column is not None:
                    row[tag_column] = norms[row[tag_column]]
                if tag_list is not None and row[tag_list] is not None:
                    row[tag_list] = sorted(norms[tag] for tag in json.loads(row[tag_list]))
                found.append(tuple(row))
            return sorted(found, key=repr)

    state["appearances"] = await rows("SELECT paper_id, day, source, position, content_hash FROM appearances")
    state["versions"] = await rows("SELECT * FROM paper_versions", tag_list=-1)
    state["paper_tags"] = await rows("SELECT paper_id, tag_id, source FROM paper_tags", tag_column=1)
    async with conn.execute("SELECT norm, paper_count FROM tags WHERE paper_count > 0") as cursor:
        state["tag_counts"] = sorted(tuple(row) for row in await cursor.fetchall())
    return state


def source_a(day: dt.date = DAY1) -> Digest:
    return digest(
        day,
        paper(1, summary="A short one.", tags=["Vision"], github_urls=["https://github.com/a/one"]),
        paper(2, summary="Only source A has paper two.", tags=["Audio"]),
        paper(3, summary="A says three, at some length.", authors=[], huggingface_urls=["https://huggingface.co/a"]),
    )


def source_b(day: dt.date = DAY1) -> Digest:
    return digest(
        day,
        paper(3, summary="B says three.", tags=["Robotics"], github_urls=["https://github.com/b/three"]),
        paper(1, summary="B says one with a much longer summary.", tags=["vision", "NLP"],
              github_urls=["https://github.com/b/one", "https://github.com/a/one"]),
        paper(4, summary="Only B has four."),
    )


async def test_reingesting_a_source_after_another_changes_nothing(conn):
    assert await ingest_as(conn, "a", source_a()) == IngestResult(new=3)
    assert await ingest_as(conn, "b", source_b()) == IngestResult(new=1, updated=2)
    before, changes = await library_state(conn), await write_mark(conn)
    assert await ingest_as(conn, "a", source_a()) == IngestResult(unchanged=3)
    assert await ingest_as(conn, "b", source_b()) == IngestResult(unchanged=3)
    assert await write_mark(conn) == changes  # not one row written
    assert await library_state(conn) == before


async def test_ingest_order_of_sources_does_not_matter(tmp_path):
    async def build(name: str, order: list[str]) -> dict:
        connection = await db.connect(tmp_path / name)
        try:
            for source in order:
                await ingest_as(connection, source, source_a() if source == "a" else source_b())
            assert await db.integrity_check(connection) == []
            return await library_state(connection)
        finally:
            await connection.close()

    a_then_b, b_then_a = await build("ab.db", ["a", "b"]), await build("ba.db", ["b", "a"])
    assert a_then_b == b_then_a
    one, three = a_then_b["papers"]["2502.00001"][0], a_then_b["papers"]["2502.00003"][0]
    assert one["summary"] == "B says one with a much longer summary."  # same day: the richer summary
    assert one["github_urls"] == ["https://github.com/b/one", "https://github.com/a/one"]  # union, best first
    assert one["tags"] == ["nlp", "vision"]
    assert three["summary"] == "A says three, at some length."
    assert three["authors"] == ["Author 3"]  # A has none: the next best version fills in
    assert three["github_urls"] == ["https://github.com/b/three"]
    assert three["huggingface_urls"] == ["https://huggingface.co/a"]


async def test_same_day_same_richness_goes_to_the_first_source_by_name(conn):
    await ingest_as(conn, "zeta", digest(DAY1, paper(1, title="Zeta's title", summary="Same length!")))
    assert await ingest_as(conn, "alpha", digest(DAY1, paper(1, title="Alpha title", summary="Equal length"))) == (
        IngestResult(updated=1)
    )
    assert (await get_paper(conn, "2502.00001")).title == "Alpha title"


async def test_most_recent_day_wins_over_a_richer_older_version(conn):
    await ingest_as(conn, "b", digest(DAY2, paper(1, summary="Brief.", authors=[])))
    assert await ingest_as(conn, "a", digest(DAY1, paper(1, summary="Far longer and richer summary."))) == (
        IngestResult(updated=1)  # only the authors it fills in
    )
    stored = await get_paper(conn, "2502.00001")
    assert (stored.summary, stored.authors) == ("Brief.", ["Author 1"])


async def test_a_corrected_file_still_updates(conn):
    await ingest_as(conn, "a", source_a())
    await ingest_as(conn, "b", source_b())
    corrected = digest(
        DAY1, paper(1, summary="A, corrected: now the longest summary of them all."), paper(2), paper(3, summary="3.")
    )
    assert await ingest_as(conn, "a", corrected, sha256="sha2") == IngestResult(updated=3)
    assert (await get_paper(conn, "2502.00001")).summary == "A, corrected: now the longest summary of them all."
    assert (await get_paper(conn, "2502.00003")).summary == "B says three."  # A's is now the shorter
    assert (await get_paper(conn, "2502.00003")).huggingface_urls == []
    assert (await get_paper(conn, "2502.00002")).tags == []
    assert await ingest_as(conn, "a", corrected, sha256="sha2") == IngestResult(unchanged=3)
    assert await db.integrity_check(conn) == []


async def test_withdrawn_or_worsened_best_version_gives_way_to_the_next(conn):
    await ingest_as(conn, "a", source_a())
    await ingest_as(conn, "b", source_b())
    # B's day is corrected: paper 1 (B's version was shown) is gone, paper 3 loses its link.
    corrected = digest(DAY1, paper(3, summary="B says three."), paper(4, summary="Only B has four."))
    assert await ingest_as(conn, "b", corrected, sha256="sha2") == IngestResult(updated=1, unchanged=1)  # listed ones
    one = await get_paper(conn, "2502.00001")
    assert (one.summary, one.github_urls, one.tags, one.sources) == (
        "A short one.", ["https://github.com/a/one"], ["Vision"], ["a"]
    )
    assert (await get_paper(conn, "2502.00003")).github_urls == []
    assert {t.name: t.count for t in await tag_counts(conn)} == {"Audio": 1, "Vision": 1}
    assert await db.integrity_check(conn) == []


async def test_a_source_repeating_a_paper_keeps_its_latest_tags(conn):
    await ingest_as(conn, "s", digest(DAY2, paper(1, tags=["New"])))
    await ingest_as(conn, "s", digest(DAY1, paper(1, tags=["Old"])))
    assert (await get_paper(conn, "2502.00001")).tags == ["New"]
    await ingest_as(conn, "s", digest(DAY2, paper(2)), sha256="sha2")  # DAY2 no longer lists paper 1
    assert (await get_paper(conn, "2502.00001")).tags == ["Old"]
    assert await db.integrity_check(conn) == []


async def test_agreeing_sources_store_no_second_copy(conn):
    await ingest_as(conn, "a", digest(DAY1, paper(1, tags=["T"]), paper(2)))
    await ingest_as(conn, "b", digest(DAY1, paper(1, tags=["t"]), paper(2)))
    await ingest_as(conn, "a", digest(DAY2, paper(1, tags=["T"])))
    async with conn.execute("SELECT count(*) FROM paper_versions") as cursor:
        assert (await cursor.fetchone())[0] == 0
    await ingest_as(conn, "c", digest(DAY1, paper(1, summary="A longer summary from source c.")))
    async with conn.execute("SELECT day, source, title, summary, tag_ids FROM paper_versions") as cursor:
        rows = sorted(tuple(row) for row in await cursor.fetchall())
    # DAY2 stays the shown version (most recent); c's row holds only what differs from it.
    assert rows == [("2025-02-18", "c", None, "A longer summary from source c.", None)]
    assert (await get_paper(conn, "2502.00001")).summary == "Plain summary number 1."


_versions = st.fixed_dictionaries(
    {
        "title": st.sampled_from(["Title", "Title, v2"]),
        "summary": st.sampled_from(["", "Short.", "A longer summary.", "Longest summary of them all."]),
        "authors": st.sampled_from([[], ["Ann"], ["Ann", "Bo"]]),
        "github_urls": st.lists(st.sampled_from(["https://github.com/x/1", "https://github.com/x/2"]), max_size=2),
        "huggingface_urls": st.lists(st.sampled_from(["https://huggingface.co/h"]), max_size=1),
        "tags": st.lists(st.sampled_from(["Vision", "vision", "Multi-Modal", "Multimodal", "NLP"]), max_size=3),
    }
)
_digest_contents = st.dictionaries(st.integers(1, 3), _versions, max_size=3)
_digest_keys = st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([DAY1, DAY2]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(final=st.dictionaries(_digest_keys, _digest_contents, min_size=1, max_size=5), data=st.data())
async def test_state_depends_only_on_the_files_not_their_order(final, data):
    """Any order, with superseded drafts and repeats in between, ends as ingesting the final files once."""
    drafts = data.draw(st.dictionaries(st.sampled_from(sorted(final)), _digest_contents, max_size=3))
    steps = data.draw(st.permutations([*drafts.items(), *final.items(), *final.items()]))
    last = dict(steps)
    steps += [(key, final[key]) for key in final if last[key] != final[key]]  # a draft came last: correct it

    def as_digest(key, contents) -> Digest:
        return digest(key[1], *[paper(n, **fields) for n, fields in sorted(contents.items())])

    async def run(steps) -> dict:
        connection = await db.connect(":memory:")
        try:
            for key, contents in steps:
                await ingest_as(connection, key[0], as_digest(key, contents), sha256=repr(contents))
            assert await db.integrity_check(connection) == []
            for key, contents in final.items():  # any final file again: nothing to do, nothing written
                changes = connection.total_changes
                result = await ingest_as(connection, key[0], as_digest(key, contents), sha256=repr(contents))
                assert (result.new, result.updated, connection.total_changes) == (0, 0, changes)
            return await library_state(connection)
        finally:
            await connection.close()

    assert await run(steps) == await run(sorted(final.items()))


# --- tags ---------------------------------------------------------------------------------------


async def test_tags_are_case_and_space_insensitive_with_first_display_kept(conn):
    await ingest_as(conn, "a", digest(DAY1, paper(1, tags=["Computer Vision", "computer  vision "])))
    await ingest_as(conn, "b", digest(DAY1, paper(2, tags=["COMPUTER VISION"]), paper(3, tags=["NLP"])))
    assert await tag_counts(conn) == [
        TagCount(name="Computer Vision", count=2),
        TagCount(name="NLP", count=1),
    ]
    assert (await get_paper(conn, "2502.00002")).tags == ["Computer Vision"]
    assert await resolve_tag(conn, "computer   VISION") == "Computer Vision"
    assert await resolve_tag(conn, "Unknown") is None


@pytest.mark.parametrize(
    "variants",
    [
        ["Multi-Modal", "Multimodal", "multi modal", "MULTI–MODAL", "Ｍｕｌｔｉｍｏｄａｌ", " multi_modal. "],
        ["Text-to-Video", "Text to Video", "text-to-video", "TextToVideo"],
        ["Image-Text-to-Text", "Image Text to Text"],
        ["Réseaux", "RÉSEAUX", "Re\u0301seaux"],
    ],
)
def test_normalize_tag_joins_punctuation_spacing_and_case_variants(variants):
    assert len({normalize_tag(variant) for variant in variants}) == 1


def test_normalize_tag_keeps_distinct_tags_apart():
    assert normalize_tag("Text-to-Video") != normalize_tag("Video-to-Text")
    assert normalize_tag("+") != normalize_tag("-")  # symbols only: not one empty identity
    assert normalize_tag("+") and normalize_tag("—")


async def test_spelling_variants_are_one_tag_everywhere(conn):
    first = digest(DAY1, paper(1, title="Seeing and hearing", tags=["Multi-Modal"]), paper(2, tags=["Text-to-Video"]))
    second = digest(DAY1, paper(1, tags=["Multimodal"]), paper(3, title="Seeing", tags=["multimodal", "Text to Video"]))
    await ingest_as(conn, "timlrx", first)
    await ingest_as(conn, "zrohyun", second)
    assert await tag_counts(conn) == [TagCount(name="Multi-Modal", count=2), TagCount(name="Text-to-Video", count=2)]
    assert (await get_paper(conn, "2502.00003")).tags == ["Multi-Modal", "Text-to-Video"]  # first spelling shown
    assert await resolve_tag(conn, "multimodal") == await resolve_tag(conn, "MULTI MODAL") == "Multi-Modal"
    for typed in ("multi modal", "multimodal", "Multi-Mod", "timod"):
        assert [t.name for t in await suggest_tags(conn, typed)] == ["Multi-Modal"], typed
    assert [t.name for t in await suggest_tags(conn, "to video")] == ["Text-to-Video"]
    assert len(await suggest_tags(conn, " - ")) == 2  # no letters yet: everything
    assert await closest_tags(conn, "multimodel") == ["Multi-Modal"]
    assert await closest_tags(conn, "text 2 video", n=1) == ["Text-to-Video"]
    found = await search(conn, "seeing", tag="multi modal")
    assert {hit.paper.arxiv_id for hit in found.hits} == {"2502.00001", "2502.00003"}
    assert (await papers_with_tag(conn, "TEXT TO VIDEO")).total == 2
    assert [p.arxiv_id for p in await papers_on_day(conn, DAY1, tags=["multi-modal"])] == ["2502.00001", "2502.00003"]
    assert await db.integrity_check(conn) == []


async def test_tags_are_the_union_across_sources(conn):
    await ingest_as(conn, "a", digest(DAY1, paper(1, tags=["Vision"])))
    await ingest_as(conn, "b", digest(DAY2, paper(1, tags=["vision", "Robotics"])))
    assert (await get_paper(conn, "2502.00001")).tags == ["Robotics", "Vision"]
    assert {t.name: t.count for t in await tag_counts(conn)} == {"Robotics": 1, "Vision": 1}


async def test_suggest_tags_substring_most_used_first_limited(conn):
    papers = []
    for n in range(40):
        papers.append(paper(n, tags=[f"Topic {n:02d}"] + (["Popular Topic"] if n < 30 else [])))
    papers.append(paper(99, tags=["Topic 05", "Unrelated"]))
    await ingest_as(conn, "s", digest(DAY1, *papers))
    suggestions = await suggest_tags(conn, "TOPIC")
    assert len(suggestions) == 25
    assert suggestions[0] == TagCount(name="Popular Topic", count=30)
    assert suggestions[1] == TagCount(name="Topic 05", count=2)
    assert [s.name for s in suggestions[2:5]] == ["Topic 00", "Topic 01", "Topic 02"]
    assert [s.name for s in await suggest_tags(conn, "relat")] == ["Unrelated"]
    assert len(await suggest_tags(conn, "", limit=3)) == 3
    assert await suggest_tags(conn, "zzz") == []


async def test_closest_tags_for_typos(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, tags=["Computer Vision", "Robotics", "Reinforcement Learning"])))
    assert (await closest_tags(conn, "compter vison"))[0] == "Computer Vision"
    assert await closest_tags(conn, "robotcs", n=1) == ["Robotics"]
    assert await closest_tags(conn, "qqqqqq") == []


async def test_papers_with_tag_newest_first_with_total(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, tags=["T"]), paper(2, tags=["T"])))
    await ingest_as(conn, "s", digest(DAY2, paper(3, tags=["t"], summary="x" * 500), paper(4)))
    page = await papers_with_tag(conn, "T", limit=2)
    assert page.total == 3
    assert [hit.paper.arxiv_id for hit in page.hits] == ["2502.00003", "2502.00002"]
    assert page.hits[0].snippet.endswith("…") and len(page.hits[0].snippet) < 300
    assert [h.paper.arxiv_id for h in (await papers_with_tag(conn, "t", limit=2, offset=2)).hits] == ["2502.00001"]
    assert await papers_with_tag(conn, "nope", limit=5) == SearchPage(hits=[], total=0)


# --- days ---------------------------------------------------------------------------------------


async def test_appearances_across_days_and_sources(conn):
    await ingest_as(conn, "b", digest(DAY2, paper(3), paper(1)))
    await ingest_as(conn, "a", digest(DAY2, paper(2), paper(1)))
    await ingest_as(conn, "a", digest(DAY1, paper(1)))
    assert [p.arxiv_id for p in await papers_on_day(conn, DAY2)] == ["2502.00002", "2502.00001", "2502.00003"]
    assert (await get_paper(conn, "2502.00001")).days == [DAY1, DAY2]
    assert await latest_day(conn) == DAY2
    assert await digest_days(conn) == [DAY1, DAY2]
    assert await digest_days(conn, since=DAY2) == [DAY2]
    assert await digest_days(conn, until=DAY1) == [DAY1]


async def test_papers_on_day_filtered_by_any_of_tags(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, tags=["A"]), paper(2, tags=["B"]), paper(3, tags=["C"])))
    assert [p.arxiv_id for p in await papers_on_day(conn, DAY1, tags=["a", "c"])] == ["2502.00001", "2502.00003"]
    assert await papers_on_day(conn, DAY1, tags=["unknown"]) == []
    assert len(await papers_on_day(conn, DAY1, tags=[])) == 3


async def test_empty_library_and_empty_digests(conn):
    assert await latest_day(conn) is None
    assert await digest_days(conn) == []
    assert await ingest_as(conn, "s", digest(DAY3)) == IngestResult()
    assert await latest_day(conn) is None
    assert await papers_on_day(conn, DAY3) == []


# --- search -------------------------------------------------------------------------------------


async def library(conn):
    await ingest_as(
        conn,
        "s",
        digest(
            DAY1,
            paper(1, title="A survey of optimizers", summary="We compare diffusion samplers at length."),
            paper(2, title="Diffusion for video", summary="Video generation.", github_urls=["https://github.com/x/y"]),
            paper(3, title="Robot arms", summary="Grasping.", tags=["Diffusion Policy"]),
        ),
    )
    await ingest_as(
        conn,
        "s",
        digest(
            DAY2,
            paper(4, title="Language model reasons", summary="Large language model reasoning, by Aimée."),
            paper(5, title="Speech", summary="Audio *tokens* and diffusion_models [sic]."),
        ),
    )


async def test_title_hit_outranks_summary_hit(conn):
    await library(conn)
    page = await search(conn, "diffusion")
    ids = [hit.paper.arxiv_id for hit in page.hits]
    assert page.total == 4
    assert ids[0] == "2502.00002"  # title
    assert ids[1] == "2502.00003"  # tag
    assert set(ids[2:]) == {"2502.00001", "2502.00005"}  # summaries


async def test_snippets_mark_matches_in_bold_as_plain_text(conn):
    await library(conn)
    hit = (await search(conn, "samplers")).hits[0]
    assert "**samplers**" in hit.snippet
    (hit,) = (await search(conn, "tokens")).hits
    assert hit.snippet == "Audio **tokens** and diffusion_models [sic]."  # its own * dropped: ** only marks
    long = paper(9, summary=" ".join(["filler"] * 60) + " needle " + " ".join(["filler"] * 60))
    await ingest_as(conn, "s", digest(DAY3, long))
    snippet = (await search(conn, "needle")).hits[0].snippet
    assert "**needle**" in snippet and snippet.startswith("…") and snippet.endswith("…")


async def test_porter_stemming_and_diacritics(conn):
    await library(conn)
    assert [h.paper.arxiv_id for h in (await search(conn, "models")).hits] == ["2502.00004", "2502.00005"]
    assert (await search(conn, "reasoned")).total == 1
    assert (await search(conn, "aimee")).total == 1
    assert (await search(conn, "author 4")).hits[0].paper.arxiv_id == "2502.00004"


async def test_search_filters(conn):
    await library(conn)
    assert {h.paper.arxiv_id for h in (await search(conn, "diffusion", tag="diffusion policy")).hits} == {"2502.00003"}
    assert (await search(conn, "diffusion", tag="no such tag")).total == 0
    assert {h.paper.arxiv_id for h in (await search(conn, "diffusion", has_code=True)).hits} == {"2502.00002"}
    assert (await search(conn, "diffusion", has_code=False)).total == 3
    assert {h.paper.arxiv_id for h in (await search(conn, "diffusion", since=DAY2)).hits} == {"2502.00005"}
    assert (await search(conn, "diffusion", until=DAY1)).total == 3
    assert (await search(conn, "diffusion", since=DAY1, until=DAY1, has_code=True)).total == 1
    assert (await search(conn, "diffusion", since=DAY3)).total == 0


async def test_date_filter_uses_appearance_days_not_the_range(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, title="Gap paper")))
    await ingest_as(conn, "s", digest(DAY3, paper(1, title="Gap paper")))
    assert (await search(conn, "gap", since=DAY2, until=DAY2)).total == 0
    assert (await search(conn, "gap", since=DAY3)).total == 1


async def test_pagination_total_and_pages(conn):
    await ingest_as(conn, "s", digest(DAY1, *[paper(n, title=f"Graph paper {n}") for n in range(25)]))
    first = await search(conn, "graph", limit=10)
    last = await search(conn, "graph", limit=10, offset=20)
    beyond = await search(conn, "graph", limit=10, offset=40)
    assert (first.total, len(first.hits)) == (25, 10)
    assert (last.total, len(last.hits)) == (25, 5)
    assert (beyond.total, beyond.hits) == (25, [])
    every = [h.paper.arxiv_id for offset in (0, 10, 20) for h in (await search(conn, "graph", offset=offset)).hits]
    assert len(set(every)) == 25


async def test_very_common_words_rank_the_newest_matches_and_title_hits_and_page_through_all(conn, monkeypatch):
    import storage.search

    monkeypatch.setattr(storage.search, "RANKED_MATCHES", 4)
    for n in range(10):
        title = "Common ground" if n in (1, 8) else f"Untitled {n}"
        await ingest_as(conn, "s", digest(DAY1 + dt.timedelta(days=n), paper(n, title=title, summary="A common word.")))
    first = await search(conn, "common", limit=3)
    assert (first.total, first.total_is_exact) == (5, False)  # the window and an older title hit: "5+"
    assert [h.paper.arxiv_id for h in first.hits[:2]] == ["2502.00008", "2502.00001"]  # title hits, however old
    assert {h.paper.arxiv_id for h in first.hits[2:]} <= {f"2502.{n:05d}" for n in range(6, 10)}
    pages = [await search(conn, "common", limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    ids = [h.paper.arxiv_id for page in pages for h in page.hits]
    assert sorted(ids) == [f"2502.{n:05d}" for n in range(10)]
    assert ids[5:] == [f"2502.{n:05d}" for n in (5, 4, 3, 2, 0)]  # beyond the candidates: newest first


async def test_filters_follow_changes_to_tags_code_and_days(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, title="Tracked", tags=["Old tag"])))
    await ingest_as(conn, "s", digest(DAY2, paper(1, title="Tracked", tags=["New tag"], github_urls=["https://github.com/a/b"])))
    assert (await search(conn, "tracked", tag="old tag")).total == 0
    assert (await search(conn, "tracked", tag="new tag")).total == 1
    assert (await search(conn, "tracked", has_code=True)).total == 1
    assert (await search(conn, "tracked", since=DAY2, until=DAY2)).total == 1
    await ingest_as(conn, "s", digest(DAY2), sha256="sha2")  # corrected: the paper is gone from DAY2
    assert (await search(conn, "tracked", since=DAY2)).total == 0
    assert (await search(conn, "tracked", until=DAY1)).total == 1
    assert await db.integrity_check(conn) == []


async def test_filter_tokens_are_not_searchable_words(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, title="Linked", github_urls=["https://github.com/a/b"], tags=["T"])))
    assert (await search(conn, "code")).total == 0
    assert (await search(conn, "2025")).total == 0
    hit = (await search(conn, "linked", has_code=True, tag="t", since=DAY1)).hits[0]
    assert hit.snippet == "**Linked**"


async def test_date_filters_across_months_and_years(conn):
    days = [dt.date(2023, 12, 31), dt.date(2024, 1, 1), dt.date(2024, 2, 29), dt.date(2024, 3, 1), dt.date(2025, 1, 1)]
    for n, day in enumerate(days):
        await ingest_as(conn, "s", digest(day, paper(n, title="Dated")))

    async def found(since, until):
        return {h.paper.arxiv_id for h in (await search(conn, "dated", since=since, until=until, limit=50)).hits}

    assert await found(dt.date(2024, 1, 1), dt.date(2024, 12, 31)) == {"2502.00001", "2502.00002", "2502.00003"}
    assert await found(dt.date(2024, 2, 1), dt.date(2024, 2, 29)) == {"2502.00002"}
    assert await found(None, dt.date(2024, 1, 1)) == {"2502.00000", "2502.00001"}
    assert await found(dt.date(2024, 3, 1), None) == {"2502.00003", "2502.00004"}
    assert await found(dt.date(2026, 1, 1), None) == set()
    assert await found(dt.date(2024, 5, 1), dt.date(2024, 4, 1)) == set()


async def test_papers_with_a_rare_tag_newest_first(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, tags=["Rare"]), *[paper(n) for n in range(10, 70)]))
    await ingest_as(conn, "s", digest(DAY2, paper(2, tags=["rare"])))
    page = await papers_with_tag(conn, "RARE")
    assert page.total == 2
    assert [h.paper.arxiv_id for h in page.hits] == ["2502.00002", "2502.00001"]


async def test_search_updates_follow_corrections(conn):
    await ingest_as(conn, "s", digest(DAY1, paper(1, title="Old words")))
    await ingest_as(conn, "s", digest(DAY1, paper(1, title="Fresh words")), sha256="sha2")
    assert (await search(conn, "old")).total == 0
    assert (await search(conn, "fresh")).total == 1
    await ingest_as(conn, "s", digest(DAY1, paper(1, title="Fresh words", tags=["Tagged"])), sha256="sha3")
    assert (await search(conn, "tagged")).total == 1
    assert await db.integrity_check(conn) == []


@pytest.mark.parametrize(
    "text", ['"', "*", "(", ")", "NEAR", "NEAR(a b)", "-", "AND", "OR", "NOT", "title:x", "a AND", "^a", "a:b",
             '"unclosed', "-diffusion", "diffusion -", "{title}: x", "a OR OR b", "''", "\\", "%", "_"],
)
async def test_fts_syntax_never_crashes(conn, text):
    await library(conn)
    try:
        await search(conn, text)
    except QueryError as error:
        assert str(error)


async def test_nothing_to_search_is_a_friendly_error(conn):
    with pytest.raises(QueryError, match="no words to look for"):
        await search(conn, "?!")


async def test_operational_errors_from_match_become_query_errors(conn, monkeypatch):
    import storage.search

    monkeypatch.setattr(storage.search, "to_fts_query", lambda text: 'title: "x')
    with pytest.raises(QueryError, match="could not be understood"):
        await search(conn, "anything")


@pytest.fixture
async def filled(conn):
    await library(conn)
    return conn


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60) | st.lists(st.sampled_from(['"', "*", "(", "-", "NEAR", "OR", "title:", "diffusion", " "])).map("".join))
async def test_search_raises_only_query_error_on_any_text(filled, text):
    try:
        await search(filled, text, limit=3)
    except QueryError:
        pass
