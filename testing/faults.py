"""Replies, Discord-shaped errors, fault injection and an optional rate limiter.

Faults are declarative rules checked before routing, so a test says *what*
Discord does ("the next POST to this channel gets a 429") without touching
handlers. The rate limiter imitates Discord's per-route buckets and global
limit closely enough that discord.py's own bucket logic engages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

if TYPE_CHECKING:
    from .server import RecordedRequest

#: Messages Discord sends for the JSON error codes tests commonly need.
ERROR_MESSAGES = {
    0: None,
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10013: "Unknown User",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    10063: "Unknown application command",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50007: "Cannot send messages to this user",
    50008: "Cannot send messages in a non-text channel",
    50013: "Missing Permissions",
    50033: "Invalid Recipient(s)",
    50035: "Invalid Form Body",
}
DEFAULT_CODES = {403: 50013, 404: 10003}
STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
               429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
               504: "Gateway Timeout"}


@dataclass
class Reply:
    """What a route answers; converted to an aiohttp response at the very end."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def to_web(self) -> web.Response:
        if self.body is None:
            return web.Response(status=self.status, headers=self.headers)
        if isinstance(self.body, bytes):
            return web.Response(status=self.status, body=self.body, headers=self.headers)
        # Exactly "application/json": discord.py compares the header verbatim, and
        # aiohttp appends "; charset=utf-8" for json_response *and* for text=..., so send bytes.
        return web.Response(status=self.status, body=json.dumps(self.body).encode(),
                            headers={"Content-Type": "application/json", **self.headers})


class ApiError(Exception):
    """Raised by route handlers to answer with a Discord JSON error."""

    def __init__(self, status: int, code: int | None = None, message: str | None = None) -> None:
        self.status = status
        self.code = DEFAULT_CODES.get(status, 0) if code is None else code
        self.message = message or ERROR_MESSAGES.get(self.code) or f"{status}: {STATUS_TEXT.get(status, 'Error')}"
        super().__init__(f"{self.status} {self.code} {self.message}")

    def reply(self) -> Reply:
        return Reply(self.status, {"message": self.message, "code": self.code})


def rate_limited_reply(retry_after: float, *, is_global: bool = False, via: bool = True,
                       bucket: str = "fake-bucket", limit: int = 5, scope: str = "user") -> Reply:
    """A 429 the way Discord sends it. Without ``Via`` discord.py assumes a Cloudflare ban and gives up."""
    headers = {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Scope": "global" if is_global else scope,
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    if via:
        headers["Via"] = "1.1 google"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global, "code": 0}
    return Reply(429, body, headers)


def path_pattern(template: str) -> re.Pattern[str]:
    """'/channels/{channel_id}/messages' -> regex with named groups; '@me' etc. stay literal."""
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


@dataclass
class Fault:
    """One injected misbehaviour. ``None`` fields match anything.

    ``path`` may be a concrete path ("/channels/123/messages") or a route
    template ("/channels/{channel_id}/messages"). ``status=None`` means
    "only add latency". ``times=None`` means forever.
    """

    method: str | None = None
    path: str | None = None
    channel_id: int | None = None
    status: int | None = 500
    code: int | None = None
    message: str | None = None
    retry_after: float = 0.05
    is_global: bool = False
    via: bool = True
    delay: float = 0.0
    times: int | None = 1
    when: Callable[[RecordedRequest], bool] | None = None
    #: Let the request go through (the message is created) and answer with the fault instead:
    #: Discord did the work but the answer was a 5xx, or was lost.
    after_handling: bool = False
    hits: int = 0

    def matches(self, req: RecordedRequest) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method.upper() != req.method:
            return False
        if self.path and self.path not in (req.path, req.route):
            return False
        if self.channel_id is not None and str(self.channel_id) != req.params.get("channel_id"):
            return False
        return self.when is None or self.when(req)

    async def apply(self, req: RecordedRequest) -> Reply | None:
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is None:
            return None
        if self.status == 429:
            return rate_limited_reply(self.retry_after, is_global=self.is_global, via=self.via)
        if self.status >= 500 and self.code is None and self.message is None:
            return Reply(self.status, {"message": f"{self.status}: {STATUS_TEXT.get(self.status, 'Error')}", "code": 0})
        return ApiError(self.status, self.code, self.message).reply()


@dataclass
class _Window:
    started: float
    count: int = 0


class RateLimiter:
    """Fixed-window buckets like Discord's: per (route, major parameter) plus a global cap.

    ``limits`` maps a route template (or "METHOD template") to (requests, seconds).
    The global cap is ``global_per_second`` requests per ``global_window`` seconds
    (shrink the window to keep tests fast), counted per bot token across every
    client and process using it, as on Discord. Interaction callbacks are exempt.
    """

    def __init__(self, *, per_route: tuple[int, float] = (5, 5.0), global_per_second: int = 50,
                 global_window: float = 1.0, limits: dict[str, tuple[int, float]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_route = per_route
        self.global_per_second = global_per_second
        self.global_window = global_window
        self.limits = limits or {}
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Window] = {}
        self._global: dict[str, _Window] = {}  # by Authorization header: one global limit per token
        #: Requests answered with a global 429, and with a per-route one.
        self.global_limited = 0
        self.route_limited = 0

    def check(self, req: RecordedRequest) -> tuple[Reply | None, dict[str, str]]:
        """Returns (429 reply or None, rate-limit headers for a successful reply)."""
        now = self.clock()
        template = req.route or req.path
        if not template.startswith("/interactions/"):
            token = req.headers.get("Authorization", "")
            window = self._global.get(token)
            if window is None or now - window.started >= self.global_window:
                window = self._global[token] = _Window(started=now)
            if window.count >= self.global_per_second:
                self.global_limited += 1
                return rate_limited_reply(self.global_window - (now - window.started), is_global=True), {}
            window.count += 1

        limit, per = self.limits.get(f"{req.method} {template}") or self.limits.get(template) or self.per_route
        bucket_hash = hashlib.sha1(f"{req.method} {template}".encode()).hexdigest()[:16]
        major = next((req.params[k] for k in ("channel_id", "guild_id", "webhook_id", "interaction_id")
                      if k in req.params), "")
        window = self._buckets.get((bucket_hash, major))
        if window is None or now - window.started >= per:
            window = self._buckets[(bucket_hash, major)] = _Window(started=now)
        reset_after = per - (now - window.started)
        if window.count >= limit:
            self.route_limited += 1
            return rate_limited_reply(reset_after, bucket=bucket_hash, limit=limit), {}
        window.count += 1
        return None, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - window.count),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket_hash,
        }
