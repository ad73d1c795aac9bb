"""Command latency end to end: interaction dispatched by the fake Discord -> the bot's response received.

`python -m benchmarks.latency [--db benchmarks/data/papers-1000000.db] [--rounds 10]`

The real Paperbot runs as its own process (`paperbot run`, so its memory is the bot's alone) on a
copy of a library (the 1M-paper benchmark database by default: the bot may migrate or write to
what it opens, and other runs read the original) and connects to the fake Discord on 127.0.0.1. Slash commands are injected one at a time over the gateway, as Discord
sends them, and each is timed from just before INTERACTION_CREATE is dispatched until the fake
has recorded the bot's interaction callback: gateway, discord.py, the cog, storage, rendering and
the callback POST. The mix per round: `/papers search` with each entry of the storage benchmark's
query mix (words, phrase, prefix, tag / month / year filters), `/papers tag` for three tags,
`/paper` for three stored papers, and tag autocomplete for four inputs. One unmeasured round warms
the caches first. Every interaction must be answered; answers that are error replies are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import pathlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from storage import db, papers
from testing import FakeDiscord

from benchmarks.percentiles import pct
from benchmarks.synth import ROOT, Synth

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_DB = HERE / "data" / "papers-1000000.db"
EPHEMERAL = 64
AUTOCOMPLETE_INPUTS = ("", "vis", "lang", "rob")
STARTUP_TIMEOUT = 120.0  # opening a 1M-paper library and syncing commands
RESPONSE_TIMEOUT = 60.0  # generous: a miss is reported as unanswered, not hidden by a timeout


def _summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50": pct(samples, 50), "p95": pct(samples, 95),
            "p99": pct(samples, 99), "mean": statistics.fmean(samples) if samples else float("nan"),
            "max": max(samples, default=float("nan"))}


async def command_mix(path: pathlib.Path) -> list[dict[str, Any]]:
    """The interactions of one round: (command, options) built from what the library holds."""
    from benchmarks.run import query_mix  # lazily: run.py imports this module to wire it in

    conn = await db.connect(path)
    try:
        tags = await papers.tag_counts(conn)
        days = await papers.digest_days(conn)
        searches = await query_mix(conn, None, Synth.from_corpus().word_with_doc_freq(0.001), tags[0].name)
        ids = []
        for day in (days[0], days[len(days) // 2], days[-1]):
            ids.append((await papers.papers_on_day(conn, day))[0].arxiv_id)
    finally:
        await conn.close()
    mix = []
    for entry in searches:
        options = {"query": entry["query"]}
        options.update({k: entry[k] for k in ("tag",) if entry.get(k)})
        options.update({k: entry[k].isoformat() for k in ("since", "until") if entry.get(k)})
        mix.append({"command": "search", "case": entry["name"], "options": options})
    for tag in (tags[0].name, tags[len(tags) // 2].name, tags[-1].name):
        mix.append({"command": "tag", "case": tag, "options": {"tag": tag}})
    mix += [{"command": "paper", "case": arxiv_id, "options": {"id": arxiv_id}} for arxiv_id in ids]
    mix += [{"command": "autocomplete", "case": repr(text), "value": text} for text in AUTOCOMPLETE_INPUTS]
    return mix


async def _one(fake: FakeDiscord, guild, channel, user, item: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Send one interaction; (milliseconds until its callback was recorded, the callback)."""
    started = time.perf_counter()
    if item["command"] == "autocomplete":
        handle = await fake.send_autocomplete(guild, channel, user, "papers", subcommand="search", focused="tag",
                                              value=item["value"], options={"query": "model"})
    elif item["command"] == "paper":
        handle = await fake.send_slash_command(guild, channel, user, "paper", options=item["options"])
    else:
        handle = await fake.send_slash_command(guild, channel, user, "papers", subcommand=item["command"],
                                               options=item["options"])
    response = await handle.answer(timeout=RESPONSE_TIMEOUT)  # the answer itself, not a "thinking…" deferral
    return (time.perf_counter() - started) * 1000, response


def _is_error(response: dict[str, Any]) -> bool:
    """Paperbot's error replies are ephemeral messages; its answers to these commands are public."""
    return response.get("type") == 4 and bool((response.get("data") or {}).get("flags", 0) & EPHEMERAL)


@contextlib.asynccontextmanager
async def bot_process(fake: FakeDiscord, library: pathlib.Path, workdir: pathlib.Path, *,
                      search_rate: int = 1_000_000) -> AsyncIterator[int]:
    """`paperbot run` in its own process, pointed at the fake; yields its pid once it serves commands.

    Its own process, so its memory is the bot's alone (not the fake's, not this script's).
    `search_rate`: the per-member cooldown's uses per window (default: so high one member sends everything).
    """
    config = workdir / "config.toml"
    config.write_text(
        f'[database]\npath = "{library}"\n'
        f'[discord]\napi_base_url = "{fake.api_base_url}"\ngateway_url = "{fake.gateway_url}"\n'
        f"[commands]\nsearch_rate = {search_rate:d}\n",
        encoding="utf-8",
    )
    log = (workdir / "bot.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), cwd=ROOT,
        env={**os.environ, "DISCORD_TOKEN": fake.token}, stdout=log, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await fake.wait_for(lambda: fake.commands.get(None), timeout=STARTUP_TIMEOUT, what="the bot to sync")
        await fake.gateway.wait_for_dispatch("GUILD_CREATE", timeout=STARTUP_TIMEOUT)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=STARTUP_TIMEOUT)
        log.close()


def process_memory_mb(pid: int) -> dict[str, float]:
    """Peak and current resident memory of a live process, from /proc (Linux)."""
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return {"peak_rss_mb": fields.get("VmHWM", float("nan")), "rss_mb": fields.get("VmRSS", float("nan"))}


async def measure(db_path: pathlib.Path = DEFAULT_DB, *, rounds: int = 10, copy: bool = True,
                  workdir: pathlib.Path | None = None) -> dict[str, Any]:
    """Latency of the command mix over `rounds` rounds against the library at `db_path`, and the bot's memory."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        library = db_path
        if copy:
            library = pathlib.Path(tmp) / "library.db"
            shutil.copyfile(db_path, library)
        mix = await command_mix(library)
        async with FakeDiscord(check_spec=False) as fake:  # the schema check costs the fake CPU; the suite runs it
            guild = fake.add_guild("Research", channels=("papers",))
            member = fake.add_user("reader")
            fake.add_member(guild, member)
            channel = guild.channel_ids[0]
            async with bot_process(fake, library, pathlib.Path(tmp)) as pid:
                for item in mix:  # warm-up, not measured
                    await _one(fake, guild, channel, member, item)
                samples: dict[str, list[float]] = defaultdict(list)
                by_case: dict[str, list[float]] = defaultdict(list)
                errors: dict[str, int] = defaultdict(int)
                sent = answered = 0
                for _ in range(rounds):
                    for item in mix:
                        sent += 1
                        try:
                            ms, response = await _one(fake, guild, channel, member, item)
                        except TimeoutError:
                            continue
                        answered += 1
                        samples[item["command"]].append(ms)
                        by_case[f"{item['command']} {item['case']}"].append(ms)
                        if item["command"] != "autocomplete" and _is_error(response):
                            errors[f"{item['command']} {item['case']}"] += 1
                memory = process_memory_mb(pid)
    overall = [ms for values in samples.values() for ms in values]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "library": str(db_path),
        "rounds": rounds,
        "mix": mix,
        "interactions": sent,
        "answered": answered,
        "unanswered": sent - answered,
        "error_replies": dict(errors),
        "per_command_ms": {command: _summary(values) for command, values in samples.items()},
        "overall_ms": _summary(overall),
        "per_case_ms": {case: _summary(values) for case, values in by_case.items()},
        "bot_memory": memory,
    }


def markdown(figures: dict[str, Any]) -> str:
    """The command-latency section of results.md."""
    f = figures
    rows = [("overall", f["overall_ms"]), *sorted(f["per_command_ms"].items())]
    names = {"search": "`/papers search`", "tag": "`/papers tag`", "paper": "`/paper`",
             "autocomplete": "tag autocomplete", "overall": "**all**"}
    errors = ", ".join(f"{case} ×{n}" for case, n in sorted(f["error_replies"].items())) or "none"
    return "\n".join([
        "## Command latency",
        "",
        f"Interaction dispatched by the fake Discord → the bot's callback received, one at a time, "
        f"{f['interactions']} interactions ({f['rounds']} × the mix of {len(f['mix'])}) after a warm-up round, "
        f"library `{pathlib.Path(f['library']).name}`, measured {f['date']}.",
        "",
        "| command | n | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {names.get(name, name)} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | {s['max']:.1f} |"
          for name, s in rows),
        "",
        f"Answered: {f['answered']} of {f['interactions']} interactions; error replies: {errors}.",
        "",
        f"The bot ran as its own process (`paperbot run` pointed at the fake): peak RSS "
        f"{f['bot_memory']['peak_rss_mb']:.1f} MB over its start and the whole mix "
        f"({f['bot_memory']['rss_mb']:.1f} MB at the end).",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=pathlib.Path, default=DEFAULT_DB)
    parser.add_argument("--rounds", type=int, default=10, help="passes over the command mix (after a warm-up)")
    parser.add_argument("--no-copy", dest="copy", action="store_false",
                        help="open --db itself instead of a copy (the bot may migrate or write to it)")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "data" / "results-latency.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    figures = asyncio.run(measure(args.db, rounds=args.rounds, copy=args.copy))
    args.out.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "mix"}, indent=2))
    print(markdown(figures))


if __name__ == "__main__":
    main()
