"""Every Paperbot storage benchmark in one run: `python -m benchmarks.run [--sizes 10000,100000] [--repeat 5]`.

Writes benchmarks/results.md and benchmarks/results.json (see benchmarks/README.md).
Databases go to benchmarks/data/ (git-ignored). Each product figure is measured
beside its baselines in the same run, on the same synthetic data.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import pathlib
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks import attack, fanout, latency, relevance
from benchmarks.percentiles import pct
from benchmarks.synth import ROOT, Synth, corpus_files
from storage import db as storage_db
from storage import papers as storage_papers
from storage.search_query import to_fts_query

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
SOURCE = "synth"
SEED = 1
CACHE_IN_MEMORY_UP_TO = 200_000
SLOW_MS = 100.0  # larger sizes are regenerated (deterministically) for each pass

TARGETS = {
    "parse": "parse never the ingest bottleneck (parse papers/s ≥ ingest papers/s)",
    "ingest": "ingest ≥ 50% of the bare executemany ceiling at 1M",
    "search_p95": "search p95 ≤ 50 ms for the whole mix at 1M",
    "search_p99": "search p99 ≤ 100 ms for the whole mix at 1M",
    "autocomplete_p99": "autocomplete p99 ≤ 10 ms",
    "rss": "peak RSS < 150 MB (process opening the largest DB and running the search mix)",
    "bot_rss": "peak RSS of the running bot < 150 MB (its own process, serving the command mix)",
    "fanout": "delivery to 1,000 channels ≥ 90% of the 50 requests/s ceiling, 0 duplicates, 0 misses",
}


# --- small helpers -----------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of per-repeat values (the figure and its spread)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_mb = None
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_mb": ram_mb,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "commit": commit,
        "loadavg_start": os.getloadavg(),
    }


# --- parse ------------------------------------------------------------------------------------------


def bench_parse(synth: Synth, repeat: int, sample: int | None = None) -> dict[str, Any]:
    """Parse speed on the real corpus and on synthetic markdown; `sample` (the smoke run) caps both."""
    from digests.parse import parse_bytes, parse_markdown

    files = [(str(path), path.read_bytes()) for path in corpus_files()][:sample]
    synthetic = min(10_000, sample * 50) if sample else 10_000
    groups = {
        "markdown": [f for f in files if f[0].endswith(".md")],
        "json": [f for f in files if f[0].endswith(".json")],
    }
    groups["all"] = files
    out: dict[str, Any] = {}
    for name, group in groups.items():
        size = sum(len(data) for _, data in group)
        papers = sum(len(parse_bytes(data, path).papers) for path, data in group)  # also a warm-up
        mbps, pps = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            for path, data in group:
                parse_bytes(data, path)
            elapsed = time.perf_counter() - start
            mbps.append(size / 1e6 / elapsed)
            pps.append(papers / elapsed)
        out[name] = {"files": len(group), "bytes": size, "papers": papers, "mb_per_s": spread(mbps),
                     "papers_per_s": spread(pps)}
    # Synthetic markdown: the format the ingest benchmark's papers would arrive in.
    texts = [(digest.date, synth.markdown(digest)) for digest in synth.days(synthetic, seed=SEED)]
    size = sum(len(t.encode()) for _, t in texts)
    mbps, pps = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        for day, text in texts:
            parse_markdown(text, day)
        elapsed = time.perf_counter() - start
        mbps.append(size / 1e6 / elapsed)
        pps.append(synthetic / elapsed)
    out["synthetic_markdown_10k"] = {"files": len(texts), "bytes": size, "papers": synthetic,
                                     "mb_per_s": spread(mbps), "papers_per_s": spread(pps)}
    return out


# --- ingest -----------------------------------------------------------------------------------------


def _digests(synth: Synth, size: int, cache: dict[int, list]):
    if size <= CACHE_IN_MEMORY_UP_TO or size <= cache.get("up_to", 0):
        if size not in cache:
            up_to = cache.get("up_to", 0)
            cache.clear()
            cache["up_to"] = up_to
            cache[size] = synth.day_list(size, seed=SEED)
        return cache[size]
    return synth.days(size, seed=SEED)


def _fresh(path: pathlib.Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(str(path) + suffix).unlink(missing_ok=True)


async def ingest_product(path: pathlib.Path, digests, blocks: int, size: int) -> dict[str, Any]:
    """Papers/s through storage.db.connect + storage.papers.ingest_digest; only ingest calls are timed."""
    _fresh(path)
    conn = await storage_db.connect(path)
    try:
        result = await ingest_timed(conn, digests, blocks, size)
        await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await conn.close()
    return result


async def ingest_timed(conn, digests, blocks: int, size: int) -> dict[str, Any]:
    """Every digest through storage.papers.ingest_digest on an open library (either backend); only those calls are timed."""
    total = 0.0
    done = 0
    block_size = max(1, size // blocks)
    block_rates, block_time, block_papers = [], 0.0, 0
    for digest in digests:
        start = time.perf_counter()
        await storage_papers.ingest_digest(
            conn, digest, source=SOURCE, origin=f"synth:{digest.date}", sha256=f"{digest.date}"
        )
        elapsed = time.perf_counter() - start
        total += elapsed
        n = len(digest.papers)
        done += n
        block_time += elapsed
        block_papers += n
        if block_papers >= block_size:
            block_rates.append(block_papers / block_time)
            block_time, block_papers = 0.0, 0
    if block_papers:
        block_rates.append(block_papers / block_time)
    return {"papers": done, "seconds": total, "papers_per_s": done / total, "block_papers_per_s": block_rates}


def _rows(digest) -> list[tuple]:
    day = digest.date.isoformat()
    return [
        (p.arxiv_id, p.title, p.url, json.dumps(p.authors), p.summary, ", ".join(p.tags),
         json.dumps(p.github_urls), json.dumps(p.huggingface_urls), day)
        for p in digest.papers
    ]


BARE_SCHEMA = {
    "bare_table": """CREATE TABLE papers (arxiv_id TEXT, title TEXT, url TEXT, authors TEXT, summary TEXT,
                                          tags TEXT, github_urls TEXT, huggingface_urls TEXT, day TEXT)""",
    "bare_fts5": """CREATE VIRTUAL TABLE papers USING fts5 (arxiv_id UNINDEXED, title, url UNINDEXED, authors,
                        summary, tags, github_urls UNINDEXED, huggingface_urls UNINDEXED, day UNINDEXED,
                        tokenize = 'porter unicode61 remove_diacritics 2', prefix = '3 4 5 6 7 8')""",  # as papers_fts (migration 008)
}


def ingest_bare(kind: str, path: pathlib.Path, digests) -> dict[str, Any]:
    """The ceiling: one executemany per day (one transaction per day, like ingest), same PRAGMAs, sync sqlite3.

    Turning digests into row tuples is not timed: only the SQLite work is.
    """
    _fresh(path)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(BARE_SCHEMA[kind])
    insert = "INSERT INTO papers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    total, done = 0.0, 0
    for digest in digests:
        rows = _rows(digest)
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
        total += time.perf_counter() - start
        done += len(rows)
    conn.close()
    _fresh(path)
    return {"papers": done, "seconds": total, "papers_per_s": done / total}


def bench_ingest(synth: Synth, size: int, runs: int, cache: dict) -> dict[str, Any]:
    db_path = DATA / f"papers-{size}.db"
    product, bare, fts = [], [], []
    blocks: list[float] = []
    for run in range(runs):
        # Alternate the order so drift in machine load does not always favour the same side.
        order = ["product", "bare_table", "bare_fts5"] if run % 2 == 0 else ["bare_fts5", "bare_table", "product"]
        for kind in order:
            digests = _digests(synth, size, cache)
            if kind == "product":
                result = asyncio.run(ingest_product(db_path, digests, 10, size))
                product.append(result["papers_per_s"])
                blocks = result["block_papers_per_s"]
            else:
                result = ingest_bare(kind, DATA / f"{kind}-{size}.db", digests)
                (bare if kind == "bare_table" else fts).append(result["papers_per_s"])
            print(f"  ingest {size:>9,} {kind:<10} {result['papers_per_s']:>10,.0f} papers/s", flush=True)
    ratio_bare = [p / b for p, b in zip(product, bare)]
    ratio_fts = [p / f for p, f in zip(product, fts)]
    out = {
        "runs": runs,
        "product_papers_per_s": spread(product),
        "bare_table_papers_per_s": spread(bare),
        "bare_fts5_papers_per_s": spread(fts),
        "ratio_to_bare_table": spread(ratio_bare),
        "ratio_to_bare_fts5": spread(ratio_fts),
        "product_last_run_per_tenth": blocks,
        "db_bytes": db_path.stat().st_size,
    }
    if runs == 1 and blocks:
        out["product_per_tenth_spread"] = spread(blocks)
    return out


# --- search -----------------------------------------------------------------------------------------


async def query_mix(conn, synth: Synth | None, rare: str = "", top_tag: str = "") -> list[dict[str, Any]]:
    """The fixed mix: rare / common single words, 2 and 3 words, a phrase, a prefix; tag filters; date ranges."""
    first, last = (await (await conn.execute("SELECT min(day), max(day) FROM digests")).fetchone())
    first, last = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    middle = first + (last - first) / 2
    month = (middle.replace(day=1), (middle.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1))
    year = (dt.date(middle.year, 1, 1), dt.date(middle.year, 12, 31))
    if synth is not None:
        rare, top_tag = synth.word_with_doc_freq(0.001), synth.tags.items[0]
    return [
        {"name": "rare word", "query": rare},
        {"name": "common word", "query": "model"},
        {"name": "two words", "query": "language models"},
        {"name": "three words", "query": "video diffusion generation"},
        {"name": "phrase", "query": '"large language models"'},
        {"name": "prefix", "query": "generat*"},
        {"name": "rare word + tag", "query": rare, "tag": top_tag},
        {"name": "common word + tag", "query": "model", "tag": "Computer Vision"},
        {"name": "two words + tag", "query": "language models", "tag": "Natural Language Processing"},
        {"name": "common word + month", "query": "model", "since": month[0], "until": month[1]},
        {"name": "two words + year", "query": "reinforcement learning", "since": year[0], "until": year[1]},
        {"name": "phrase + tag + year", "query": '"large language models"', "tag": top_tag,
         "since": year[0], "until": year[1]},
    ]


def _filters_sql(entry: dict[str, Any], id_column: str) -> tuple[str, list]:
    sql, params = "", []
    if entry.get("tag"):
        sql += f" AND {id_column} IN (SELECT pt.paper_id FROM paper_tags pt JOIN tags t ON t.id = pt.tag_id WHERE t.name = ?)"
        params.append(entry["tag"])
    if entry.get("since"):
        sql += f" AND {id_column} IN (SELECT paper_id FROM appearances WHERE day BETWEEN ? AND ?)"
        params += [entry["since"].isoformat(), entry["until"].isoformat()]
    return sql, params


async def naive_fts(conn, entry: dict[str, Any]) -> int:
    """The naive FTS5 query: MATCH + ORDER BY bm25 LIMIT 10, with a count; filters as +rowid IN (…).

    The unary + keeps the filter away from FTS5's xBestIndex: a bare `rowid IN (…)` makes SQLite
    run the MATCH once per filtered rowid, which is seconds at 100k and not what anyone would ship.
    """
    match = to_fts_query(entry["query"])
    extra, params = _filters_sql(entry, "+rowid")
    where = f"FROM papers_fts WHERE papers_fts MATCH ?{extra}"
    async with conn.execute(f"SELECT count(*) {where}", [match, *params]) as cursor:
        total = (await cursor.fetchone())[0]
    async with conn.execute(f"SELECT rowid, title {where} ORDER BY bm25(papers_fts) LIMIT 10", [match, *params]) as cursor:
        await cursor.fetchall()
    return total


def _like_terms(query: str) -> list[str]:
    if query.startswith('"'):
        return [query.strip('"')]
    return [word.rstrip("*") for word in query.split()]


async def like_scan(conn, entry: dict[str, Any]) -> int:
    """A LIKE '%term%' scan over title and summary (every term), newest first, with a count."""
    terms = _like_terms(entry["query"])
    where = " AND ".join("(p.title LIKE ? OR p.summary LIKE ?)" for _ in terms)
    params: list = [value for term in terms for value in (f"%{term}%", f"%{term}%")]
    extra, extra_params = _filters_sql(entry, "p.id")
    sql = f"FROM papers p WHERE {where}{extra}"
    async with conn.execute(f"SELECT count(*) {sql}", [*params, *extra_params]) as cursor:
        total = (await cursor.fetchone())[0]
    async with conn.execute(f"SELECT p.id, p.title {sql} ORDER BY p.last_day DESC LIMIT 10",
                            [*params, *extra_params]) as cursor:
        await cursor.fetchall()
    return total


async def product_search(conn, entry: dict[str, Any]) -> str:
    """The product's first page; returns the total it reports ("1,000+" once it stops counting)."""
    page = await storage_papers.search(conn, entry["query"], tag=entry.get("tag"), since=entry.get("since"),
                                       until=entry.get("until"))
    return f"{page.total:,}" if page.total_is_exact else f"{page.total:,}+"


async def _time(fn, conn, entry) -> float:
    start = time.perf_counter()
    await fn(conn, entry)
    return (time.perf_counter() - start) * 1000


# The baselines' single reads (a count of every LIKE match, bm25 over every match) take seconds at 1M on a
# busy machine, past the product's 10 s cap on any read; the product's searches keep their own 2 s budget.
BASELINE_READ_SECONDS = 600.0


async def bench_search(path: pathlib.Path, synth: Synth, repeat: int, iterations: int) -> dict[str, Any]:
    storage_db.READ_BUDGET_SECONDS = max(storage_db.READ_BUDGET_SECONDS, BASELINE_READ_SECONDS)
    conn = await storage_db.connect(path)
    try:
        mix = await query_mix(conn, synth)
        totals = {e["name"]: await product_search(conn, e) for e in mix}  # warm-up pass
        naive_totals = {e["name"]: await naive_fts(conn, e) for e in mix}
        # A baseline query slower than SLOW_MS in the warm-up is sampled once per repeat, not every iteration.
        naive_slow = {e["name"]: await _time(naive_fts, conn, e) > SLOW_MS for e in mix}
        for e in mix:
            await like_scan(conn, e)
        per_query: dict[str, dict[str, list[float]]] = {e["name"]: {"product": [], "naive_fts5": [], "like": []} for e in mix}
        mix_stats: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p95": [], "p99": []} for k in ("product", "naive_fts5", "like")}
        for _ in range(repeat):
            round_samples: dict[str, list[float]] = {"product": [], "naive_fts5": [], "like": []}
            for _ in range(iterations):
                for e in mix:
                    for kind, fn in (("product", product_search), ("naive_fts5", naive_fts)):
                        if kind == "naive_fts5" and naive_slow[e["name"]] and len(per_query[e["name"]][kind]) >= len(per_query[e["name"]]["like"]) + 1:
                            continue
                        ms = await _time(fn, conn, e)
                        per_query[e["name"]][kind].append(ms)
                        round_samples[kind].append(ms)
            for e in mix:  # the LIKE scan is slow: once per query per repeat
                ms = await _time(like_scan, conn, e)
                per_query[e["name"]]["like"].append(ms)
                round_samples["like"].append(ms)
            for kind, samples in round_samples.items():
                for q in (50, 95, 99):
                    mix_stats[kind][f"p{q}"].append(pct(samples, q))
        suggest = await bench_suggest(conn, repeat, iterations * 5)
    finally:
        await conn.close()
    return {
        "mix": [
            {
                "name": e["name"],
                "query": e["query"],
                "tag": e.get("tag"),
                "since": e["since"].isoformat() if e.get("since") else None,
                "until": e["until"].isoformat() if e.get("until") else None,
                "matches": naive_totals[e["name"]],
                "product_total": totals[e["name"]],
                **{
                    kind: {"p50": pct(s, 50), "p95": pct(s, 95), "max": max(s), "samples": len(s)}
                    for kind, s in per_query[e["name"]].items()
                },
            }
            for e in mix
        ],
        "whole_mix": {kind: {q: spread(v) for q, v in stats.items()} for kind, stats in mix_stats.items()},
        "autocomplete": suggest,
    }


SUGGEST_INPUTS = ["", "m", "multi", "multi-mod", "vision", "text to", "question answering", "Computer Vision", "qwxz"]


async def bench_suggest(conn, repeat: int, iterations: int) -> dict[str, Any]:
    for text in SUGGEST_INPUTS:
        await storage_papers.suggest_tags(conn, text)
    stats: dict[str, list[float]] = {"p50": [], "p99": []}
    for _ in range(repeat):
        samples = []
        for _ in range(iterations):
            for text in SUGGEST_INPUTS:
                start = time.perf_counter()
                await storage_papers.suggest_tags(conn, text)
                samples.append((time.perf_counter() - start) * 1000)
        stats["p50"].append(pct(samples, 50))
        stats["p99"].append(pct(samples, 99))
    tags = (await (await conn.execute("SELECT count(*) FROM tags")).fetchone())[0]
    return {"tags": tags, "samples_per_repeat": iterations * len(SUGGEST_INPUTS),
            **{q: spread(v) for q, v in stats.items()}}


# --- memory -----------------------------------------------------------------------------------------


async def _memory_probe(path: pathlib.Path, iterations: int, search: bool, mix_words: str) -> dict[str, Any]:
    conn = await storage_db.connect(path)
    try:
        if search:  # the parent passes the mix's corpus-derived words: no corpus parsing in this process
            rare, top_tag = json.loads(mix_words)
            mix = await query_mix(conn, None, rare, top_tag)
            for _ in range(iterations):
                for e in mix:
                    await product_search(conn, e)
    finally:
        await conn.close()
    hwm_kb = None
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    except OSError:
        pass
    # On Linux ru_maxrss survives execve, so a child forked from a big parent reports the parent's
    # peak; VmHWM belongs to this process image alone. Report both, use VmHWM when there is one.
    ru_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"maxrss_mb": hwm_kb / 1024 if hwm_kb else ru_mb, "ru_maxrss_mb": ru_mb}


def bench_memory(path: pathlib.Path, synth: Synth, repeat: int, iterations: int) -> dict[str, Any]:
    out = {}
    words = json.dumps([synth.word_with_doc_freq(0.001), synth.tags.items[0]])
    for label, search in (("open_only", False), ("search_mix", True)):
        values, ru = [], []
        for _ in range(repeat):
            result = subprocess.run(
                [sys.executable, "-m", "benchmarks.run", "--memory-probe", str(path), "--iterations", str(iterations), "--mix-words", words]
                + ([] if search else ["--no-search"]),
                cwd=ROOT, capture_output=True, text=True, check=True,
            )
            probe = json.loads(result.stdout.strip().splitlines()[-1])
            values.append(probe["maxrss_mb"])
            ru.append(probe["ru_maxrss_mb"])
        out[label] = spread(values)
        out[label + "_ru_maxrss"] = spread(ru)
    out["db"] = path.name
    return out


# --- targets and reports ----------------------------------------------------------------------------


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sizes = sorted(results["sizes"], key=int)
    largest = sizes[-1]
    at = results["sizes"][largest]
    note = "" if int(largest) >= 1_000_000 else f" (measured at {int(largest):,}, target is for 1M)"
    out = {}
    ingested = [s for s in sizes if "ingest" in results["sizes"][s]]  # --reuse skips the ingest of a stored library
    if ingested:
        parse_pps = results["parse"]["synthetic_markdown_10k"]["papers_per_s"]["median"]
        ingest_pps = max(results["sizes"][s]["ingest"]["product_papers_per_s"]["median"] for s in ingested)
        out["parse"] = {"value": f"parse {parse_pps:,.0f} vs fastest ingest {ingest_pps:,.0f} papers/s",
                        "met": parse_pps >= ingest_pps, "by": f"{parse_pps / ingest_pps:.1f}× ingest"}
    if "ingest" in at:
        ratio = at["ingest"]["ratio_to_bare_table"]["median"]
        out["ingest"] = {"value": f"{ratio:.1%} of bare executemany{note}", "met": ratio >= 0.5,
                         "by": f"{ratio / 0.5:.2f}× the target" if ratio >= 0.5 else f"short by {0.5 - ratio:.1%} points ({0.5 / ratio:.1f}× too slow)"}
    for q, limit in (("p95", 50.0), ("p99", 100.0)):
        v = at["search"]["whole_mix"]["product"][q]["median"]
        out[f"search_{q}"] = {"value": f"{v:.1f} ms{note}", "met": v <= limit,
                              "by": f"{limit - v:.1f} ms to spare" if v <= limit else f"over by {v - limit:.1f} ms ({v / limit:.1f}×)"}
    v = max(results["sizes"][s]["search"]["autocomplete"]["p99"]["median"] for s in sizes)
    out["autocomplete_p99"] = {"value": f"{v:.3f} ms (worst size)", "met": v <= 10,
                               "by": f"{10 - v:.2f} ms to spare" if v <= 10 else f"over by {v - 10:.2f} ms"}
    rss = results["memory"]["search_mix"]["median"]
    out["rss"] = {"value": f"{rss:.1f} MB on {results['memory']['db']}", "met": rss < 150,
                  "by": f"{150 - rss:.1f} MB to spare" if rss < 150 else f"over by {rss - 150:.1f} MB"}
    if "latency" in results:
        bot_rss = results["latency"]["bot_memory"]["peak_rss_mb"]
        out["bot_rss"] = {"value": f"{bot_rss:.1f} MB, `paperbot run` on {pathlib.Path(results['latency']['library']).name}",
                          "met": bot_rss < 150,
                          "by": f"{150 - bot_rss:.1f} MB to spare" if bot_rss < 150 else f"over by {bot_rss - 150:.1f} MB"}
    if "fanout" in results:
        f = results["fanout"]
        clean = f["duplicates"] == 0 and f["misses"] == 0
        out["fanout"] = {"value": f"{f['fraction_of_ceiling']:.0%} of the ceiling at {f['channels']:,} channels, "
                                  f"{f['duplicates']} duplicates, {f['misses']} misses",
                         "met": clean and f["fraction_of_ceiling"] >= f["target_fraction"],
                         "by": f"{f['fraction_of_ceiling'] - f['target_fraction']:+.0%} points against the target"}
    for key in out:
        out[key]["target"] = TARGETS[key]
    return out


def _s(d: dict[str, float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(d['median'])} ({fmt.format(d['min'])} – {fmt.format(d['max'])})"


def write_markdown(results: dict[str, Any], path: pathlib.Path) -> None:
    m = results["machine"]
    lines = [
        "# Paperbot benchmarks",
        "",
        f"Run {results['date']} with `{results['command']}` at commit `{m['commit']}`, took {results['seconds']:.0f} s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_mb']:,} MB RAM, Python {m['python']}, SQLite {m['sqlite']}, "
        f"{m['platform']}. Load average at start {m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f} "
        f"(other work shares this machine: treat differences under ~20% as noise).",
        "",
        "Figures are `median (min – max)` over the repeats of one run; every baseline was measured in the same run, "
        "on the same data. Data: synthetic digests from `benchmarks/synth.py` (seed 1, 20–50 papers a day, one source), "
        "whose vocabulary, lengths, tags and authors are drawn from the real corpus in `tests/data/corpus/`.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
    ]
    for v in results["verdicts"].values():
        lines.append(f"| {v['target']} | {v['value']} | {'**met**' if v['met'] else '**missed**'}: {v['by']} |")
    lines += ["", "## Parse", "", "| input | files | MB | MB/s | papers/s |", "| --- | --- | --- | --- | --- |"]
    for name, p in results["parse"].items():
        lines.append(f"| {name} | {p['files']} | {p['bytes'] / 1e6:.1f} | {_s(p['mb_per_s'], '{:.2f}')} | {_s(p['papers_per_s'])} |")
    ingested = {size: r for size, r in results["sizes"].items() if "ingest" in r}
    reused = [f"{int(size):,}" for size in results["sizes"] if size not in ingested]
    lines += ["", "## Ingest (papers/s)", ""]
    lines += [] if not ingested else [
              "Product = `storage.db.connect` + `storage.papers.ingest_digest` (one digest a day, FTS triggers and all); "
              "bare table = one `executemany` per day into a table with no index; bare FTS5 = the same into a plain "
              "FTS5 table (same tokenizer and prefix indexes as the product's index). Only the ingest / executemany calls are timed (not generating the data).",
              "", "| papers | runs | product | bare table | bare FTS5 | product / bare table | product / bare FTS5 | DB size |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for size, r in ingested.items():
        i = r["ingest"]
        lines.append(f"| {int(size):,} | {i['runs']} | {_s(i['product_papers_per_s'])} | {_s(i['bare_table_papers_per_s'])} | "
                     f"{_s(i['bare_fts5_papers_per_s'])} | {_s(i['ratio_to_bare_table'], '{:.1%}')} | "
                     f"{_s(i['ratio_to_bare_fts5'], '{:.1%}')} | {i['db_bytes'] / 1e6:,.0f} MB |")
    for size, r in ingested.items():
        tenths = r["ingest"]["product_last_run_per_tenth"]
        lines.append(f"\nProduct ingest rate by tenth of the load at {int(size):,} (does it slow down as the library grows?): "
                     + ", ".join(f"{x:,.0f}" for x in tenths))
    if reused:
        lines += ([""] if ingested else []) + [f"Not ingested in this run (`--reuse`: the library already in benchmarks/data was measured): {', '.join(reused)} papers."]
    largest = ingested[max(ingested, key=int)]["ingest"] if ingested else None
    fts_ceiling = largest["bare_fts5_papers_per_s"]["median"] / largest["bare_table_papers_per_s"]["median"] if largest else 0.0
    lines += [] if largest is None else ["", f"Why the ≥ 50% target is out of reach: keeping a full-text index at all caps ingest. The bare FTS5 "
              f"table alone, with nothing else, reaches {fts_ceiling:.1%} of the bare table's rate at the largest size, "
              f"so no ingest that indexes as it writes can come near 50% of it. Against that ceiling the product "
              f"(papers, versions, appearances, tags and the index, one transaction a digest) reaches "
              f"{largest['ratio_to_bare_fts5']['median']:.0%}."]
    lines += ["", "## Search (ms)", ""]
    for size, r in results["sizes"].items():
        s = r["search"]
        lines += [f"### {int(size):,} papers", "",
                  "Whole mix, per-repeat percentiles: median (min – max) over repeats.", "",
                  "| | p50 | p95 | p99 |", "| --- | --- | --- | --- |"]
        for kind, label in (("product", "`storage.papers.search`"), ("naive_fts5", "naive FTS5 (MATCH, bm25, LIMIT 10, count)"),
                            ("like", "LIKE '%term%' scan (1 sample per query per repeat)")):
            w = s["whole_mix"][kind]
            lines.append(f"| {label} | {_s(w['p50'], '{:.2f}')} | {_s(w['p95'], '{:.2f}')} | {_s(w['p99'], '{:.2f}')} |")
        lines += ["", "Per query (all samples pooled):", "",
                  "| query | filters | matches | product reports | product p50 / p95 | naive FTS5 p50 / p95 | LIKE p50 |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for q in s["mix"]:
            filters = ", ".join(x for x in (f"tag {q['tag']}" if q["tag"] else "",
                                            f"{q['since']}..{q['until']}" if q["since"] else "") if x) or "–"
            lines.append(f"| {q['name']}: `{q['query']}` | {filters} | {q['matches']:,} | {q['product_total']} | {q['product']['p50']:.2f} / "
                         f"{q['product']['p95']:.2f} | {q['naive_fts5']['p50']:.2f} / {q['naive_fts5']['p95']:.2f} | "
                         f"{q['like']['p50']:.1f} |")
        a = s["autocomplete"]
        lines += ["", f"Autocomplete (`storage.papers.suggest_tags`, {a['tags']} tags, {len(SUGGEST_INPUTS)} inputs, "
                  f"{a['samples_per_repeat']} samples a repeat): p50 {_s(a['p50'], '{:.3f}')} ms, p99 {_s(a['p99'], '{:.3f}')} ms.", ""]
    mem = results["memory"]
    lines += ["## Memory", "",
              f"Peak RSS of a fresh subprocess (VmHWM from /proc/self/status; `resource.getrusage` ru_maxrss is also "
              f"in results.json but on Linux it survives execve and so reports the benchmark parent's peak) on `{mem['db']}`: opening the library only "
              f"{_s(mem['open_only'], '{:.1f}')} MB; opening it and running the search mix {_s(mem['search_mix'], '{:.1f}')} MB.",
              ""]
    if "fanout" in results:
        lines.append(fanout.markdown(results["fanout"]))
    if "latency" in results:
        lines.append(latency.markdown(results["latency"]))
    if "attack" in results:
        lines.append(attack.markdown(results["attack"]["runs"], results["attack"].get("huge_digest")))
    if results.get("relevance"):
        lines.append(relevance.markdown(results["relevance"]))
    if not any(int(s) >= 1_000_000 for s in results["sizes"]):
        lines.append("The 1M-paper run is not in this file; run `python -m benchmarks.run --sizes 10000,100000,1000000`.")
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


# --- main -------------------------------------------------------------------------------------------


def _in_subprocess(module: str, *options: Any) -> dict[str, Any]:
    """Run benchmarks.<module> in a fresh process (so its peak RSS is the bot's, not this run's) and read its JSON."""
    out = DATA / f"results-{module}.json"
    subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *map(str, options), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return json.loads(out.read_text(encoding="utf-8"))


# `--smoke` (`make bench`): every benchmark at toy size, so a broken benchmark shows in seconds.
SMOKE = ("--sizes", "2000", "--repeat", "1", "--iterations", "1", "--channels", "20", "--latency-rounds", "1")
SMOKE_PARSE_FILES = 20  # corpus files per format parsed in the smoke run (and 50× as many synthetic papers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated library sizes (papers)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of every measurement")
    parser.add_argument("--iterations", type=int, default=10, help="passes over the search mix per repeat")
    parser.add_argument("--ingest-repeat-up-to", type=int, default=20_000,
                        help="sizes up to this are ingested --repeat times; larger ones once (spread over tenths)")
    parser.add_argument("--cache-up-to", type=int, default=CACHE_IN_MEMORY_UP_TO,
                        help="sizes up to this are generated once and held in memory (~3 KB a paper); larger "
                             "ones are regenerated for each pass (~150 s per 1M papers)")
    parser.add_argument("--channels", type=int, default=1000, help="digest channels in the fan-out (0: skip it)")
    parser.add_argument("--discord-latency", type=float, default=0.15,
                        help="seconds the fake Discord adds to every digest message in the fan-out")
    parser.add_argument("--latency-rounds", type=int, default=10,
                        help="passes over the command mix against the largest library (0: skip it)")
    parser.add_argument("--attack-rounds", type=int, default=0,
                        help="passes over the readers' mix in the hostile-member benchmark at 100k papers "
                             "(benchmarks/attack.py; 0: skip it)")
    parser.add_argument("--relevance", default="",
                        help="known-item relevance (benchmarks/relevance.py) with these comma-separated numbers of "
                             "synthetic distractors after the real corpus, e.g. 0,3000,100000 (empty: skip it)")
    parser.add_argument("--out", default=str(HERE), help="folder for results.md / results.json")
    parser.add_argument("--reuse", action="store_true",
                        help="measure libraries already in benchmarks/data (papers-<size>.db, relevance-<N>.db) "
                             "instead of building them; a reused size has no ingest figures")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick check that every benchmark runs: " + " ".join(SMOKE) + " (figures mean nothing)")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--no-search", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mix-words", default='["", ""]', help=argparse.SUPPRESS)
    args = parser.parse_args([*SMOKE, *(argv if argv is not None else sys.argv[1:])]
                             if "--smoke" in (argv if argv is not None else sys.argv[1:]) else argv)

    if args.memory_probe:
        print(json.dumps(asyncio.run(_memory_probe(pathlib.Path(args.memory_probe), args.iterations, not args.no_search, args.mix_words))))
        return

    started = time.perf_counter()
    DATA.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "repeat": args.repeat,
        "iterations": args.iterations,
        "sizes": {},
    }
    synth = Synth.from_corpus()
    print("parse …", flush=True)
    results["parse"] = bench_parse(synth, args.repeat, sample=SMOKE_PARSE_FILES if args.smoke else None)
    cache: dict[Any, Any] = {"up_to": args.cache_up_to}
    for size in sizes:
        runs = args.repeat if size <= args.ingest_repeat_up_to else 1
        print(f"ingest {size:,} × {runs} …", flush=True)
        entry: dict[str, Any] = {}
        if args.reuse and (DATA / f"papers-{size}.db").exists():
            print(f"  reusing {DATA / f'papers-{size}.db'} (no ingest figures)", flush=True)
        else:
            entry["ingest"] = bench_ingest(synth, size, runs, cache)
        cache = {"up_to": args.cache_up_to}
        print(f"search {size:,} …", flush=True)
        entry["search"] = asyncio.run(bench_search(DATA / f"papers-{size}.db", synth, args.repeat, args.iterations))
        w = entry["search"]["whole_mix"]["product"]
        print(f"  search p50 {w['p50']['median']:.2f} p95 {w['p95']['median']:.2f} p99 {w['p99']['median']:.2f} ms", flush=True)
        results["sizes"][str(size)] = entry
    print("memory …", flush=True)
    results["memory"] = bench_memory(DATA / f"papers-{max(sizes)}.db", synth, min(args.repeat, 3), args.iterations)
    if args.channels:
        print(f"delivery fan-out to {args.channels:,} channels …", flush=True)
        results["fanout"] = _in_subprocess("fanout", "--channels", args.channels, "--latency", args.discord_latency)
    if args.relevance:
        results["relevance"] = []
        for distractors in (int(x) for x in args.relevance.split(",") if x.strip()):
            print(f"relevance with {distractors:,} distractors …", flush=True)
            results["relevance"].append(asyncio.run(relevance.measure_size(distractors, synth, reuse=args.reuse)))
    if args.latency_rounds:
        print("command latency …", flush=True)
        results["latency"] = _in_subprocess("latency", "--db", DATA / f"papers-{max(sizes)}.db",
                                            "--rounds", args.latency_rounds)
    if args.attack_rounds:
        print("hostile member …", flush=True)
        attacked = 100_000 if 100_000 in sizes else max(sizes)
        results["attack"] = _in_subprocess("attack", "--db", DATA / f"papers-{attacked}.db",
                                           "--rounds", args.attack_rounds)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - started
    results["verdicts"] = verdicts(results)
    out = pathlib.Path(args.out)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    write_markdown(results, out / "results.md")
    print(f"wrote {out / 'results.md'} and {out / 'results.json'} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
