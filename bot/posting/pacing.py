"""Pacing requests under Discord's global limit: in this process, or shared by every process.

Discord allows a bot 50 requests per second in all, however many processes it runs. One
process paces itself (`RequestPacer`). Several processes of one bot share a `RedisPacer`: the
next free slot lives in Redis and an atomic script hands out slots in turn, timed by Redis's own
clock, so the processes together keep the configured rate whatever their number. Posters only
need `Pacer.wait()`, so they take either. With the shared pacer the bot paces every REST request
on the wire instead (`pace_every_request`), where discord.py's retries are paced too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Protocol

import aiohttp

log = logging.getLogger(__name__)

__all__ = ["NO_PACING", "Pacer", "RedisPacer", "RequestPacer", "make_pacer", "pace_every_request"]


class Pacer(Protocol):
    async def wait(self) -> None:
        """Return when the caller may send its next request."""

    async def close(self) -> None:
        """Release what the pacer holds (a Redis connection)."""


class _Unpaced:
    """For a poster whose requests are already paced on the wire (`pace_every_request`)."""

    async def wait(self) -> None:
        return None

    async def close(self) -> None:
        return None


NO_PACING = _Unpaced()


class RequestPacer:
    """Spaces requests `1 / per_second` apart, so a fan-out stays just under Discord's global limit.

    discord.py learns of the global limit only from a 429, and each 429 is an "invalid request"
    (10,000 in 10 minutes get the bot's address banned). Worse, the requests it then holds back
    are released together when the limit resets, into a window the paced ones need too, so one
    429 breeds the next. Slots follow a schedule, so a caller woken a little late does not slow
    the rate, but slots missed in a stall (a busy event loop) are lost, never made up in a burst.
    Callers go in turn (the lock is FIFO), so waiting is fair across channels.
    """

    def __init__(self, per_second: float, clock=time.monotonic) -> None:
        self.interval = 1.0 / per_second
        self.clock = clock
        self._next_slot = float("-inf")
        self._turn = asyncio.Lock()

    async def wait(self) -> None:
        """Return at this caller's slot."""
        async with self._turn:
            now = self.clock()
            self._next_slot = max(self._next_slot, now)
            if self._next_slot > now:
                await asyncio.sleep(self._next_slot - now)
            self._next_slot += self.interval

    async def close(self) -> None:
        """Nothing to release; here so every pacer closes alike."""


#: Reserve the next slot: KEYS[1] holds the next free slot (µs, Redis's clock); ARGV[1] is the
#: interval in µs, ARGV[2] the key's expiry in ms. Returns how many µs the caller must wait.
#: Like `RequestPacer`, a slot nobody took in time is gone, never made up in a burst.
RESERVE_SLOT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('SET', KEYS[1], string.format('%d', slot + tonumber(ARGV[1])), 'PX', ARGV[2])
return slot - now
"""


class RedisPacer:
    """`RequestPacer`'s schedule kept in Redis, so all processes of one bot share one rate.

    If Redis cannot be reached the process falls back to a local pacer at `fallback_per_second`
    (its share of the rate: its shards / all shards), so the processes together still stay under
    the limit, and tries Redis again after `retry_after` seconds.
    """

    #: Woken more than this many slot intervals after its slot, a caller takes a new slot instead.
    LATE_SLOTS = 2
    #: A caller late for this many slots in a row goes anyway (a process stalled that often is not bursting).
    MAX_RESERVATIONS = 3

    def __init__(self, client, key: str, per_second: float, *, fallback_per_second: float,
                 retry_after: float = 5.0, clock=time.monotonic) -> None:
        self.client = client
        self.key = key
        self.interval_us = max(1, round(1_000_000 / per_second))
        self.fallback = RequestPacer(fallback_per_second, clock)
        self.retry_after = retry_after
        self.clock = clock
        self._reserve = client.register_script(RESERVE_SLOT)
        self._down_until: float | None = None
        #: Slots taken locally because Redis was unreachable (for logs and tests).
        self.fallbacks = 0
        #: Slots given up because this process woke too late for them (a stall).
        self.late_slots = 0

    async def wait(self, retries: int = 0) -> None:
        from redis.exceptions import RedisError

        if self._down_until is not None and self.clock() < self._down_until:
            self.fallbacks += 1
            return await self.fallback.wait()
        try:
            wait_us = await self._reserve(keys=[self.key], args=[self.interval_us, 60_000])
        except (RedisError, OSError) as error:
            if self._down_until is None:
                log.warning("rate-limit Redis unreachable (%s); pacing this process alone at its share", error)
            self._down_until = self.clock() + self.retry_after
            self.fallbacks += 1
            return await self.fallback.wait()
        if self._down_until is not None:
            log.info("rate-limit Redis reachable again; sharing the global rate")
            self._down_until = None
        if wait_us > 0:
            slot = self.clock() + wait_us / 1_000_000
            await asyncio.sleep(wait_us / 1_000_000)
            late = self.clock() - slot
            if late > self.LATE_SLOTS * self.interval_us / 1_000_000 and retries < self.MAX_RESERVATIONS - 1:
                # Woken well after the slot (a stalled event loop): so were the callers after it,
                # and all going now would be a burst. Give the slot up and take a new one.
                self.late_slots += 1
                return await self.wait(retries + 1)

    async def close(self) -> None:
        await self.client.aclose()


def make_pacer(per_second: float, *, redis_url: str | None, key: str, share: float = 1.0) -> RequestPacer | RedisPacer:
    """The pacer for `[delivery] requests_per_second`: shared through Redis when a URL is set.

    `key` names the bot (its user id): processes of one bot share a rate, other bots do not.
    `share` is this process's part of the rate if it has to pace alone (Redis down).
    """
    if not redis_url:
        return RequestPacer(per_second)
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    return RedisPacer(client, f"paperbot:global-rate:{key}", per_second, fallback_per_second=per_second * share)


def _counts_towards_the_global_limit(url) -> bool:
    """REST calls do; interaction callbacks and their webhook follow-ups do not (as on Discord), nor the gateway."""
    path = url.path
    return "/api/v" in path and "/interactions/" not in path and "/webhooks/" not in path


def pace_every_request(pacer: Callable[[], Pacer | None]) -> aiohttp.TraceConfig:
    """An aiohttp trace (discord.py's `http_trace`) holding each REST request until its slot, at the wire.

    Pacing in the poster happens *before* discord.py's own waits: after a global 429 discord.py
    holds every request of the process until the limit resets and then lets them all go at once,
    and that burst brings the next 429, across all processes. Paced here, after discord.py's
    waits, its retries and held-back requests leave one slot at a time like everything else.
    `pacer` is called per request (the bot creates its pacer only once logged in).
    """

    async def on_request_start(session, context, params: aiohttp.TraceRequestStartParams) -> None:
        current = pacer()
        if current is not None and _counts_towards_the_global_limit(params.url):
            await current.wait()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace
