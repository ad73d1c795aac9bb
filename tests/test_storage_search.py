"""storage.search's ordering and totals: candidates ranked by column-weighted BM25, the rest newest first.

RANKED_MATCHES is made small here so a few papers show what a million would: the candidates are
the newest matches plus the papers with every word in the title (however old), ranked by BM25
with title > tags > authors > summary weights; then the older matches newest first, and a total
that is exact only up to the window.
"""

from __future__ import annotations

import datetime as dt

import pytest

import storage.search
from bot import render
from storage.models import Digest, Paper, SearchPage
from storage.papers import ingest_digest, search
from tests.factories import paper

DAY = dt.date(2025, 3, 3)




async def add_days(conn, *papers: Paper) -> None:
    """One paper a day, in order: a later paper is a newer one."""
    for offset, item in enumerate(papers):
        day = DAY + dt.timedelta(days=offset)
        await ingest_digest(conn, Digest(date=day, papers=[item]), source="s", origin=f"s/{day}.md", sha256=str(day))


def numbers(page: SearchPage) -> list[int]:
    return [int(hit.paper.arxiv_id.split(".")[1]) for hit in page.hits]


async def every_page(conn, query: str, size: int = 3, **filters) -> list[int]:
    found, offset = [], 0
    while hits := numbers(await search(conn, query, limit=size, offset=offset, **filters)):
        found += hits
        offset += size
    return found


@pytest.fixture
def window_of(monkeypatch):
    def set_window(size: int) -> None:
        monkeypatch.setattr(storage.search, "RANKED_MATCHES", size)

    return set_window


async def test_title_hits_rank_first_however_old_then_tags_then_authors_then_summary(conn, window_of):
    window_of(6)
    await add_days(
        conn,
        paper(0, title="Sparse attention, an old title hit"),  # older than the window
        paper(1, summary="Sparse matrices."),
        paper(2, title="Sparse experts"),
        paper(3, authors=["Ada Sparse"]),
        paper(4, summary="Sparse codes."),
        paper(5, tags=["Sparse Models"]),
        paper(6, summary="Sparse again."),
        paper(7, title="Sparse retrieval"),
    )
    page = await search(conn, "sparse", limit=10)
    # window = papers 2..7, plus 0 for its title: titles (the longer one last), tag, author, summaries
    # (newest first among equals); then the older rest
    assert numbers(page) == [7, 2, 0, 5, 3, 6, 4, 1]
    assert (page.total, page.total_is_exact) == (7, False)


async def test_all_words_must_be_in_the_title_for_a_title_rank(conn):
    await add_days(
        conn,
        paper(1, title="Language models that plan"),
        paper(2, title="Models of everything", summary="Language, vision and sound."),
        paper(3, title="A language of shapes", summary="Shape models."),
    )
    assert numbers(await search(conn, "language models")) == [1, 3, 2]


async def test_phrase_matches_only_the_exact_phrase_title_first(conn):
    await add_days(
        conn,
        paper(1, title="Large language models at work"),
        paper(2, summary="Models of language, large and small."),  # the words, not the phrase
        paper(3, summary="We study large language models."),
        paper(4, title="Models", summary="large language model agents"),  # porter: model = models
    )
    assert numbers(await search(conn, '"large language models"')) == [1, 4, 3]


async def test_filters_hold_in_the_window_and_beyond_it(conn, window_of):
    window_of(2)
    papers = [
        paper(n, title="Graph" if n % 2 else "Untitled", summary="A graph study.", tags=["Graphs"] if n % 3 == 0 else [],
              github_urls=["https://github.com/a/b"] if n % 4 == 0 else [])
        for n in range(12)
    ]
    await add_days(conn, *papers)
    assert await every_page(conn, "graph", tag="graphs") == [9, 3, 6, 0]  # titles 9, 3 (outside the window); 6; rest
    assert await every_page(conn, "graph", has_code=True) == [8, 4, 0]
    # titles with the word in the tags too (9, 3), the other titles, the window's 10, the older rest
    assert await every_page(conn, "graph", has_code=False) == [9, 3, 11, 7, 5, 1, 10, 6, 2]
    days = {"since": DAY + dt.timedelta(days=3), "until": DAY + dt.timedelta(days=8)}
    assert await every_page(conn, "graph", **days) == [3, 7, 5, 8, 6, 4]  # title and tag, titles, window 8, rest
    assert await every_page(conn, "graph -study") == []


async def test_every_match_is_reachable_once_by_paging(conn, window_of):
    window_of(4)
    await add_days(conn, *[paper(n, title="Robot arm" if n in (2, 8) else f"Hand {n}", summary="A robot.") for n in range(11)])
    found = await every_page(conn, "robot", size=3)
    assert sorted(found) == list(range(11))
    assert found == [8, 2, 10, 9, 7, 6, 5, 4, 3, 1, 0]  # title hits (however old), window 7..10, then newest first


async def test_total_is_exact_up_to_the_window_and_a_lower_bound_beyond(conn, window_of):
    window_of(3)
    await add_days(conn, *[paper(n, title=f"Kernel {n}") for n in range(4)])
    assert (await search(conn, "kernel", since=DAY + dt.timedelta(days=1))).model_dump(include={"total", "total_is_exact"}) == {
        "total": 3, "total_is_exact": True}
    capped = await search(conn, "kernel")
    assert (capped.total, capped.total_is_exact) == (4, False)  # the window and the title hits beyond it
    assert (await search(conn, "kernel", limit=2, offset=3)).hits[0].paper.arxiv_id == "2502.00000"


def test_a_capped_total_reads_as_a_lower_bound():
    capped = render.search_results_embed(SearchPage(hits=[], total=1000, total_is_exact=False), title="x",
                                         page_number=1, page_count=200)
    exact = render.search_results_embed(SearchPage(hits=[], total=1000), title="x", page_number=1, page_count=200)
    assert capped.footer.text.endswith("1,000+ results") and exact.footer.text.endswith("1,000 results")


async def test_the_prefix_index_migration_keeps_the_library_searchable(tmp_path, monkeypatch):
    """A library made before migration 008 comes out of it with the same matches, and stays in sync."""
    from storage import db

    before = [migration for migration in db.MIGRATIONS if migration[1] < "008_fts_prefix.sql"]
    monkeypatch.setattr(db, "MIGRATIONS", before)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(before))
    conn = await db.connect(tmp_path / "old.db")
    try:
        await add_days(conn, paper(1, title="Generative video"), paper(2, summary="Generation of text."), paper(3))
        monkeypatch.undo()
        assert await db.migrate(conn) == db.SCHEMA_VERSION
        async with conn.execute("SELECT sql FROM sqlite_master WHERE name = 'papers_fts'") as cursor:
            assert "prefix = '3 4 5 6 7 8'" in (await cursor.fetchone())[0]
        assert await every_page(conn, "generat*") == [1, 2]
        await add_days(conn, paper(4, title="Generalist robots"))
        await ingest_digest(conn, Digest(date=DAY, papers=[paper(1, title="Static video")]), source="s",
                            origin="fix", sha256="fixed")
        assert await every_page(conn, "generat*") == [4, 2]
        assert await db.integrity_check(conn) == []
    finally:
        await conn.close()


# --- ranking sanity: what a member remembers ------------------------------------------------


async def test_a_paper_remembered_by_title_words_is_found_behind_many_newer_mentions(conn, window_of):
    """Two title words, shuffled: the old paper with both in its title beats newer papers that only mention them."""
    window_of(5)
    await add_days(
        conn,
        paper(1, title="Sparse mixture routing for vision transformers"),
        *[paper(n, summary=f"Transformers with a sparse twist, take {n}.") for n in range(2, 12)],
    )
    assert numbers(await search(conn, "transformers sparse"))[0] == 1


async def test_the_paper_named_by_a_short_name_beats_papers_that_mention_it(conn):
    await add_days(
        conn,
        paper(1, title="SmolVLM: small vision language models", summary="SmolVLM is small. SmolVLM runs on phones."),
        paper(2, title="Benchmarks of tiny models", summary="We compare against SmolVLM."),
        paper(3, title="Phones that see", summary="Built on SmolVLM and others."),
        paper(4, title="A long comparison of many tiny models, SmolVLM and its kin among them"),
    )
    assert numbers(await search(conn, "SmolVLM"))[0] == 1


async def test_the_named_paper_beats_more_newer_titles_sharing_its_name_than_are_scored(conn, monkeypatch):
    """Every title match is scored, however many: the oldest of them, the paper itself, still ranks first."""
    monkeypatch.setattr(storage.search, "SCORED", 3)
    await add_days(
        conn,
        paper(1, title="SmolVLM: small vision language models", summary="SmolVLM is small. SmolVLM runs on phones."),
        *[paper(n, title=f"SmolVLM for task {n}", summary="A long study of how phones run small models on "
                "device, with many measurements of speed, memory and power.") for n in range(2, 10)],
    )
    assert numbers(await search(conn, "SmolVLM"))[0] == 1


async def test_among_title_hits_the_closer_title_wins_over_the_newer_one(conn):
    """BM25 within a group: the words are most of a short title, little of a long one; recency only breaks ties."""
    await add_days(
        conn,
        paper(1, title="Diffusion policies"),
        paper(2, title="A very long survey of policies learned with diffusion for robots, cars and drones"),
    )
    assert numbers(await search(conn, "policies diffusion")) == [1, 2]


async def test_a_word_repeated_in_the_summary_counts_more_than_one_mention(conn):
    await add_days(
        conn,
        paper(1, summary="Quantization of weights: quantization-aware training and quantization tables."),
        paper(2, summary="Fast inference, with some quantization."),
    )
    assert numbers(await search(conn, "quantization")) == [1, 2]


async def test_a_rare_word_in_the_title_outweighs_a_common_one(conn):
    """IDF: the paper whose title holds the query's rare word ranks above the one whose title holds the common word."""
    await add_days(
        conn,
        *[paper(n, title=f"Learning method {n}") for n in range(10, 40)],
        paper(1, title="Gradient surgery", summary="Learning."),
        paper(2, title="Learning anew", summary="Gradient."),
    )
    assert numbers(await search(conn, "learning gradient"))[:2] == [1, 2]


async def test_a_title_match_with_a_left_out_word_anywhere_stays_out(conn, window_of):
    window_of(2)
    await add_days(
        conn,
        paper(1, title="Sparse transformers", summary="About pruning."),
        paper(2, title="Sparse transformers again", summary="Nothing else."),
        *[paper(n, summary="Sparse transformers, in passing.") for n in range(3, 8)],
    )
    found = await every_page(conn, "sparse transformers -pruning")
    assert 1 not in found and found[0] == 2 and sorted(found) == [2, 3, 4, 5, 6, 7]


async def test_title_matches_follow_changed_titles_and_filters(conn, window_of):
    window_of(2)
    await add_days(
        conn,
        paper(1, title="Graph kernels"),
        paper(2, title="Graph kernels, coded", tags=["Graphs"], github_urls=["https://github.com/a/b"]),
        *[paper(n, summary="Graph kernels in passing.") for n in range(3, 9)],
    )
    assert sorted(numbers(await search(conn, "kernels graph"))[:2]) == [1, 2]
    assert numbers(await search(conn, "kernels graph", tag="graphs")) == [2]
    assert numbers(await search(conn, "kernels graph", has_code=False))[0] == 1
    await ingest_digest(conn, Digest(date=DAY, papers=[paper(1, title="Tree kernels")]),
                        source="s", origin=f"s/{DAY}.md", sha256="changed")
    assert 1 not in numbers(await search(conn, "kernels graph"))
    assert numbers(await search(conn, "kernels tree")) == [1]


async def test_papers_matching_keeps_the_given_papers_that_match_in_search_syntax(conn):
    from storage.search import papers_matching
    from storage.search_query import QueryError

    await add_days(conn, paper(1, title="Video diffusion"), paper(2, summary="Diffusion of videos."),
                   paper(3, title="Image diffusion"), paper(4, title="Video games"))
    rows = await (await conn.execute("SELECT id, arxiv_id FROM papers")).fetchall()
    row_of = {int(arxiv_id.split(".")[1]): paper_id for paper_id, arxiv_id in rows}
    day = [row_of[1], row_of[2], row_of[4]]
    assert await papers_matching(conn, "video diffusion", day) == {row_of[1], row_of[2]}
    assert await papers_matching(conn, '"video diffusion"', day) == {row_of[1]}
    assert await papers_matching(conn, "video -diffusion", day) == {row_of[4]}
    assert await papers_matching(conn, "video", []) == set()
    with pytest.raises(QueryError):
        await papers_matching(conn, "-video", day)
