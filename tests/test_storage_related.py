"""storage.related: papers similar in content (title, tags, summary), from the library alone."""

from __future__ import annotations

import datetime as dt
import random

from storage.models import Digest
from storage.papers import ingest_digest
from storage.related import related_papers
from tests.factories import paper

DAY = dt.date(2025, 3, 3)


async def add(conn, *papers) -> None:
    await ingest_digest(conn, Digest(date=DAY, papers=list(papers)), source="s", origin="s.md", sha256="x")


async def test_papers_on_the_same_subject_come_first(conn):
    await add(
        conn,
        paper(1, title="Protein folding with diffusion", tags=["Biology"], summary="Folding proteins."),
        paper(2, title="Diffusion for protein structure", tags=["Biology"], summary="Protein folding again."),
        paper(3, title="Folding proteins faster", summary="A protein study."),
        paper(4, title="Diffusion for images", tags=["Computer Vision"], summary="Pictures."),
        *[paper(n, title=f"Robot grasping {n}", summary="Robots that grasp.") for n in range(10, 20)],
    )
    related = [p.arxiv_id for p in await related_papers(conn, "2502.00001")]
    assert set(related[:2]) == {"2502.00002", "2502.00003"}  # the protein papers before the image one
    assert related[2] == "2502.00004" and "2502.00001" not in related and len(related) <= 5


async def test_nothing_for_an_unknown_paper_or_one_whose_words_no_other_paper_has(conn):
    await add(conn, paper(1, title="Zyxwv qwerty"), paper(2, title="Robot hands"))
    assert await related_papers(conn, "2502.00009") == []
    assert await related_papers(conn, "2502.00001") == []


async def test_related_papers_in_the_real_corpus_share_tags_far_more_often_than_random_ones(library):
    rows = await (await library.execute(
        "SELECT p.arxiv_id, pt.tag_id FROM papers p JOIN paper_tags pt ON pt.paper_id = p.id"
    )).fetchall()
    tags: dict[str, set[int]] = {}
    for arxiv_id, tag in rows:
        tags.setdefault(arxiv_id, set()).add(tag)
    rng = random.Random(14)
    sample = rng.sample(sorted(tags), 40)
    shared = listed = random_shared = 0
    for arxiv_id in sample:
        for other in await related_papers(library, arxiv_id):
            listed += 1
            shared += bool(tags[arxiv_id] & tags.get(other.arxiv_id, set()))
            random_shared += bool(tags[arxiv_id] & tags[rng.choice(sorted(tags))])
    assert listed >= 150
    assert shared / listed >= random_shared / listed + 0.15
