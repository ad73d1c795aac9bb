"""Hostile member: other members' latency while one member sends the most expensive inputs Paperbot accepts.

`python -m benchmarks.attack [--db benchmarks/data/papers-100000.db] [--rounds 10]`

The real Paperbot runs as its own process (`paperbot run`, see `benchmarks.latency`) on a copy of a
library, connected to the fake Discord on 127.0.0.1. Readers send `/paper` and `/papers search`
(the latency benchmark's search mix and three stored papers) one at a time, each interaction from
a different member (so none meets the cooldown); each is timed from just before
INTERACTION_CREATE is dispatched until the fake has recorded the bot's callback. The same rounds
run twice: alone, then while one attacker member sends, back to back (the next as soon as the
last was acknowledged; a second after a cooldown refusal), the costliest inputs the bot accepts:
32 three-letter prefixes ANDed, 25 ORed (a query holds 200 characters), 32-word phrases, and
exports of such searches (which defer, so the attacker's next command starts while they run).
Both with the bot's default cooldown (5 searches per 30 s) and with none (`--cooldown`).
Reported: p50 / p95 / max per command for the readers in both runs, and what the attacker got
back (answers, "too broad" refusals, cooldowns, other refusals).

A second, in-process measurement: one 95,000-paper digest is ingested through `storage` while
another task reads (`get_paper`, `search`) on the same `Library`, against the same reads alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from typing import Any

from benchmarks import latency
from benchmarks.percentiles import pct
from benchmarks.synth import Synth
from storage import db, papers
from storage.models import Digest
from testing import FakeDiscord

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_DB = HERE / "data" / "papers-100000.db"
PREFIXES = ["con*", "pro*", "gen*", "tra*", "lan*", "mod*", "lea*", "net*",
            "dat*", "ima*", "per*", "met*", "res*", "sho*", "exp*", "app*"] * 2
ATTACKS: list[tuple[str, str, dict[str, Any]]] = [
    ("search", "32 prefixes", {"query": " ".join(PREFIXES)}),
    ("search", "25 prefixes ORed", {"query": " OR ".join(PREFIXES[:25])}),  # 196 characters: the option's cap is 200
    ("search", "32-word phrase", {"query": '"' + " ".join(["a"] * 32) + '"'}),
    ("search", "16 × 'the model' phrase", {"query": '"' + " ".join(["the model"] * 16) + '"'}),
    ("search", "32 prefixes, has code", {"query": " ".join(PREFIXES), "has_code": True}),
    ("export", "export 25 prefixes ORed", {"query": " OR ".join(PREFIXES[:25]), "format": "csv"}),
    ("export", "export common word", {"query": "model", "format": "json"}),
    ("search", "1-letter prefixes (refused)", {"query": "a* b* c* d* e* f*"}),
]
HUGE_DIGEST = 95_000


def _summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50": pct(samples, 50), "p95": pct(samples, 95),
            "max": max(samples, default=float("nan"))}


async def reader_mix(path: pathlib.Path) -> list[dict[str, Any]]:
    """The reader's round: every `/papers search` and `/paper` of the latency benchmark's mix."""
    return [item for item in await latency.command_mix(path) if item["command"] in ("search", "paper")]


async def _attack(fake: FakeDiscord, guild, channel, user, stop: asyncio.Event, outcomes: Counter) -> None:
    """The attacker's commands, back to back, until `stop`; counts what came back per case."""
    while not stop.is_set():
        for command, case, options in ATTACKS:
            if stop.is_set():
                return
            handle = await fake.send_slash_command(guild, channel, user, "papers", subcommand=command, options=options)
            try:
                response = await handle.response(timeout=latency.RESPONSE_TIMEOUT)
            except TimeoutError:
                outcomes[f"{case}: unanswered"] += 1
                continue
            data = response.get("data") or {}
            text = (data.get("content") or "") + json.dumps(data.get("embeds") or [])
            if response.get("type") == 5:
                kind = "deferred"
            elif "too broad" in text:
                kind = "too broad"
            elif "slow down" in text.lower() or "again in" in text.lower() or "cooldown" in text.lower():
                kind = "cooldown"
            elif latency._is_error(response):
                kind = "refused: " + text[:60]
            else:
                kind = "answered"
            outcomes[f"{case}: {kind}"] += 1
            if kind == "cooldown":
                await asyncio.sleep(1)  # the bot accepts nothing more for now: try again shortly, not in a flood


async def _read_rounds(fake: FakeDiscord, guild, channel, users, mix, rounds: int) -> dict[str, list[float]]:
    """`rounds` passes over the mix, one interaction at a time, each from the next of `users` (so no
    reader meets the per-member cooldown)."""
    samples: dict[str, list[float]] = defaultdict(list)
    sent = 0
    for _ in range(rounds):
        for item in mix:
            user = users[sent % len(users)]
            sent += 1
            try:
                ms, response = await latency._one(fake, guild, channel, user, item)
            except TimeoutError:
                samples["unanswered"].append(float("nan"))
                continue
            samples[item["command"]].append(ms)
            if latency._is_error(response):
                samples["error replies"].append(ms)
    return samples


async def measure(db_path: pathlib.Path = DEFAULT_DB, *, rounds: int = 10, search_rate: int = 1_000_000,
                  readers: int | None = None) -> dict[str, Any]:
    """Reader latency alone and under attack, through the real bot process and the fake Discord.

    `search_rate`: the bot's per-member cooldown (uses per 30 s); `readers`: members the reader's
    interactions rotate through (default: a member per interaction, so none meets the cooldown).
    """
    with tempfile.TemporaryDirectory() as tmp:
        library = pathlib.Path(tmp) / "library.db"
        shutil.copyfile(db_path, library)
        mix = await reader_mix(library)
        readers = readers or (2 * rounds + 1) * len(mix)
        async with FakeDiscord() as fake:
            guild = fake.add_guild("Research", channels=("papers",))
            members = [fake.add_user(f"reader{n}") for n in range(readers)]
            attacker = fake.add_user("attacker")
            for member in (*members, attacker):
                fake.add_member(guild, member)
            channel = guild.channel_ids[0]
            async with latency.bot_process(fake, library, pathlib.Path(tmp), search_rate=search_rate) as pid:
                await _read_rounds(fake, guild, channel, members, mix, 1)  # warm-up, not measured
                alone = await _read_rounds(fake, guild, channel, members, mix, rounds)
                stop, outcomes = asyncio.Event(), Counter()
                attacking = asyncio.create_task(_attack(fake, guild, channel, attacker, stop, outcomes))
                started = time.perf_counter()
                attacked = await _read_rounds(fake, guild, channel, members, mix, rounds)
                attack_seconds = time.perf_counter() - started
                stop.set()
                await attacking
                memory = latency.process_memory_mb(pid)
    both = {name: [ms for key in ("search", "paper") for ms in run.get(key, [])] for name, run in
            (("alone", alone), ("attacked", attacked))}
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "library": str(db_path),
        "rounds": rounds,
        "search_rate": search_rate,
        "reader_interactions_per_run": rounds * len(mix),
        "attacks": [{"command": c, "case": case, "options": o} for c, case, o in ATTACKS],
        "alone_ms": {k: _summary(v) for k, v in alone.items()} | {"all": _summary(both["alone"])},
        "attacked_ms": {k: _summary(v) for k, v in attacked.items()} | {"all": _summary(both["attacked"])},
        "attacker_outcomes": dict(outcomes),
        "attack_seconds": attack_seconds,
        "bot_memory": memory,
        "query_budget_seconds": db.QUERY_BUDGET_SECONDS,
        "readers": db.READERS,
        "loadavg": os.getloadavg(),
    }


# ----- a huge digest while members read ---------------------------------------------------------


async def _reads(conn, ids: list[str], stop: asyncio.Event | None, count: int) -> list[float]:
    """get_paper and a search, alternately, timed; until `stop` is set (at least `count` of them)."""
    samples: list[float] = []
    n = 0
    while (stop is not None and not stop.is_set()) or n < count:
        started = time.perf_counter()
        try:
            if n % 2:
                await papers.get_paper(conn, ids[n % len(ids)])
            else:
                await papers.search(conn, "language models", limit=10)
        except papers.QueryError:  # counted as a miss: the read was refused
            samples.append(float("inf"))
        else:
            samples.append((time.perf_counter() - started) * 1000)
        n += 1
        await asyncio.sleep(0.005)  # a member every few milliseconds, not a busy loop
    return samples


async def measure_huge_digest(db_path: pathlib.Path = DEFAULT_DB) -> dict[str, Any]:
    """Reads while a HUGE_DIGEST-paper digest is ingested on the same Library, and the same reads alone."""
    synth = Synth.from_corpus()
    day = dt.date(2099, 1, 1)
    huge = Digest(date=day, papers=[synth.paper(synth_rng(), f"9901.{n:05d}") for n in range(HUGE_DIGEST)])
    with tempfile.TemporaryDirectory() as tmp:
        library = pathlib.Path(tmp) / "library.db"
        shutil.copyfile(db_path, library)
        conn = await db.connect(library)
        try:
            ids = [paper.arxiv_id for paper in await papers.papers_on_day(conn, (await papers.digest_days(conn))[-1])]
            alone = await _reads(conn, ids, None, 200)
            stop = asyncio.Event()
            reading = asyncio.create_task(_reads(conn, ids, stop, 0))
            started = time.perf_counter()
            result = await papers.ingest_digest(conn, huge, source="huge", origin="huge.md", sha256="huge")
            ingest_seconds = time.perf_counter() - started
            stop.set()
            during = await reading
            stored = len(await papers.papers_on_day(conn, day))
        finally:
            await conn.close()
    return {
        "papers": HUGE_DIGEST,
        "stored": stored,
        "ingest_seconds": ingest_seconds,
        "ingest_result": str(getattr(result, "status", result))[:200],
        "reads_alone_ms": _summary(alone),
        "reads_during_ingest_ms": _summary(during),
        "refused_during_ingest": sum(ms == float("inf") for ms in during),
    }


def synth_rng():
    import random

    return random.Random(95_000)


# ----- report -----------------------------------------------------------------------------------


def _scenario_rows(f: dict[str, Any]) -> list[str]:
    names = {"search": "`/papers search`", "paper": "`/paper`", "all": "**both**"}
    cooldown = "none" if f["search_rate"] >= 1000 else f"{f['search_rate']} per 30 s (default)"
    rows = []
    for key in ("search", "paper", "all"):
        a, b = f["alone_ms"].get(key), f["attacked_ms"].get(key)
        if a and b:
            rows.append(f"| {cooldown} | {names[key]} | {a['n']} | {a['p50']:.1f} | {a['p95']:.1f} | {a['max']:.1f} "
                        f"| {b['n']} | {b['p50']:.1f} | {b['p95']:.1f} | {b['max']:.1f} |")
    return rows


def _outcomes(f: dict[str, Any]) -> str:
    kinds = Counter()
    for case_kind, n in f["attacker_outcomes"].items():
        kinds[case_kind.split(": ", 1)[1].split(":")[0]] += n
    return ", ".join(f"{kind} ×{n}" for kind, n in sorted(kinds.items())) or "nothing"


def markdown(runs: list[dict[str, Any]], huge: dict[str, Any] | None = None) -> str:
    """The hostile-member section of results.md."""
    first = runs[0]
    lines = [
        "## Hostile member (issue #12)",
        "",
        f"`python -m benchmarks.attack`, library `{pathlib.Path(first['library']).name}`, measured {first['date']} "
        f"(load average {first['loadavg'][0]:.1f} on this 2-core machine, shared). Readers send `/paper` and "
        f"`/papers search` one at a time ({first['reader_interactions_per_run']} interactions per run, each "
        "from a different member), interaction dispatched by the fake Discord → the bot's callback received, through "
        "`paperbot run` in its own process; first alone, then while one attacker sends, back to back, the "
        "costliest inputs the bot accepts (32 three-letter prefixes ANDed, 25 ORed, 32-word phrases, exports "
        f"of them). Query budget {first['query_budget_seconds']:.1f} s, {first['readers']} reader connections.",
        "",
        "| attacker's cooldown | reader's command | n alone | p50 ms | p95 ms | max ms "
        "| n attacked | p50 ms | p95 ms | max ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(row for f in runs for row in _scenario_rows(f)),
        "",
    ]
    for f in runs:
        verdict = "met" if f["attacked_ms"]["all"]["p95"] <= 100 else "MISSED"
        cooldown = "without cooldown" if f["search_rate"] >= 1000 else "at the default cooldown"
        lines.append(f"- Attacker {cooldown}: p95 ≤ 100 ms under attack **{verdict}** "
                     f"({f['attacked_ms']['all']['p95']:.1f} ms; alone {f['alone_ms']['all']['p95']:.1f} ms). "
                     f"The attacker got, over {f['attack_seconds']:.0f} s: {_outcomes(f)}.")
    lines.append("")
    if huge:
        a, d = huge["reads_alone_ms"], huge["reads_during_ingest_ms"]
        lines += [
            f"A {huge['papers']:,}-paper digest ingested on the same library ({huge['ingest_seconds']:.1f} s, "
            f"{huge['stored']:,} papers stored) while another task reads (`get_paper` / `search`, alternately): "
            f"reads during ingest p50 {d['p50']:.1f} ms, p95 {d['p95']:.1f} ms, max {d['max']:.1f} ms (n {d['n']}, "
            f"{huge['refused_during_ingest']} refused); "
            f"the same reads alone p50 {a['p50']:.1f} ms, p95 {a['p95']:.1f} ms, max {a['max']:.1f} ms.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=pathlib.Path, default=DEFAULT_DB)
    parser.add_argument("--rounds", type=int, default=10, help="passes over the reader's mix, alone and attacked")
    parser.add_argument("--cooldown", choices=("both", "default", "none"), default="both",
                        help="the attacker at the bot's default cooldown (5 per 30 s), without one, or both")
    parser.add_argument("--no-huge-digest", dest="huge", action="store_false", help="skip the huge-digest ingest")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "data" / "results-attack.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rates = (5, 1_000_000) if args.cooldown == "both" else ((5,) if args.cooldown == "default" else (1_000_000,))
    figures: dict[str, Any] = {"runs": [asyncio.run(measure(args.db, rounds=args.rounds, search_rate=rate))
                                        for rate in rates]}
    if args.huge:
        figures["huge_digest"] = asyncio.run(measure_huge_digest(args.db))
    args.out.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(markdown(figures["runs"], figures.get("huge_digest")))

if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
