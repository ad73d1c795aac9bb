"""Measured what-ifs for storage/search.py, without touching product code: `python -m benchmarks.experiments DB`.

Runs the benchmark's search mix on an existing benchmark database (e.g. benchmarks/data/papers-100000.db)
with storage.search as it is, then with candidate changes monkeypatched in, interleaved round by round
so machine-load drift hits every variant alike. Prints per-query p50 and whole-mix p50/p95/p99.

Variants:
  current        storage.search unchanged
  snippet-range  _snippets constrains the MATCH with `rowid BETWEEN min(ids) AND max(ids)` and filters the
                 page's ids with `+rowid IN (…)`: FTS5 evaluates the query once, instead of once per id
                 (a bare `rowid IN (…)` reaches FTS5's xBestIndex as an equality, so xFilter runs — and a
                 prefix query re-expands its prefix doclist — for every id on the page)
  + capped-count snippet-range, and the total counted only up to COUNT_CAP (newest first), so a common
                 word no longer counts a million matches; changes what `total` means (a product decision)
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import time

import storage.search as search_module
from benchmarks.run import SEED, pct, product_search, query_mix
from benchmarks.synth import Synth
from storage import db as storage_db
from storage._rows import fetch_all, id_list

COUNT_CAP = 5_000
ORIGINAL_SNIPPETS = search_module._snippets
ORIGINAL_FETCH_ALL = search_module.fetch_all


async def snippets_by_range(conn, match: str, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    m = search_module
    rows = await fetch_all(
        conn,
        f"""SELECT rowid,
                   snippet(papers_fts, {m._SUMMARY_COLUMN}, ?, ?, '…', {m.SNIPPET_TOKENS}),
                   snippet(papers_fts, -1, ?, ?, '…', {m.SNIPPET_TOKENS})
            FROM papers_fts WHERE papers_fts MATCH ? AND rowid >= ? AND rowid <= ?
                              AND +rowid IN (SELECT value FROM json_each(?))""",
        (m._OPEN, m._CLOSE, m._OPEN, m._CLOSE, match, min(ids), max(ids), id_list(ids)),
    )
    return {row[0]: m._marked_snippet(row[1] if m._OPEN in (row[1] or "") else row[2] or "") for row in rows}


async def capped_fetch_all(conn, sql: str, params=()):
    if sql.startswith("SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?"):
        sql = (f"SELECT count(*) FROM (SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? "
               f"ORDER BY rowid DESC LIMIT {COUNT_CAP + 1:d})")
    return await ORIGINAL_FETCH_ALL(conn, sql, params)


VARIANTS = {
    "current": (ORIGINAL_SNIPPETS, ORIGINAL_FETCH_ALL),
    "snippet-range": (snippets_by_range, ORIGINAL_FETCH_ALL),
    "+ capped-count": (snippets_by_range, capped_fetch_all),
}


def use(variant: str) -> None:
    search_module._snippets, search_module.fetch_all = VARIANTS[variant]


async def main(path: pathlib.Path, rounds: int) -> dict:
    synth = Synth.from_corpus()
    conn = await storage_db.connect(path)
    samples = {v: {} for v in VARIANTS}
    same_results = True
    try:
        mix = await query_mix(conn, synth)
        for entry in mix:  # warm-up, and check the variants return the same page
            pages = {}
            for variant in VARIANTS:
                use(variant)
                page = await search_module.search(conn, entry["query"], tag=entry.get("tag"),
                                                  since=entry.get("since"), until=entry.get("until"))
                pages[variant] = [(h.paper.arxiv_id, h.snippet) for h in page.hits]
            same_results &= pages["current"] == pages["snippet-range"] == pages["+ capped-count"]
        for _ in range(rounds):
            for variant in VARIANTS:
                use(variant)
                for entry in mix:
                    start = time.perf_counter()
                    await product_search(conn, entry)
                    samples[variant].setdefault(entry["name"], []).append((time.perf_counter() - start) * 1000)
    finally:
        use("current")
        await conn.close()
    out = {"db": path.name, "rounds": rounds, "same_hits_and_snippets": same_results, "variants": {}}
    for variant, per_query in samples.items():
        everything = [ms for values in per_query.values() for ms in values]
        out["variants"][variant] = {
            "mix": {f"p{q}": pct(everything, q) for q in (50, 95, 99)},
            "per_query_p50": {name: pct(values, 50) for name, values in per_query.items()},
        }
    return out


if __name__ == "__main__":
    db_path = pathlib.Path(sys.argv[1])
    result = asyncio.run(main(db_path, int(sys.argv[2]) if len(sys.argv) > 2 else 10))
    print(json.dumps(result, indent=2))
    out = pathlib.Path(__file__).resolve().parent / "data" / f"experiments-{db_path.stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
