"""Known-item relevance: does search find the paper a member remembers? `python -m benchmarks.relevance`.

The library is the real corpus (tests/data/corpus, every producer), optionally followed by
synthetic distractors from benchmarks/synth.py stored AFTER the real papers (so they are the
newest). Queries are generated from a seed over the real papers only, never picked by hand:

- words: 2–3 distinct words of the title (no stop words, ≥ 3 letters), shuffled, lower case;
- short name: the single token before a title's colon (`SmolVLM: …` -> `SmolVLM`).

Each query is run through the product (`storage.papers.search`, first page of 10) and through a
baseline in the same run on the same papers: a plain FTS5 table (same tokenizer) over title,
authors, summary and tags, ranked by column-weighted bm25 (BASELINE_WEIGHTS). Reported:
success@1, success@5 and MRR@10 of the target paper, and the query latency of both.

Related papers (storage.related) are measured on the same library: how often a related paper
shares a tag with the paper, against random papers as the floor, and the latency.

`--backend sqlite,postgres` runs the same queries on the same papers in a PostgreSQL library too
(a database of its own, `paperbot_relevance_<N>`, on `--postgres-url`), where the product search
runs on the tsvector index (migration postgres/001) and the baseline is PostgreSQL's own
`ts_rank` with the same column weights (title 1, tags 0.3, authors 0.2, summary 0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import random
import re
import sqlite3
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from benchmarks.percentiles import pct
from benchmarks.synth import CORPUS, Synth
from digests.ingest import ingest_targets
from storage import db as storage_db
from storage import papers as storage_papers
from storage.search_query import QueryError, to_fts_query, to_tsquery_text

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
SEED = 14
TARGETS = 300
PAGE = 10
# Column-weighted bm25 for the baseline: title, authors, summary, tags.
BASELINE_WEIGHTS = (10.0, 2.0, 1.0, 3.0)
STOP_WORDS = frozenset(
    """a an and are as at be by can do does for from how in into is it its more not of on or our over than
    that the their this through to toward towards under using via vs what when where which who why with
    without you your we beyond""".split()
)
_WORD = re.compile(r"[^\W_]+")


# --- the queries ------------------------------------------------------------------------------


def title_words(title: str) -> list[str]:
    """Words a member could remember: lower case, no stop words or numbers, ≥ 3 letters, no repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(title.lower()):
        if len(word) >= 3 and word not in STOP_WORDS and not word.isdigit():
            seen.setdefault(word)
    return list(seen)


def short_name(title: str) -> str | None:
    """`SmolVLM` from `SmolVLM: Redefining …`: one token before the colon, or None."""
    head, colon, _ = title.partition(":")
    head = head.strip()
    if colon and head and " " not in head and len(head) <= 30 and any(c.isalpha() for c in head):
        return head
    return None


def make_queries(papers: list[tuple[int, str, str]], seed: int = SEED, targets: int = TARGETS) -> list[dict[str, Any]]:
    """Known-item queries for `targets` papers drawn with `seed` from (id, arxiv_id, title) rows."""
    rng = random.Random(seed)
    chosen = rng.sample(sorted(papers), min(targets, len(papers)))
    queries = []
    for _, arxiv_id, title in chosen:
        words = title_words(title)
        if len(words) >= 2:
            picked = rng.sample(words, min(len(words), rng.choice((2, 3))))
            rng.shuffle(picked)
            queries.append({"kind": "words", "query": " ".join(picked), "target": arxiv_id, "title": title})
        name = short_name(title)
        if name:
            queries.append({"kind": "short name", "query": name, "target": arxiv_id, "title": title})
    return queries


# --- the libraries ----------------------------------------------------------------------------


async def build_library(path: pathlib.Path, distractors: int, synth: Synth | None) -> None:
    """The real corpus, then `distractors` synthetic papers (newer ids), through the product's ingest."""
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(str(path) + suffix).unlink(missing_ok=True)
    conn = await storage_db.connect(path)
    try:
        summary = await ingest_targets(conn, [str(CORPUS)])
        assert summary.failed == 0
        if distractors:
            assert synth is not None
            for digest in synth.days(distractors, seed=1):
                await storage_papers.ingest_digest(
                    conn, digest, source="synth", origin=f"synth:{digest.date}", sha256=str(digest.date)
                )
        await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await conn.close()


def build_baseline(library: pathlib.Path, path: pathlib.Path) -> None:
    """A plain FTS5 table holding the same papers' text as the product's index (same rowids)."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(f"ATTACH DATABASE '{library}' AS lib")
    conn.execute(
        "CREATE VIRTUAL TABLE papers USING fts5 (title, authors, summary, tags, "
        "tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    conn.execute("BEGIN")
    conn.execute("INSERT INTO papers (rowid, title, authors, summary, tags) "
                 "SELECT id, title, authors, summary, tags FROM lib.paper_search_text")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE lib")
    conn.close()


def baseline_search(conn: sqlite3.Connection, query: str) -> list[int]:
    weights = ", ".join(f"{w:g}" for w in BASELINE_WEIGHTS)
    rows = conn.execute(
        f"SELECT rowid FROM papers WHERE papers MATCH ? ORDER BY bm25(papers, {weights}) LIMIT {PAGE:d}",
        (to_fts_query(query),),
    ).fetchall()
    return [row[0] for row in rows]


# --- the PostgreSQL library -------------------------------------------------------------------

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# ts_rank's weights are {D, C, B, A}: summary, tags, authors, title (migration postgres/001), as BASELINE_WEIGHTS / 10.
TS_RANK_WEIGHTS = "{0.1, 0.3, 0.2, 1.0}"


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def postgres_library(server_url: str, distractors: int, synth: Synth | None, reuse: bool):
    """The same library as build_library's in a PostgreSQL database of its own; (connection, url, build seconds)."""
    name = f"paperbot_relevance_{distractors}"
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not (reuse and exists):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
            exists = False
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    started = time.perf_counter()
    conn = await storage_db.connect(url)
    if not exists:
        summary = await ingest_targets(conn, [str(CORPUS)])
        assert summary.failed == 0
        for digest in synth.days(distractors, seed=1) if distractors and synth else ():
            await storage_papers.ingest_digest(conn, digest, source="synth", origin=f"synth:{digest.date}",
                                               sha256=str(digest.date))
        await conn.execute("VACUUM ANALYZE")  # a settled library: GIN pending lists merged, statistics read
    return conn, name, time.perf_counter() - started


async def ts_rank_search(conn, query: str) -> list[int]:
    """PostgreSQL's own ranking as the baseline: every match ordered by weighted ts_rank."""
    try:
        expression = to_tsquery_text(query)
    except QueryError:
        return []
    rows = await (await conn.execute(
        f"""SELECT id FROM papers, to_tsquery('paperbot_search', ?) AS q WHERE search_vector @@ q
            ORDER BY ts_rank('{TS_RANK_WEIGHTS}', search_vector, q) DESC, id DESC LIMIT {PAGE:d}""",
        [expression],
    )).fetchall()
    return [row[0] for row in rows]


# The full-text indexes search and related papers read (FTS5 shadow tables share the index's name).
INDEXES = {
    "papers_fts": "full-text index (ranking, related papers, snippets)",
    "papers_titles": "title index (title matches)",
    "search_words": "word index (did you mean)",
}


def index_bytes(library: pathlib.Path) -> dict[str, int]:
    """Bytes on disk of each index in INDEXES and of the whole library, from SQLite's dbstat (reads every page)."""
    conn = sqlite3.connect(f"file:{library}?mode=ro", uri=True)
    try:
        sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    finally:
        conn.close()
    out = {index: sum(size for name, size in sizes.items() if name.startswith(index + "_")) for index in INDEXES}
    out["library"] = sum(sizes.values())
    return out


# --- scoring ----------------------------------------------------------------------------------


def scores(ranks: list[int | None]) -> dict[str, float]:
    """success@1, success@5 and MRR@10 from each query's 1-based rank of its target (None: not in the top 10)."""
    n = len(ranks) or 1
    return {
        "success_at_1": sum(1 for r in ranks if r == 1) / n,
        "success_at_5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr_at_10": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
    }


def _rank(ids: list[int], target: int) -> int | None:
    return ids.index(target) + 1 if target in ids else None


# The benchmark's own bookkeeping reads (every real paper, at 1M on a busy machine) may pass the product's 10 s
# cap on any read; the product's searches and related-paper lookups keep their own budgets.
BOOKKEEPING_READ_SECONDS = 600.0


async def measure_size(
    distractors: int, synth: Synth | None, reuse: bool, backend: str = "sqlite", postgres_url: str = POSTGRES_URL
) -> dict[str, Any]:
    storage_db.READ_BUDGET_SECONDS = max(storage_db.READ_BUDGET_SECONDS, BOOKKEEPING_READ_SECONDS)
    DATA.mkdir(parents=True, exist_ok=True)
    if backend == "postgres":
        conn, database, build_s = await postgres_library(postgres_url, distractors, synth, reuse)
        base = None
        (db_bytes,) = await (await conn.execute("SELECT pg_database_size(?)", [database])).fetchone()

        async def baseline_search_of(query: str) -> list[int]:
            return await ts_rank_search(conn, query)
    else:
        library = DATA / f"relevance-{distractors}.db"
        baseline = DATA / f"relevance-{distractors}-bm25.db"
        started = time.perf_counter()
        if not (reuse and library.exists()):
            await build_library(library, distractors, synth)
        build_s = time.perf_counter() - started
        if not (reuse and baseline.exists()):
            build_baseline(library, baseline)
        db_bytes = library.stat().st_size
        conn = await storage_db.connect(library)
        base = sqlite3.connect(str(baseline))

        async def baseline_search_of(query: str) -> list[int]:
            return baseline_search(base, query)
    try:
        real = await (await conn.execute(
            "SELECT p.id, p.arxiv_id, p.title FROM papers p WHERE EXISTS "
            "(SELECT 1 FROM appearances a WHERE a.paper_id = p.id AND a.source != 'synth')")).fetchall()
        ids_by_arxiv = {arxiv_id: paper_id for paper_id, arxiv_id, _ in real}
        (papers_total,) = await (await conn.execute("SELECT count(*) FROM papers")).fetchone()
        queries = make_queries([tuple(row) for row in real])
        for q in queries:  # warm-up, both sides
            await storage_papers.search(conn, q["query"], limit=PAGE)
            await baseline_search_of(q["query"])
        product_ms, baseline_ms = [], []
        for q in queries:
            target = ids_by_arxiv[q["target"]]
            start = time.perf_counter()
            page = await storage_papers.search(conn, q["query"], limit=PAGE)
            product_ms.append((time.perf_counter() - start) * 1000)
            q["product_rank"] = _rank([ids_by_arxiv.get(h.paper.arxiv_id, -1) for h in page.hits], target)
            start = time.perf_counter()
            found = await baseline_search_of(q["query"])
            baseline_ms.append((time.perf_counter() - start) * 1000)
            q["baseline_rank"] = _rank(found, target)
        related = await measure_related(conn, [(ids_by_arxiv[q["target"]], q["target"]) for q in queries if q["kind"] == "words"])
    finally:
        if base is not None:
            base.close()
        await conn.close()
    by_kind: dict[str, Any] = {}
    for kind in ("all", "words", "short name"):
        chosen = [q for q in queries if kind == "all" or q["kind"] == kind]
        by_kind[kind] = {
            "queries": len(chosen),
            "product": scores([q["product_rank"] for q in chosen]),
            "baseline": scores([q["baseline_rank"] for q in chosen]),
        }
    return {
        "backend": backend,
        "distractors": distractors,
        "papers": papers_total,
        "real_papers": len(real),
        "build_seconds": build_s,
        "db_bytes": db_bytes,
        "index_bytes": index_bytes(library) if backend == "sqlite" else None,
        "scores": by_kind,
        "latency_ms": {
            "product": {"p50": pct(product_ms, 50), "p95": pct(product_ms, 95), "p99": pct(product_ms, 99)},
            "baseline": {"p50": pct(baseline_ms, 50), "p95": pct(baseline_ms, 95), "p99": pct(baseline_ms, 99)},
        },
        "related": related,
        "queries": queries,
    }


async def measure_related(conn, papers: list[tuple[int, str]]) -> dict[str, Any] | None:
    """Share of related papers that have a tag in common with the paper, beside random papers; latency."""
    try:
        from storage import related as storage_related
    except ImportError:
        return None
    rng = random.Random(SEED)
    (max_id,) = await (await conn.execute("SELECT max(id) FROM papers")).fetchone()

    async def tags_of(paper_id: int) -> set[int]:
        rows = await (await conn.execute("SELECT DISTINCT tag_id FROM paper_tags WHERE paper_id = ?", (paper_id,))).fetchall()
        return {row[0] for row in rows}

    async def id_of(arxiv_id: str) -> int:
        return (await (await conn.execute("SELECT id FROM papers WHERE arxiv_id = ?", (arxiv_id,))).fetchone())[0]

    shared = total = random_shared = random_total = 0
    times = []
    for _, arxiv_id in papers:
        await storage_related.related_papers(conn, arxiv_id)  # warm-up
    for paper_id, arxiv_id in papers:
        own = await tags_of(paper_id)
        if not own:
            continue
        start = time.perf_counter()
        found = await storage_related.related_papers(conn, arxiv_id)
        times.append((time.perf_counter() - start) * 1000)
        for other in found:
            total += 1
            shared += bool(own & await tags_of(await id_of(other.arxiv_id)))
        for _ in range(len(found) or 5):
            random_total += 1
            random_shared += bool(own & await tags_of(rng.randint(1, max_id)))
    return {
        "papers": len(times),
        "related_listed": total,
        "share_with_common_tag": shared / total if total else 0.0,
        "random_share_with_common_tag": random_shared / random_total if random_total else 0.0,
        "latency_ms": {"p50": pct(times, 50), "p95": pct(times, 95), "p99": pct(times, 99)} if times else {},
    }


# --- report -----------------------------------------------------------------------------------


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "## Relevance: known-item search (`benchmarks/relevance.py`)",
        "",
        f"Real corpus papers as targets; {results[0]['scores']['all']['queries']} queries from seed {SEED} "
        "(2–3 shuffled title words, and short names before a colon); synthetic distractors stored after the "
        f"real papers. Baseline: plain FTS5 over the same papers, `bm25` weighted {BASELINE_WEIGHTS} "
        "(title, authors, summary, tags), same run.",
        "",
        "| library | queries | product s@1 / s@5 / MRR@10 | bm25 baseline s@1 / s@5 / MRR@10 | product p50 / p95 ms | baseline p50 / p95 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for kind in ("all", "words", "short name"):
            s = r["scores"][kind]
            p, b = s["product"], s["baseline"]
            label = f"{r['papers']:,} papers ({r['real_papers']:,} real + {r['distractors']:,} synthetic)"
            lat = r["latency_ms"]
            lines.append(
                f"| {label}, {kind} | {s['queries']} | {p['success_at_1']:.3f} / {p['success_at_5']:.3f} / {p['mrr_at_10']:.3f} "
                f"| {b['success_at_1']:.3f} / {b['success_at_5']:.3f} / {b['mrr_at_10']:.3f} "
                + (f"| {lat['product']['p50']:.2f} / {lat['product']['p95']:.2f} | {lat['baseline']['p50']:.2f} / {lat['baseline']['p95']:.2f} |"
                   if kind == "all" else "| | |")
            )
    related = [r for r in results if r.get("related")]
    if related:
        lines += ["", "Related papers (`storage.related`, up to 5 per paper, for the word-query targets that have tags):", "",
                  "| library | papers | related listed | share with a common tag | random papers (floor) | p50 / p95 / p99 ms |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in related:
            x = r["related"]
            lat = x["latency_ms"]
            lines.append(f"| {r['papers']:,} | {x['papers']} | {x['related_listed']} | {x['share_with_common_tag']:.1%} | "
                         f"{x['random_share_with_common_tag']:.1%} | {lat.get('p50', 0):.2f} / {lat.get('p95', 0):.2f} / {lat.get('p99', 0):.2f} |")
    sized = [r for r in results if r.get("index_bytes")]
    if sized:
        lines += ["", "Bytes per paper on disk (SQLite `dbstat`, each index with its shadow tables):", "",
                  "| library | " + " | ".join(f"`{name}` {what}" for name, what in INDEXES.items()) + " | whole library |",
                  "| --- | " + " | ".join("---" for _ in INDEXES) + " | --- |"]
        for r in sized:
            b = r["index_bytes"]
            lines.append(f"| {r['papers']:,} | " + " | ".join(f"{b[name] / r['papers']:,.0f} B" for name in INDEXES)
                         + f" | {b['library'] / r['papers']:,.0f} B ({b['library'] / 1e9:.2f} GB) |")
    return "\n".join(lines) + "\n"


def markdown_backends(results: list[dict[str, Any]]) -> str:
    """Each library's figures on each backend side by side (`--backend sqlite,postgres`)."""
    lines = [
        "| library | backend | queries | product s@1 / s@5 / MRR@10 | baseline s@1 / s@5 / MRR@10 | product p50 / p95 ms | baseline p50 / p95 ms | related: common tag (floor) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        baseline = "FTS5 bm25" if r.get("backend", "sqlite") == "sqlite" else "ts_rank"
        for kind in ("all", "words", "short name"):
            s = r["scores"][kind]
            p, b = s["product"], s["baseline"]
            lat = r["latency_ms"]
            x = r.get("related") or {}
            lines.append(
                f"| {r['papers']:,} papers ({r['distractors']:,} synthetic), {kind} | {r.get('backend', 'sqlite')} "
                f"(baseline {baseline}) | {s['queries']} "
                f"| {p['success_at_1']:.3f} / {p['success_at_5']:.3f} / {p['mrr_at_10']:.3f} "
                f"| {b['success_at_1']:.3f} / {b['success_at_5']:.3f} / {b['mrr_at_10']:.3f} "
                + (f"| {lat['product']['p50']:.2f} / {lat['product']['p95']:.2f} "
                   f"| {lat['baseline']['p50']:.2f} / {lat['baseline']['p95']:.2f} "
                   f"| {x.get('share_with_common_tag', 0):.1%} ({x.get('random_share_with_common_tag', 0):.1%}) |"
                   if kind == "all" else "| | | |")
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distractors", default="0,3000,100000", help="comma-separated synthetic paper counts")
    parser.add_argument("--reuse", action="store_true", help="reuse libraries already built in benchmarks/data/")
    parser.add_argument("--backend", default="sqlite",
                        help="comma-separated backends to run on: sqlite, postgres (a database per library size)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="PostgreSQL server for --backend postgres")
    parser.add_argument("--out", default=str(DATA / "results-relevance.json"))
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backend.split(",") if name.strip()]
    synth = Synth.from_corpus()
    results = []
    for distractors in (int(x) for x in args.distractors.split(",") if x.strip()):
        for backend in backends:
            print(f"relevance with {distractors:,} distractors on {backend} …", flush=True)
            result = asyncio.run(measure_size(distractors, synth, args.reuse, backend, args.postgres_url))
            a = result["scores"]["all"]
            print(f"  product {a['product']}  baseline {a['baseline']}  latency {result['latency_ms']}", flush=True)
            results.append(result)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(markdown_backends(results) if len(backends) > 1 or backends != ["sqlite"] else markdown(results))


if __name__ == "__main__":
    main()
