"""Pacing requests under Discord's global limit: in this process, or shared by every process.

Discord allows a bot 50 requests per second in all, however many processes it runs. One
process paces itself (`RequestPacer`). Several processes of one bot share a `RedisPacer`: Redis
lets each request go, atomically and by its own clock, only while fewer than the configured
rate went in the last second from all processes together (a sliding log), and a schedule of
slots kept beside it spaces them evenly. Posters only need `Pacer.wait()`, so they take either.
With the shared pacer the bot paces every REST request on the wire instead
(`pace_every_request`), where discord.py's retries are paced too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
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


#: Reserve the next slot. KEYS: the next free slot, the log (`ADMIT`). ARGV: the interval (µs),
#: the limit, the window (µs), the caller's member, the keys' expiry (ms). The slot is the next
#: free one, or later if the window would be full there: then it is when the oldest entry that
#: fills it leaves. The reservation goes into the log at the slot, holding the caller's place.
#: Returns the slot (µs, Redis's clock) and how many µs until it. Like `RequestPacer`, a slot
#: nobody took in time is gone, never made up in a burst.
RESERVE_SLOT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local inside = redis.call('ZRANGEBYSCORE', KEYS[2], string.format('(%d', slot - window), '+inf', 'WITHSCORES')
local count = #inside / 2
if count >= limit then slot = tonumber(inside[2 * (count - limit + 1)]) + window end
redis.call('ZADD', KEYS[2], slot, ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[1], string.format('%d', slot + interval), 'PX', ARGV[5])
return {slot, slot - now}
"""

#: Let one request go now, or say how long to wait: the sliding log of `RedisPacer`.
#: KEYS: the next free slot, the log (admission times, and reservations at their slots, in µs by
#: member), the callers waiting (their slots by member) and until when each keeps its place (µs
#: by member). ARGV: the limit, the window (µs), the caller's member and slot (µs), the interval
#: (µs), how long a refused caller keeps its place without asking again (µs), the keys' expiry
#: (ms). Admitted if the window up to now (without the caller's own reservation) and the callers
#: waiting since an earlier slot leave it room: logged now, returns 0. Otherwise the caller waits
#: in line by its slot and gets the µs until the entry that makes room leaves.
ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local limit, window, member, slot = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local interval = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do
  redis.call('ZREM', KEYS[3], gone)
  redis.call('ZREM', KEYS[4], gone)
end
redis.call('ZREM', KEYS[2], member)
local inside = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES')
local taken = #inside / 2 + redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. ARGV[4])
if taken < limit then
  redis.call('ZADD', KEYS[2], now, member)
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
  if now > slot + interval then
    local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
    if nxt < now + interval then
      redis.call('SET', KEYS[1], string.format('%d', now + interval), 'PX', ARGV[7])
    end
  end
  return 0
end
local wait = interval
local making_room = taken - limit + 1
if making_room <= #inside / 2 then wait = tonumber(inside[2 * making_room]) + window - now end
redis.call('ZADD', KEYS[3], 'NX', slot, member)
redis.call('ZADD', KEYS[4], now + wait + tonumber(ARGV[6]), member)
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
return wait
"""


class RedisPacer:
    """At most `limit` requests in any `window` (1 s) across all processes of a bot, admitted by Redis.

    A caller reserves the next slot of a schedule kept in Redis (`RESERVE_SLOT`: `RequestPacer`'s,
    shared, so requests stay evenly spaced) and then, when it wakes, must be admitted by a sliding
    log of the window's requests (`ADMIT`), by Redis's clock at the moment it goes. A process
    whose event loop stalled wakes late: it goes only if the window has room, so late callers
    cannot burst past the limit. The schedule hands out no slot the window could not admit, and
    a reservation holds its place in the log until it is used, so callers on time are not turned
    away and the log does not end up setting the pace (it would repeat a second's bunching in
    the next). Within a process callers go in turn, one holding a slot at a time, so a stall
    wakes one caller, not all of them. A caller the window turns away keeps its place in line by
    its slot: newer callers leave it the next free place, so a process that is always late still
    gets through, however busy the others are. A caller whose task resumes more than an interval
    after Redis admitted it asks again, so the log holds when requests left, not when they were
    let go (Discord counts them when they arrive).

    If Redis cannot be reached the process falls back to a local pacer at `fallback_per_second`
    (its share of the rate: its shards / all shards), so the processes together still stay under
    the limit, and tries Redis again after `retry_after` seconds.
    """

    #: How long (s) a caller the log turned away keeps its place without asking again (a process gone).
    CLAIM_SECONDS = 5.0
    #: Redis keys expire this long (ms) after their last write: nothing is left behind by a bot gone.
    EXPIRY_MS = 60_000
    #: Times a caller asks again when it resumed late from an admission (then it goes: a loop that
    #: is always that slow must still make progress, and its entry is as fresh as it can be).
    STALE_ASKS = 3

    def __init__(self, client, key: str, per_second: float, *, fallback_per_second: float, window: float = 1.0,
                 retry_after: float = 5.0, clock=time.monotonic) -> None:
        self.client = client
        self.key = key
        self.keys = self.keys_for(key)
        self.interval_us = max(1, round(1_000_000 / per_second))
        self.window_us = max(1, round(window * 1_000_000))
        #: Requests admitted in any window: the configured rate over the window, rounded up.
        self.limit = max(1, math.ceil(per_second * window - 1e-9))
        self.fallback = RequestPacer(fallback_per_second, clock)
        self.retry_after = retry_after
        self.clock = clock
        self._reserve = client.register_script(RESERVE_SLOT)
        self._admit = client.register_script(ADMIT)
        self._turn = asyncio.Lock()
        self._name = uuid.uuid4().hex  # log members are this process's name and a count: unique, however close in time
        self._admissions = itertools.count()
        self._down_until: float | None = None
        #: Slots taken locally because Redis was unreachable (for logs and tests).
        self.fallbacks = 0
        #: Callers woken more than an interval after their slot (a stalled event loop).
        self.late = 0
        #: Times the log turned a caller away (the window was full) and it waited for a place.
        self.refused = 0
        #: Admissions asked again because the task resumed more than an interval after Redis gave them.
        self.stale = 0

    @staticmethod
    def keys_for(key: str) -> tuple[str, str, str, str]:
        """The schedule, the log, the callers waiting and their deadlines: all a bot's pacing keeps in Redis."""
        return key, f"{key}:admitted", f"{key}:waiting", f"{key}:waiting-until"

    async def wait(self) -> None:
        from redis.exceptions import RedisError

        async with self._turn:
            if self._down_until is not None and self.clock() < self._down_until:
                self.fallbacks += 1
                return await self.fallback.wait()
            try:
                await self._admitted()
            except (RedisError, OSError) as error:
                if self._down_until is None:
                    log.warning("rate-limit Redis unreachable (%s); pacing this process alone at its share", error)
                self._down_until = self.clock() + self.retry_after
                self.fallbacks += 1
                return await self.fallback.wait()

    async def _admitted(self) -> None:
        """Wait for a slot, then until the log admits this caller; nobody goes without admission."""
        member = f"{self._name}:{next(self._admissions)}"
        slot, wait_us = await self._reserve(keys=list(self.keys[:2]),
                                            args=[self.interval_us, self.limit, self.window_us, member, self.EXPIRY_MS])
        if self._down_until is not None:
            log.info("rate-limit Redis reachable again; sharing the global rate")
            self._down_until = None
        args = [self.limit, self.window_us, member, slot, self.interval_us, round(self.CLAIM_SECONDS * 1_000_000),
                self.EXPIRY_MS]
        try:
            if wait_us > 0:
                due = self.clock() + wait_us / 1_000_000
                await asyncio.sleep(wait_us / 1_000_000)
                if self.clock() - due > self.interval_us / 1_000_000:
                    self.late += 1
            asks_again = self.STALE_ASKS
            while True:
                asked = self.clock()
                wait_us = await self._admit(keys=list(self.keys), args=args)
                if wait_us:
                    self.refused += 1
                    await asyncio.sleep(wait_us / 1_000_000)
                elif self.clock() - asked > self.interval_us / 1_000_000 and asks_again:
                    # Admitted, but this task resumed too long after Redis said so (a busy event loop):
                    # the request would reach Discord later than the log has it. Asking again moves
                    # the caller's entry to now, or makes it wait if the window filled meanwhile.
                    self.stale += 1
                    asks_again -= 1
                else:
                    return
        except asyncio.CancelledError:  # give the place up at once rather than hold it until it expires
            with contextlib.suppress(Exception):
                pipe = self.client.pipeline(transaction=False)
                for key in self.keys[1:]:
                    pipe.zrem(key, member)
                await pipe.execute()
            raise

    async def close(self) -> None:
        await self.client.aclose()


def make_pacer(per_second: float, *, redis_url: str | None, key: str, share: float = 1.0,
               window: float = 1.0) -> RequestPacer | RedisPacer:
    """The pacer for `[delivery] requests_per_second`: shared through Redis when a URL is set.

    `key` names the bot (its user id): processes of one bot share a rate, other bots do not.
    `share` is this process's part of the rate if it has to pace alone (Redis down). `window`
    is the span Discord counts requests over (1 s; tests shrink it with the fake's).
    """
    if not redis_url:
        return RequestPacer(per_second)
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    return RedisPacer(client, f"paperbot:global-rate:{key}", per_second, fallback_per_second=per_second * share,
                      window=window)


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
