"""SQLite and PostgreSQL side by side, in one run: the same papers ingested, then the same search mix.

`python -m benchmarks.backends --size 100000 --postgres postgresql://postgres@127.0.0.1:5432/test`

The same N synthetic papers (benchmarks/synth.py, seed 1) go through `storage.papers.ingest_digest`
into a fresh SQLite file and a fresh PostgreSQL schema (dropped afterwards); only the ingest calls
are timed (run.ingest_timed). The PostgreSQL schema is then `VACUUM ANALYZE`d, as a settled library
would be (benchmarks/relevance.py does the same). Then run.query_mix through run.product_search on
both, the backends alternating repeat by repeat so a change in the machine's load hits both alike.
Appends a "SQLite and PostgreSQL at N" section to benchmarks/results.md unless `--no-write`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import pathlib
import sys
import time
import uuid
from typing import Any

import asyncpg

from benchmarks.percentiles import pct
from benchmarks.run import DATA, _digests, _fresh, ingest_timed, product_search, query_mix, spread
from benchmarks.synth import Synth
from storage import db as storage_db
from storage.postgres import drop_schema, with_schema

HERE = pathlib.Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


async def _vacuum_analyze(server_url: str, schema: str) -> float:
    """VACUUM ANALYZE this schema's tables only (the test database is shared); returns seconds taken."""
    started = time.perf_counter()
    admin = await asyncpg.connect(server_url)
    try:
        tables = await admin.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        for row in tables:
            await admin.execute(f'VACUUM ANALYZE "{schema}"."{row[0]}"')
    finally:
        await admin.close()
    return time.perf_counter() - started


async def _stored(conn) -> int:
    return (await (await conn.execute("SELECT count(*) FROM papers")).fetchone())[0]


async def _search_repeat(conn, mix: list[dict[str, Any]], iterations: int, per_query: dict, errors: dict) -> list[float]:
    """One repeat: `iterations` passes over the mix; every answered query's ms (failures counted by name)."""
    samples = []
    for _ in range(iterations):
        for entry in mix:
            start = time.perf_counter()
            try:
                await product_search(conn, entry)
            except Exception as error:  # counted, not hidden: the report says which query failed and how
                errors[f"{entry['name']}: {type(error).__name__}"] = errors.get(f"{entry['name']}: {type(error).__name__}", 0) + 1
                continue
            ms = (time.perf_counter() - start) * 1000
            samples.append(ms)
            per_query[entry["name"]].append(ms)
    return samples


async def measure(size: int, postgres_url: str = POSTGRES_URL, repeat: int = 5, iterations: int = 10,
                  workdir: pathlib.Path = DATA) -> dict[str, Any]:
    """Ingest `size` papers into each backend, then search both; figures only (no files written but the SQLite library)."""
    workdir.mkdir(parents=True, exist_ok=True)
    synth = Synth.from_corpus()
    digests = _digests(synth, size, {})
    path = workdir / f"backends-{size}.db"
    schema = f"bench_backends_{uuid.uuid4().hex[:10]}"
    figures: dict[str, Any] = {"size": size, "repeat": repeat, "iterations": iterations,
                               "loadavg_start": os.getloadavg(), "backends": {}}
    _fresh(path)
    conns: dict[str, Any] = {}
    try:
        conns["sqlite"] = await storage_db.connect(path)
        conns["postgresql"] = await storage_db.connect(with_schema(postgres_url, schema))
        for backend in BACKENDS:
            print(f"ingest {size:,} into {backend} …", flush=True)
            ingest = await ingest_timed(conns[backend], digests, 10, size)
            entry = {"ingest": ingest, "stored": await _stored(conns[backend])}
            if backend == "postgresql":
                entry["vacuum_analyze_s"] = await _vacuum_analyze(postgres_url, schema)
            figures["backends"][backend] = entry
            print(f"  {ingest['papers_per_s']:,.0f} papers/s", flush=True)
        figures["loadavg_after_ingest"] = os.getloadavg()
        mixes = {b: await query_mix(conns[b], synth) for b in BACKENDS}
        per_query = {b: {e["name"]: [] for e in mixes[b]} for b in BACKENDS}
        errors: dict[str, dict[str, int]] = {b: {} for b in BACKENDS}
        for b in BACKENDS:  # warm-up pass, and what each backend reports for each query
            figures["backends"][b]["totals"] = {e["name"]: await product_search(conns[b], e) for e in mixes[b]}
        stats = {b: {"p50": [], "p95": [], "p99": []} for b in BACKENDS}
        answered = {b: 0 for b in BACKENDS}
        for r in range(repeat):
            for b in BACKENDS if r % 2 == 0 else reversed(BACKENDS):
                samples = await _search_repeat(conns[b], mixes[b], iterations, per_query[b], errors[b])
                answered[b] += len(samples)
                for q in (50, 95, 99):
                    stats[b][f"p{q}"].append(pct(samples, q))
            print(f"  search repeat {r + 1}/{repeat}: " + ", ".join(
                f"{b} p95 {stats[b]['p95'][-1]:.1f} ms" for b in BACKENDS), flush=True)
        for b in BACKENDS:
            figures["backends"][b]["search"] = {
                "queries": repeat * iterations * len(mixes[b]),
                "answered": answered[b],
                "errors": errors[b],
                "whole_mix": {q: spread(v) for q, v in stats[b].items()},
                "per_query": {name: {"p50": pct(s, 50), "p95": pct(s, 95), "max": max(s, default=float("nan"))}
                              for name, s in per_query[b].items()},
            }
        figures["mix"] = [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in e.items()}
                          for e in mixes["sqlite"]]
        figures["sqlite_bytes"] = path.stat().st_size
        figures["postgresql_bytes"] = await _schema_bytes(conns["postgresql"], schema)
    finally:
        for conn in conns.values():
            await conn.close()
        await drop_schema(postgres_url, schema)
        _fresh(path)
    figures["loadavg_end"] = os.getloadavg()
    return figures


async def _schema_bytes(conn, schema: str) -> int:
    row = await (await conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind IN ('r', 'm')",
        [schema])).fetchone()
    return int(row[0])


def _s(d: dict[str, float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(d['median'])} ({fmt.format(d['min'])} – {fmt.format(d['max'])})"


def markdown(figures: dict[str, Any], command: str, reading: str = "") -> str:
    """The results.md section: ingest and search side by side, with the load the machine was under."""
    size = figures["size"]
    b = figures["backends"]
    load = " / ".join(f"{figures[k][0]:.1f}" for k in ("loadavg_start", "loadavg_after_ingest", "loadavg_end"))
    lines = [
        f"## SQLite and PostgreSQL at {size // 1000}k" if size >= 1000 else f"## SQLite and PostgreSQL at {size}",
        "",
        f"Measured {figures['date']} with `{command}` (benchmarks/backends.py): one run, the same {size:,} synthetic "
        f"papers (seed 1) through `storage.papers.ingest_digest` into a fresh SQLite file and a fresh PostgreSQL 15 "
        f"schema (local server, `VACUUM ANALYZE`d after the ingest, dropped afterwards), then the 12-query mix of "
        f"benchmarks/run.py through `storage.papers.search` on both, {figures['repeat']} repeats × "
        f"{figures['iterations']} passes, the backends alternating repeat by repeat. Load average (1 min) at start / "
        f"after ingest / end: {load}, on 2 shared cores that other helpers were using for their own benchmarks and "
        f"tests: absolute figures are pessimistic and noisy; the two backends only compare within this run.",
        "",
        "| backend | papers stored | ingest papers/s | by tenth of the load | search p50 ms | p95 ms | p99 ms | answered | size |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label, size_key in (("sqlite", "SQLite", "sqlite_bytes"), ("postgresql", "PostgreSQL", "postgresql_bytes")):
        e, s = b[name], b[name]["search"]
        tenths = ", ".join(f"{x:,.0f}" for x in e["ingest"]["block_papers_per_s"])
        lines.append(f"| {label} | {e['stored']:,} | {e['ingest']['papers_per_s']:,.0f} | {tenths} | "
                     f"{_s(s['whole_mix']['p50'])} | {_s(s['whole_mix']['p95'])} | {_s(s['whole_mix']['p99'])} | "
                     f"{s['answered']:,} / {s['queries']:,} | {figures[size_key] / 1e6:,.0f} MB |")
    lines += ["", f"`VACUUM ANALYZE` of the PostgreSQL schema after the ingest (not in the ingest rate): "
                  f"{b['postgresql']['vacuum_analyze_s']:.1f} s.", "",
              "Per query, all samples pooled (p50 / p95 ms), and the total each backend reports:", "",
              "| query | filters | SQLite | PostgreSQL | SQLite total | PostgreSQL total |", "| --- | --- | --- | --- | --- | --- |"]
    for q in figures["mix"]:
        filters = ", ".join(x for x in (f"tag {q['tag']}" if q.get("tag") else "",
                                        f"{q['since']}..{q['until']}" if q.get("since") else "") if x) or "–"
        cells = [f"{b[n]['search']['per_query'][q['name']]['p50']:.1f} / {b[n]['search']['per_query'][q['name']]['p95']:.1f}"
                 for n in BACKENDS]
        lines.append(f"| {q['name']}: `{q['query']}` | {filters} | {cells[0]} | {cells[1]} | "
                     f"{b['sqlite']['totals'][q['name']]} | {b['postgresql']['totals'][q['name']]} |")
    for n in BACKENDS:
        if b[n]["search"]["errors"]:
            lines.append(f"\n{n} failures: " + ", ".join(f"{k} ×{v}" for k, v in b[n]["search"]["errors"].items()))
    if reading:
        lines += ["", reading]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="papers in each library")
    parser.add_argument("--postgres", default=POSTGRES_URL, help="PostgreSQL server (a throwaway schema is made in it)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of the search mix")
    parser.add_argument("--iterations", type=int, default=10, help="passes over the mix per repeat")
    parser.add_argument("--json", default=str(DATA / "results-backends.json"), help="where the raw figures go")
    parser.add_argument("--no-write", action="store_true", help="do not append the section to benchmarks/results.md")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.backends " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    figures = asyncio.run(measure(args.size, args.postgres, args.repeat, args.iterations))
    figures["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    figures["seconds"] = time.perf_counter() - started
    pathlib.Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    section = markdown(figures, command)
    print(section)
    if not args.no_write:
        results = HERE / "results.md"
        text = results.read_text(encoding="utf-8").rstrip("\n")
        results.write_text(text + "\n\n" + section, encoding="utf-8")
    print(f"took {figures['seconds']:.0f} s; raw figures in {args.json}")


if __name__ == "__main__":
    main()
