"""Before/after for storage/search.py: `python -m benchmarks.experiments DB [ROUNDS] [--before REV]`.

Runs the benchmark's search mix on an existing benchmark database (e.g. benchmarks/data/papers-1000000.db)
with storage.search as it is now and as it was at git revision REV (default HEAD, read with `git show`,
nothing in the working tree is touched), interleaved round by round so machine-load drift hits both
alike. Reports, per query and for the whole mix, p50/p95/p99 in ms, the totals each version reports,
and how many of each version's first-page hits the other also has on its first page. Writes
benchmarks/data/experiments-<db>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from types import ModuleType

import storage.search as search_now
from benchmarks.percentiles import pct
from benchmarks.run import query_mix
from benchmarks.synth import ROOT, Synth
from storage import db as storage_db


def module_at(revision: str) -> ModuleType:
    """storage/search.py as it was at `revision`, imported under another name."""
    source = subprocess.run(["git", "show", f"{revision}:storage/search.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / "search_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("search_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


async def run_query(module: ModuleType, conn, entry: dict):
    return await module.search(conn, entry["query"], tag=entry.get("tag"), since=entry.get("since"),
                               until=entry.get("until"))


async def main(path: pathlib.Path, rounds: int, revision: str) -> dict:
    versions = {"before": module_at(revision), "now": search_now}
    conn = await storage_db.connect(path)
    samples: dict[str, dict[str, list[float]]] = {v: {} for v in versions}
    pages: dict[str, dict[str, object]] = {v: {} for v in versions}
    try:
        mix = await query_mix(conn, Synth.from_corpus())
        for entry in mix:  # warm-up, and what each version answers
            for name, module in versions.items():
                page = await run_query(module, conn, entry)
                pages[name][entry["name"]] = page
        for _ in range(rounds):
            for name, module in versions.items():
                for entry in mix:
                    start = time.perf_counter()
                    await run_query(module, conn, entry)
                    samples[name].setdefault(entry["name"], []).append((time.perf_counter() - start) * 1000)
    finally:
        await conn.close()
    out = {"db": path.name, "rounds": rounds, "before": revision, "queries": {}, "mix": {}}
    for entry in mix:
        before, now = pages["before"][entry["name"]], pages["now"][entry["name"]]
        first_page = {name: [hit.paper.arxiv_id for hit in page.hits] for name, page in (("before", before), ("now", now))}
        out["queries"][entry["name"]] = {
            "query": entry["query"], "tag": entry.get("tag"),
            "since": str(entry.get("since") or ""), "until": str(entry.get("until") or ""),
            "total_before": before.total,
            "total_now": f"{now.total}{'' if getattr(now, 'total_is_exact', True) else '+'}",
            "first_page_overlap": len(set(first_page["before"]) & set(first_page["now"])),
            **{f"{name}_ms": {f"p{q}": round(pct(samples[name][entry["name"]], q), 2) for q in (50, 95)}
               for name in versions},
        }
    for name in versions:
        everything = [ms for values in samples[name].values() for ms in values]
        out["mix"][name] = {f"p{q}": round(pct(everything, q), 2) for q in (50, 95, 99)}
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db", type=pathlib.Path)
    parser.add_argument("rounds", type=int, nargs="?", default=10)
    parser.add_argument("--before", default="HEAD", help="git revision of storage/search.py to compare with")
    args = parser.parse_args()
    result = asyncio.run(main(args.db, args.rounds, args.before))
    print(json.dumps(result, indent=2))
    out = pathlib.Path(__file__).resolve().parent / "data" / f"experiments-{args.db.stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.exit(0)
