"""Delivery fan-out: one day's digest to N channels through a fake Discord that enforces Discord's limits.

`python -m benchmarks.fanout [--channels 1000] [--latency 0.15]` (`--channels 100` for a quick run).

The real Paperbot connects to the fake Discord (testing) on 127.0.0.1 with Discord's
published limits switched on: 50 requests per second globally and 5 messages per 5 s per channel,
answered with 429s carrying retry_after and X-RateLimit headers. N servers with one digest channel
each are set up through storage (fast; the slash commands are tested elsewhere), one real day of
the corpus is ingested, and the scheduler's own `post_due` delivers it, so the measured path is the
one a real morning takes: due days -> `DigestPoster.deliver_many` -> ledger -> discord.py -> Discord.

Figures: requests made, 429s (global and per-route), wall time, successful requests per second as
a fraction of the global ceiling (target >= 90%), and correctness read back from the fake Discord:
duplicates (a channel holding a planned message twice, by nonce or by content) and misses (a
planned message absent from its channel), plus the ledger's final state. The process's peak RSS
(bot *and* fake: they share the process) is recorded as an upper bound for the bot.

127.0.0.1 answers in a millisecond; `--latency` adds Discord's (~0.1-0.3 s) to every message POST,
which is what decides whether enough channels are in flight to reach the ceiling. Runs of a few
seconds are dominated by planning before the first request and by the fixed 1 s windows (a short
run can even exceed 100%): only runs of a minute or more say anything about the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import pathlib
import tempfile
import time
from collections import Counter, defaultdict
from typing import Any

from bot.client import Paperbot
from settings import DatabaseSettings, DeliverySettings, Settings
from digests.ingest import ingest_targets
from storage import channels, db, outbox
from storage.channels import DigestChannel
from testing import FakeDiscord, running_bot

from benchmarks.synth import corpus_files

HERE = pathlib.Path(__file__).resolve().parent
#: A real corpus day with 38 papers: three compact messages per channel, so 1,000 channels take
#: ~60 s at Discord's ceiling.
DAY = dt.date(2025, 3, 21)
#: Discord's limits: 50 requests/s per bot, and 5 messages per 5 s in one channel.
GLOBAL_PER_SECOND = 50
CHANNEL_MESSAGES = (5, 5.0)
#: Invalid requests (401/403/429) Discord tolerates per 10 minutes before a temporary IP ban.
INVALID_REQUESTS_PER_10_MIN = 10_000
TARGET_FRACTION = 0.90
MESSAGES_ROUTE = "/channels/{channel_id}/messages"
POST_TIME = dt.time(9, 0)


def day_files(day: dt.date) -> list[pathlib.Path]:
    """The corpus files (every source and format) holding `day`'s digest."""
    dated = (f"{day:%Y/%m/%d}.", f"{day.isoformat()}.")
    return [p for p in corpus_files() if any(p.as_posix().endswith(d + p.suffix[1:]) for d in dated)]


async def _build_library(path: pathlib.Path, day: dt.date, digest_channels: list[tuple[int, int]]) -> None:
    """Ingest `day` and make every (guild, channel) a compact digest channel set up that morning."""
    files = day_files(day)
    if not files:
        raise SystemExit(f"no corpus digest for {day}")
    conn = await db.connect(path)
    try:
        summary = await ingest_targets(conn, [str(f) for f in files])
        if summary.failed:
            raise RuntimeError(f"ingesting {day} failed: {[o.error for o in summary.outcomes if o.error]}")
        set_up = dt.datetime.combine(day, dt.time(0, 0), dt.UTC)  # so `day` is the only day owed
        for guild_id, channel_id in digest_channels:
            await channels.save_channel(conn, DigestChannel(
                channel_id=channel_id, guild_id=guild_id, post_time=POST_TIME, timezone="UTC", created_at=set_up,
            ))
    finally:
        await conn.close()


def memory_mb(field: str = "VmHWM") -> float | None:
    """A memory figure of this process from /proc (Linux), in MB: VmHWM is the peak RSS, VmRSS the current."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _read_back(fake: FakeDiscord, ledger: dict[int, outbox.Item | None]) -> dict[str, Any]:
    """Duplicates and misses, comparing every channel's messages on the fake with its planned ones."""
    posted: dict[str, list[dict]] = defaultdict(list)
    for message in fake.state.messages.values():
        posted[message["channel_id"]].append(message)
    duplicates = missing = wrong_ids = 0
    channels_missing = 0
    for channel_id, delivery in ledger.items():
        messages = posted.get(str(channel_id), [])
        by_nonce = Counter(m.get("nonce") for m in messages)
        by_content = Counter(json.dumps([m.get("content"), m.get("embeds")], sort_keys=True) for m in messages)
        duplicates += max(sum(n - 1 for n in by_nonce.values()), sum(n - 1 for n in by_content.values()))
        planned = delivery.messages if delivery is not None else []
        absent = [p for p in planned if p.nonce not in by_nonce]
        missing += len(absent) + (1 if delivery is None else 0)
        channels_missing += bool(absent) or delivery is None
        ids = {int(m["id"]) for m in messages}
        wrong_ids += sum(1 for p in planned if p.message_id is not None and p.message_id not in ids)
    return {"duplicates": duplicates, "misses": missing, "channels_with_misses": channels_missing,
            "ledger_ids_not_on_discord": wrong_ids}


async def measure(channels_count: int = 1000, *, day: dt.date = DAY, concurrency: int | None = None,
                  requests_per_second: float | None = None, latency: float = 0.0,
                  workdir: pathlib.Path | None = None) -> dict[str, Any]:
    """Fan `day`'s digest out to `channels_count` channels; the figures as a dict (see the module doc).

    `latency` (seconds) is added to every message POST: 127.0.0.1 answers in about a millisecond,
    Discord in tens to hundreds, and that is what decides how much concurrency the ceiling needs.
    """
    chosen = {"concurrency": concurrency, "requests_per_second": requests_per_second}
    delivery = DeliverySettings(**{k: v for k, v in chosen.items() if v is not None})  # else the defaults
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        library = pathlib.Path(tmp) / "library.db"
        async with FakeDiscord(check_spec=False) as fake:  # the schema check costs the fake CPU; the suite runs it
            guilds = [fake.add_guild(f"Lab {n}", channels=("papers",)) for n in range(channels_count)]
            digest_channels = [(g.id, g.channel_ids[0]) for g in guilds]
            await _build_library(library, day, digest_channels)
            fake.enable_rate_limits(per_route=(5, 5.0), global_per_second=GLOBAL_PER_SECOND, global_window=1.0,
                                    limits={f"POST {MESSAGES_ROUTE}": CHANNEL_MESSAGES})
            if latency:
                fake.add_latency(latency, "POST", MESSAGES_ROUTE)
            settings = Settings(database=DatabaseSettings(path=library), delivery=delivery)
            async with running_bot(fake, lambda: Paperbot(settings, guild_ready_timeout=0.01),
                                   ready_timeout=60 + channels_count / 20) as bot:
                await fake.wait_for(lambda: bot.daily is not None and bot.daily.ready.is_set(), timeout=30,
                                    what="the scheduler to start")
                first_request = len(fake.requests)
                now = dt.datetime.combine(day, POST_TIME, dt.UTC) + dt.timedelta(hours=1)
                rss_before = memory_mb("VmRSS")
                started = time.perf_counter()
                first_post = asyncio.create_task(_first_request_after(fake, first_request))
                await bot.daily.post_due(now)
                wall = time.perf_counter() - started
                if len(fake.requests) > first_request:
                    head = (await first_post) - started
                else:  # nothing was sent: the figures below say so
                    first_post.cancel()
                    head = wall
                traffic = fake.requests[first_request:]
                ledger = {cid: await outbox.get(bot.db, "digest", cid, day) for _, cid in digest_channels}
                errors = [c.last_error for c in await channels.list_channels(bot.db) if c.last_error]
    figures = _figures(channels_count, day, delivery, latency, wall, traffic, ledger, errors, fake)
    sending = wall - head
    return {**figures, "seconds_to_first_request": head, "rss_before_fan_out_mb": rss_before,
            "fraction_while_sending": figures["successful_requests"] / sending / GLOBAL_PER_SECOND if sending else 0.0}


async def _first_request_after(fake: FakeDiscord, seen: int) -> float:
    """When the fake recorded request number `seen` + 1 (perf_counter): the scheduler's planning ends there."""
    await fake.wait_for(lambda: len(fake.requests) > seen, timeout=600, what="the first digest message")
    return time.perf_counter()


def _figures(channels_count, day, delivery, latency, wall, traffic, ledger, errors, fake) -> dict[str, Any]:
    ok = [r for r in traffic if r.status is not None and 200 <= r.status < 300]
    limited = [r for r in traffic if r.status == 429]
    global_429 = sum(1 for r in limited if isinstance(r.response, dict) and r.response.get("global"))
    achieved = len(ok) / wall if wall else 0.0
    statuses = Counter(d.status if d is not None else "not planned" for d in ledger.values())
    planned = sum(len(d.messages) for d in ledger.values() if d is not None)
    return {
        "channels": channels_count,
        "day": day.isoformat(),
        "concurrency": delivery.concurrency,
        "requests_per_second_setting": delivery.requests_per_second,
        "added_latency_seconds": latency,
        "limits": {"global_per_second": GLOBAL_PER_SECOND, "channel_messages": list(CHANNEL_MESSAGES)},
        "planned_messages": planned,
        "messages_per_channel": planned / channels_count if channels_count else 0,
        "requests": len(traffic),
        "successful_requests": len(ok),
        "rate_limited": len(limited),
        "rate_limited_global": global_429,
        "rate_limited_route": len(limited) - global_429,
        "rate_limited_per_10_min": len(limited) / wall * 600 if wall else 0.0,
        "other_errors": len(traffic) - len(ok) - len(limited),
        "wall_seconds": wall,
        "achieved_per_second": achieved,
        "fraction_of_ceiling": achieved / GLOBAL_PER_SECOND,
        "target_fraction": TARGET_FRACTION,
        **_read_back(fake, ledger),
        "ledger": dict(statuses),
        "channels_with_errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "peak_rss_mb": memory_mb("VmHWM"),
    }


def markdown(figures: dict[str, Any]) -> str:
    """The fan-out section of results.md."""
    f = figures
    met = f["fraction_of_ceiling"] >= f["target_fraction"] and f["duplicates"] == 0 and f["misses"] == 0
    rss = "n/a"
    if f.get("peak_rss_mb") and f.get("rss_before_fan_out_mb"):
        rss = f"{f['peak_rss_mb']:,.0f} MB ({f['rss_before_fan_out_mb']:,.0f} MB before the fan-out)"
    return "\n".join([
        "## Delivery fan-out",
        "",
        f"{f['day']}'s digest ({f['messages_per_channel']:.0f} messages a channel) to {f['channels']:,} channels "
        f"through the fake Discord enforcing {f['limits']['global_per_second']} requests/s globally and "
        f"{f['limits']['channel_messages'][0]} messages per {f['limits']['channel_messages'][1]:g} s per channel; "
        f"`[delivery] concurrency = {f['concurrency']}`, `requests_per_second = {f['requests_per_second_setting']:g}`"
        + (f"; {f['added_latency_seconds'] * 1000:.0f} ms added to every message POST (Discord's latency)."
           if f["added_latency_seconds"] else "; no added latency (127.0.0.1 answers in ~1 ms)."),
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| messages planned / requests made | {f['planned_messages']:,} / {f['requests']:,} |",
        f"| 429s (global / per channel) | {f['rate_limited']:,} ({f['rate_limited_global']:,} / "
        f"{f['rate_limited_route']:,}); at this pace {f['rate_limited_per_10_min']:,.0f} per 10 min "
        f"(Discord bans at {INVALID_REQUESTS_PER_10_MIN:,}) |",
        f"| other errors | {f['other_errors']:,} |",
        f"| wall time (until the first request) | {f['wall_seconds']:.1f} s ({f['seconds_to_first_request']:.1f} s) |",
        f"| successful requests/s | {f['achieved_per_second']:.1f} = **{f['fraction_of_ceiling']:.0%}** of the "
        f"ceiling (target ≥ {f['target_fraction']:.0%}); {f['fraction_while_sending']:.0%} from the first "
        "request on |",
        f"| duplicates / misses | {f['duplicates']} / {f['misses']} |",
        f"| ledger | {', '.join(f'{k} {v:,}' for k, v in sorted(f['ledger'].items()))} |",
        f"| peak RSS (bot + fake, one process) | {rss} |",
        "",
        f"Target met: {'yes' if met else 'no'}.",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DAY)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the [delivery] setting's default")
    parser.add_argument("--requests-per-second", type=float, default=None, help="default: the setting's default")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every message POST")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "data" / "results-fanout.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # discord.py warns on every 429; they are counted instead
    figures = asyncio.run(measure(args.channels, day=args.day, concurrency=args.concurrency,
                                  requests_per_second=args.requests_per_second, latency=args.latency))
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(markdown(figures))


if __name__ == "__main__":
    main()
