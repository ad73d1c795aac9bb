"""The fan-out and command-latency benchmarks at toy size: their correctness figures, never their timings.

The benchmarks themselves (benchmarks/fanout.py, benchmarks/latency.py) are scripts; this only
keeps them runnable and checks what they count: every planned message posted exactly once, every
interaction answered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import attack, backends, fanout, latency


async def test_fan_out_posts_every_planned_message_once_under_discords_limits(tmp_path: Path) -> None:
    figures = await fanout.measure(5, workdir=tmp_path)

    assert figures["ledger"] == {"done": 5}
    assert figures["planned_messages"] == 5 * 3  # the benchmark's day is three compact messages
    assert (figures["duplicates"], figures["misses"], figures["ledger_ids_not_on_discord"]) == (0, 0, 0)
    assert figures["successful_requests"] >= figures["planned_messages"]
    assert figures["other_errors"] == 0 and figures["channels_with_errors"] == 0
    assert "## Delivery fan-out" in fanout.markdown(figures)


async def test_every_command_of_the_latency_mix_is_answered(corpus_library: Path, tmp_path: Path) -> None:
    figures = await latency.measure(corpus_library, rounds=1, workdir=tmp_path)

    assert figures["interactions"] == len(figures["mix"]) > 0
    assert (figures["answered"], figures["unanswered"]) == (figures["interactions"], 0)
    assert figures["error_replies"] == {}  # the mix is built from what the library holds: all find something
    assert set(figures["per_command_ms"]) == {"search", "tag", "paper", "autocomplete"}
    assert figures["bot_memory"]["peak_rss_mb"] >= figures["bot_memory"]["rss_mb"] > 0
    assert "## Command latency" in latency.markdown(figures)


async def test_the_hostile_member_benchmark_answers_every_reader_and_counts_the_attacker(corpus_library: Path) -> None:
    figures = await attack.measure(corpus_library, rounds=1)

    for run in ("alone_ms", "attacked_ms"):
        assert "unanswered" not in figures[run] and "error replies" not in figures[run]
        assert figures[run]["all"]["n"] == figures["reader_interactions_per_run"] > 0
    assert sum(figures["attacker_outcomes"].values()) > 0
    assert "## Hostile member" in attack.markdown([figures])


def test_relevance_scores_and_seeded_queries() -> None:
    from benchmarks import relevance

    assert relevance.scores([1, 3, None, 11]) == {"success_at_1": 0.25, "success_at_5": 0.5, "mrr_at_10": (1 + 1 / 3) / 4}
    papers = [(1, "2501.00001", "SmolVLM: Small Vision Language Models"), (2, "2501.00002", "Diffusion policies for robots")]
    queries = relevance.make_queries(papers, seed=3)
    assert queries == relevance.make_queries(papers, seed=3)  # the same seed, the same queries
    assert {"kind": "short name", "query": "SmolVLM", "target": "2501.00001", "title": papers[0][2]} in queries
    for query in queries:
        assert set(query["query"].split()) <= set(relevance.title_words(query["title"])) | {"SmolVLM"}


def test_relevance_reports_the_bytes_of_each_search_index(corpus_library: Path) -> None:
    from benchmarks import relevance

    sizes = relevance.index_bytes(corpus_library)

    assert set(sizes) == {*relevance.INDEXES, "library"}
    assert all(sizes[name] > 0 for name in relevance.INDEXES)
    assert sum(sizes[name] for name in relevance.INDEXES) < sizes["library"]
    assert corpus_library.stat().st_size >= sizes["library"]


@pytest.mark.postgres
async def test_both_backends_store_every_paper_and_answer_every_query(postgres_url: str, tmp_path: Path) -> None:
    figures = await backends.measure(300, postgres_url, repeat=1, iterations=1, workdir=tmp_path)

    for backend in ("sqlite", "postgresql"):
        entry = figures["backends"][backend]
        assert entry["ingest"]["papers"] == entry["stored"] == 300
        search = entry["search"]
        assert search["errors"] == {}
        assert search["answered"] == search["queries"] == len(figures["mix"]) > 0
    figures.update(date="today", seconds=0)
    assert "## SQLite and PostgreSQL at 300" in backends.markdown(figures, "python -m benchmarks.backends --size 300")
