"""Clusters: one day's digest fanned out by several Paperbot processes sharing one global rate limit.

`python -m benchmarks.shards [--channels 1000] [--processes 4] [--latency 0.15] [--mode both]`

The fake Discord (testing) runs in this process with Discord's limits on: 50 requests/s per bot
token across every connection and process, 5 messages per 5 s per channel. N servers, spread
evenly over `processes x 2` shards, each have one digest channel. Each process is a real,
separate Paperbot (`bot.client.create_bot` -> `ShardedPaperbot` holding two shards) started in
its own Python process, pointed at the fake like `paperbot run --shards a-b --shard-count S`;
each posts the day to the servers on its shards (the scheduler's own `post_due`). They start
posting together on a signal, so their fan-outs overlap completely.

Modes: `shared`, the processes pace through the Redis limiter (`[discord] rate_limit_redis_url`),
and `alone`, each process paces itself at `requests_per_second` (what they would do without it).
Figures: combined successful requests/s against the 50/s ceiling, global and per-channel 429s,
duplicates and misses read back from the fake Discord, each server posted by the process holding
its shard. Each process has its own SQLite library with its own servers' channels, so the run
measures the rate limit; `--shared-library` gives them one SQLite file instead, which is where
SQLite runs out (see results.md), and `--postgres URL` one PostgreSQL library (a fresh schema in
that database, filled by `paperbot db copy` and dropped afterwards): what clusters are meant to run
on. 127.0.0.1 only, bounded in channels and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import os
import pathlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from benchmarks.fanout import (
    CHANNEL_MESSAGES, DAY, GLOBAL_PER_SECOND, INVALID_REQUESTS_PER_10_MIN, MESSAGES_ROUTE, POST_TIME, TARGET_FRACTION,
    _build_library, _read_back,
)
from bot.shards import shard_of
from storage import copy, db, outbox
from testing import FakeDiscord

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SHARDS_PER_PROCESS = 2
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
STARTUP_TIMEOUT = 120.0  # plus STARTUP_PER_CHANNEL for each channel: GUILD_CREATEs and the scheduler's jobs
STARTUP_PER_CHANNEL = 0.1
RUN_TIMEOUT = 1800.0


def shards_of_process(process: int) -> list[int]:
    return list(range(process * SHARDS_PER_PROCESS, (process + 1) * SHARDS_PER_PROCESS))


# -- one process of the cluster ------------------------------------------------------------------


async def worker(spec: dict[str, Any]) -> None:
    """Run one cluster process: ready -> wait for "go" on stdin -> post the day -> report -> close."""
    from bot.client import create_bot, point_at
    from settings import DatabaseSettings, DeliverySettings, DiscordSettings, Settings

    library = spec["library"]
    if library.startswith("postgresql://") and "url" not in DatabaseSettings.model_fields:
        raise SystemExit("this Paperbot has no [database] url setting, so it cannot run on PostgreSQL")
    settings = Settings(
        database=DatabaseSettings(url=library) if library.startswith("postgresql://") else DatabaseSettings(path=library),
        discord=DiscordSettings(api_base_url=spec["api_base_url"], gateway_url=spec["gateway_url"],
                                shard_ids=spec["shard_ids"], shard_count=spec["shard_count"],
                                rate_limit_redis_url=spec["redis_url"]),
        delivery=DeliverySettings(requests_per_second=spec["requests_per_second"]),
    )
    point_at(settings.discord)
    bot = create_bot(settings, guild_ready_timeout=0.01)
    bot.http.user_agent += f" process-{spec['process']}"  # which process sent a request
    runner = asyncio.create_task(bot.start(os.environ["DISCORD_TOKEN"]))
    deadline = time.monotonic() + spec.get("startup_timeout", STARTUP_TIMEOUT)
    while not (bot.is_ready() and bot.daily is not None and bot.daily.scheduler.running):
        if runner.done():
            runner.result()
        if time.monotonic() > deadline:
            raise SystemExit("the bot did not become ready")
        await asyncio.sleep(0.05)
    print(json.dumps({"ready": True, "pacer": type(bot.pacer).__name__}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.perf_counter()
    await bot.daily.post_due(dt.datetime.fromisoformat(spec["now"]))
    seconds = time.perf_counter() - started
    print(json.dumps({"done": True, "seconds": seconds, "fallbacks": getattr(bot.pacer, "fallbacks", 0),
                      "late": getattr(bot.pacer, "late", 0), "refused": getattr(bot.pacer, "refused", 0),
                      "stale": getattr(bot.pacer, "stale", 0)}),
          flush=True)
    await bot.close()
    await asyncio.wait({runner}, timeout=10)


# -- the run ------------------------------------------------------------------------------------


#: The bot processes run this much nicer than the fake Discord. Discord answers from machines of its
#: own; here it shares two cores with every bot process and the database, and when it waits for a
#: core the requests it then reads all at once count in one of its windows, a burst the bots never
#: sent (its global limit would measure the harness's stalls rather than the bots' pacing).
BOT_NICENESS = 5


@contextlib.contextmanager
def _fake_without_gc_pauses() -> Iterator[None]:
    """No garbage collection in this process (the fake Discord's) while the processes post.

    A full collection over 10,000 servers' state and every request recorded so far stops the
    fake for 70 ms and more; the requests it then reads all at once count in one of its windows,
    a burst the bots never sent. Discord does not pause like that; the bots keep their own
    collector (their pauses are the product's).
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def _start(spec: dict[str, Any], token: str, log: pathlib.Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.shards", "--worker", json.dumps(spec), cwd=ROOT,
        env={**os.environ, "DISCORD_TOKEN": token}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=log.open("wb"), preexec_fn=lambda: os.nice(BOT_NICENESS),
    )


async def _line(process: asyncio.subprocess.Process, key: str, timeout: float) -> dict[str, Any]:
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"a cluster process exited before {key!r} (see its log)")
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if key in message:
            return message


async def measure(channels_count: int = 1000, *, processes: int = 4, mode: str = "shared",
                  redis_url: str = DEFAULT_REDIS, latency: float = 0.15, requests_per_second: float = 48.0,
                  shared_library: bool = False, postgres_url: str | None = None,
                  workdir: pathlib.Path | None = None) -> dict[str, Any]:
    """Fan the day out to `channels_count` channels from `processes` cluster processes; the figures.

    `postgres_url`: every process on one PostgreSQL library, in a new schema of that database.
    """
    if postgres_url is None:
        return await _measure(channels_count, processes, mode, redis_url, latency, requests_per_second,
                              shared_library, None, workdir)
    from storage.postgres import scratch_schema

    async with scratch_schema(postgres_url, "bench_shards") as library_url:
        return await _measure(channels_count, processes, mode, redis_url, latency, requests_per_second,
                              True, library_url, workdir)


async def _measure(channels_count: int, processes: int, mode: str, redis_url: str, latency: float,
                   requests_per_second: float, shared_library: bool, postgres_library: str | None,
                   workdir: pathlib.Path | None) -> dict[str, Any]:
    shard_count = processes * SHARDS_PER_PROCESS
    startup_timeout = STARTUP_TIMEOUT + STARTUP_PER_CHANNEL * channels_count
    with tempfile.TemporaryDirectory(dir=workdir) as tmp_dir:
        tmp = pathlib.Path(tmp_dir)
        async with FakeDiscord(shard_count=shard_count) as fake:
            guilds = [fake.add_guild(f"Lab {n}", channels=("papers",), shard=(n % shard_count, shard_count))
                      for n in range(channels_count)]
            owner = {g.channel_ids[0]: shard_of(g.id, shard_count) // SHARDS_PER_PROCESS for g in guilds}
            # One library for all, or one per process with its own servers' channels.
            libraries = [tmp / "library.db"] if shared_library else [tmp / f"library-{p}.db" for p in range(processes)]
            for n, library in enumerate(libraries):
                await _build_library(library, DAY, [(g.id, g.channel_ids[0]) for g in guilds
                                                    if shared_library or owner[g.channel_ids[0]] == n])
            if postgres_library is not None:  # the same library, moved as an admin would move theirs
                await copy.copy_library(str(libraries[0]), postgres_library)
                libraries = [postgres_library]
            if mode == "shared":
                await _forget_schedule(redis_url, fake.bot_user.id)
            now = dt.datetime.combine(DAY, POST_TIME, dt.UTC) + dt.timedelta(hours=1)
            specs = [{"process": p, "library": str(libraries[0 if shared_library else p]),
                      "api_base_url": fake.api_base_url, "gateway_url": fake.gateway_url,
                      "shard_ids": shards_of_process(p), "shard_count": shard_count,
                      "redis_url": redis_url if mode == "shared" else None,
                      "requests_per_second": requests_per_second, "now": now.isoformat(),
                      "startup_timeout": startup_timeout}
                     for p in range(processes)]
            workers = [await _start(spec, fake.token, tmp / f"process-{p}.log") for p, spec in enumerate(specs)]
            try:
                starting = time.perf_counter()
                ready = [await _line(w, "ready", startup_timeout) for w in workers]
                startup = time.perf_counter() - starting
                fake.enable_rate_limits(per_route=(5, 5.0), global_per_second=GLOBAL_PER_SECOND, global_window=1.0,
                                        limits={f"POST {MESSAGES_ROUTE}": CHANNEL_MESSAGES})
                if latency:
                    fake.add_latency(latency, "POST", MESSAGES_ROUTE)
                first = len(fake.requests)
                started = time.perf_counter()
                with _fake_without_gc_pauses():
                    for w in workers:
                        w.stdin.write(b"go\n")
                        await w.stdin.drain()
                    done = [await _line(w, "done", RUN_TIMEOUT) for w in workers]
                wall = time.perf_counter() - started
                await asyncio.gather(*(asyncio.wait_for(w.wait(), 30) for w in workers))
            finally:
                for w in workers:
                    if w.returncode is None:
                        w.kill()
                        await w.wait()
            traffic = fake.requests[first:]
            ledger = {}
            for n, library in enumerate(libraries):
                conn = await db.connect(library)
                try:
                    for channel_id, p in owner.items():
                        if shared_library or p == n:
                            ledger[channel_id] = await outbox.get(conn, "digest", channel_id, DAY)
                finally:
                    await conn.close()
            wrong_process = sum(
                1 for r in traffic if r.route == MESSAGES_ROUTE and r.method == "POST"
                and r.headers.get("User-Agent", "").rsplit(" ", 1)[-1]
                != f"process-{owner[int(r.params['channel_id'])]}"
            )
            read_back = _read_back(fake, ledger)
            limiter = fake.rate_limiter
    ok = [r for r in traffic if r.status is not None and 200 <= r.status < 300]
    limited = [r for r in traffic if r.status == 429]
    global_429 = sum(1 for r in limited if isinstance(r.response, dict) and r.response.get("global"))
    return {
        "mode": mode,
        "shared_library": shared_library,
        "backend": "postgresql" if postgres_library is not None else "sqlite",
        "channels": channels_count,
        "processes": processes,
        "shard_count": shard_count,
        "pacers": sorted({r["pacer"] for r in ready}),
        "requests_per_second_setting": requests_per_second,
        "bot_niceness": BOT_NICENESS,
        "fake_garbage_collection": "off while posting",
        "added_latency_seconds": latency,
        "day": DAY.isoformat(),
        "planned_messages": sum(len(d.messages) for d in ledger.values() if d is not None),
        "requests": len(traffic),
        "successful_requests": len(ok),
        "rate_limited_global": global_429,
        "rate_limited_route": len(limited) - global_429,
        "rate_limited_per_10_min": len(limited) / wall * 600 if wall else 0.0,
        "limiter_global_429s": limiter.global_limited,
        "other_errors": len(traffic) - len(ok) - len(limited),
        "wall_seconds": wall,
        "startup_seconds": startup,
        "process_seconds": [d["seconds"] for d in done],
        "redis_fallbacks": sum(d["fallbacks"] for d in done),
        "late_wakes": sum(d["late"] for d in done),
        "admissions_refused": sum(d["refused"] for d in done),
        "admissions_asked_again": sum(d["stale"] for d in done),
        "achieved_per_second": len(ok) / wall if wall else 0.0,
        "fraction_of_ceiling": len(ok) / wall / GLOBAL_PER_SECOND if wall else 0.0,
        "target_fraction": TARGET_FRACTION,
        "posted_by_another_process": wrong_process,
        "ledger": dict(Counter(d.status if d is not None else "not planned" for d in ledger.values())),
        **read_back,
    }


async def _forget_schedule(redis_url: str, bot_id: int) -> None:
    """A fresh run starts from an empty schedule and window (the pacer's keys, for this fake bot's id)."""
    import redis.asyncio

    from bot.posting.pacing import RedisPacer

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await client.delete(*RedisPacer.keys_for(f"paperbot:global-rate:{bot_id}"))
    finally:
        await client.aclose()


def markdown(runs: list[dict[str, Any]]) -> str:
    """The clusters section of results.md."""
    first = runs[0]
    lines = [
        "## Clusters on PostgreSQL: one library, one global limit" if first.get("backend") == "postgresql"
        else "## Clusters: one global limit across processes",
        "",
        f"{first['day']}'s digest to {first['channels']:,} channels (one per server) from {first['processes']} "
        f"Paperbot processes, each its own Python process holding {SHARDS_PER_PROCESS} of {first['shard_count']} "
        f"shards, through the fake Discord enforcing {GLOBAL_PER_SECOND} requests/s per bot token across all of "
        f"them and {CHANNEL_MESSAGES[0]} messages per {CHANNEL_MESSAGES[1]:g} s per channel"
        + (f"; {first['added_latency_seconds'] * 1000:.0f} ms added to every message POST."
           if first["added_latency_seconds"] else "."),
        "`shared`: the processes pace through Redis (`[discord] rate_limit_redis_url`); `alone`: each paces itself "
        "(no Redis), each at `[delivery] requests_per_second` (the column's rate). "
        + ("All processes share one PostgreSQL library (filled from SQLite by `paperbot db copy`)."
           if first.get("backend") == "postgresql"
           else "All processes share one SQLite library." if first.get("shared_library")
           else "Each process has its own SQLite library with its own servers' channels."),
        "",
        "| figure | " + " | ".join(f"`{r['mode']}` {r['requests_per_second_setting']:g}/s" for r in runs) + " |",
        "| --- | " + " | ".join("---" for _ in runs) + " |",
    ]
    rows = [
        ("pacer", lambda r: ", ".join(r["pacers"])),
        ("messages planned / requests made", lambda r: f"{r['planned_messages']:,} / {r['requests']:,}"),
        ("successful requests/s (all processes)",
         lambda r: f"{r['achieved_per_second']:.1f} = **{r['fraction_of_ceiling']:.0%}** of {GLOBAL_PER_SECOND}/s"),
        ("global 429s", lambda r: f"**{r['rate_limited_global']:,}**"),
        ("wake-ups over an interval late (stalls) / admissions refused (window full) / asked again (resumed late)",
         lambda r: f"{r.get('late_wakes', 0):,} / {r.get('admissions_refused', 0):,} / "
                   f"{r.get('admissions_asked_again', 0):,}"),
        ("per-channel 429s", lambda r: f"{r['rate_limited_route']:,}"),
        ("429s per 10 min at this pace", lambda r: f"{r['rate_limited_per_10_min']:,.0f} (ban at "
                                                    f"{INVALID_REQUESTS_PER_10_MIN:,})"),
        ("other errors", lambda r: f"{r['other_errors']:,}"),
        ("wall time", lambda r: f"{r['wall_seconds']:.1f} s"),
        ("duplicates / misses", lambda r: f"{r['duplicates']} / {r['misses']}"),
        ("posted by a process not holding the shard", lambda r: f"{r['posted_by_another_process']}"),
        ("ledger", lambda r: ", ".join(f"{k} {v:,}" for k, v in sorted(r["ledger"].items()))),
    ]
    lines += [f"| {name} | " + " | ".join(cell(r) for r in runs) + " |" for name, cell in rows]
    for run in runs:
        if run["mode"] == "shared":
            met = (run["fraction_of_ceiling"] >= TARGET_FRACTION and run["rate_limited_global"] == 0
                   and run["duplicates"] == 0 and run["misses"] == 0)
            lines += ["", f"Target (`shared` {run['requests_per_second_setting']:g}/s: ≥ {TARGET_FRACTION:.0%} of the "
                          f"ceiling, 0 global 429s, 0 duplicates, 0 misses) met: {'yes' if met else 'no'}."]
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--mode", choices=["shared", "alone", "both"], default="both")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--latency", type=float, default=0.15, help="seconds added to every message POST")
    parser.add_argument("--requests-per-second", type=float, default=48.0)
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "data" / "results-shards.json")
    parser.add_argument("--markdown", nargs="+", type=pathlib.Path, help="print the section for these result files")
    parser.add_argument("--shared-library", action="store_true", help="one SQLite library for all processes")
    parser.add_argument("--postgres", metavar="URL", help="one PostgreSQL library for all processes, in a new "
                        "schema of this database, e.g. postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # discord.py warns on every 429; they are counted instead
    if args.worker:
        asyncio.run(worker(json.loads(args.worker)))
        return
    if args.markdown:
        print(markdown([run for path in args.markdown for run in json.loads(path.read_text())]))
        return
    modes = ["shared", "alone"] if args.mode == "both" else [args.mode]
    runs = [asyncio.run(measure(args.channels, processes=args.processes, mode=mode, redis_url=args.redis_url,
                                latency=args.latency, requests_per_second=args.requests_per_second,
                                shared_library=args.shared_library, postgres_url=args.postgres))
            for mode in modes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps(runs, indent=2))
    print(markdown(runs))


if __name__ == "__main__":
    main()
