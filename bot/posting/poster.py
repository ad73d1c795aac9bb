"""The one poster: sends a ledger item's planned messages exactly once, and sorts every failure once.

Every kind of message Paperbot sends on its own (`daily` digests, thread and forum posts, empty-day
notes, `roundups`, subscriber `dms`) is planned in `storage.outbox` and sent through `Poster.send`,
which:
- paces every request (`RequestPacer`: the global rate limit);
- sends with the message's nonce (discord.py adds `enforce_nonce`, so Discord answers a repeat
  within its nonce window with the message it already created) and hides the nonce in the
  message itself as an invisible marker (`with_marker`), because Discord does not return the nonce
  when messages are read back;
- retries an *ambiguous* failure (5xx, timeout, connection lost: maybe created, maybe not) at
  once, a few times, with the same nonce, well inside Discord's nonce window;
- before sending a message a previous run already tried (its answer lost, and the nonce window
  long gone), reads the bot's recent messages in that channel after the last recorded one and
  records the message if it carries the marker, instead of posting it twice;
- records each accepted message id at once;
- raises one of three failures: `Refused` (403/404: the target is gone or we lack permission;
  stop that target), `Rejected` (any other 4xx: Discord refuses this message, so skip it with the
  reason and never retry) or `Ambiguous` (still unknown after the retries: leave it planned).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord

from bot import render
from bot.posting.pacing import Pacer, RequestPacer
from settings import DeliverySettings
from storage import outbox
from storage.outbox import Item, PlannedMessage

log = logging.getLogger(__name__)

__all__ = [
    "Ambiguous",
    "CLAIMED_ELSEWHERE",
    "DEFAULT_REQUESTS_PER_SECOND",
    "Failure",
    "Poster",
    "Refused",
    "Rejected",
    "RequestPacer",
    "describe_error",
    "marker_in",
    "sort_failure",
    "with_marker",
]

#: The `[delivery] requests_per_second` default, for posters made without settings.
DEFAULT_REQUESTS_PER_SECOND = DeliverySettings().requests_per_second

#: Failures of the network rather than of Discord's answer.
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)

#: Pauses before each immediate retry of an ambiguous send: 3 retries within ~8 s, far inside
#: Discord's nonce window (a few minutes), so a retry never posts a second copy.
RETRY_DELAYS: tuple[float, ...] = (0.5, 2.0, 5.0)

#: How many recent messages are read when looking for one whose answer was lost.
HISTORY_LOOKUP_LIMIT = 200

#: Why an item was left alone: another process (or task) holds its claim and is sending it.
CLAIMED_ELSEWHERE = "another process is sending it"


def describe_error(error: BaseException) -> str:
    """A short, log- and admin-friendly account of a failure."""
    if isinstance(error, discord.HTTPException):
        text = error.text or type(error).__name__
        return text if text.startswith(str(error.status)) else f"Discord answered {error.status}: {text}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Failure(Exception):
    """A send that did not end in an accepted message; `error` is what Discord (or the network) said."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(describe_error(error))
        self.error = error


class Refused(Failure):
    """403/404: the target is gone or Paperbot may not post there. Stop that target."""


class Rejected(Failure):
    """Any other 4xx: Discord refuses this message itself; sending it again would fail again."""


class Ambiguous(Failure):
    """5xx, timeout, connection lost, rate limited: maybe created. Left planned, looked for next time."""


def sort_failure(error: BaseException) -> type[Failure]:
    """The one place a failure is sorted."""
    if isinstance(error, (discord.Forbidden, discord.NotFound)):
        return Refused
    status = getattr(error, "status", None)
    if isinstance(error, discord.HTTPException) and status is not None and 400 <= status < 500 \
            and status not in (408, 429):
        return Rejected
    return Ambiguous


# -- the marker -----------------------------------------------------------------------------------

# Zero-width characters: invisible in every Discord client, returned verbatim in `content` when
# messages are read back (unlike the nonce). Each nonce character is three base-4 digits.
_DIGITS = "\u200b\u200c\u200d\u2060"
_FENCE = "\u2063"  # INVISIBLE SEPARATOR around the encoded nonce
_ALPHABET = "0123456789.abcdefghijklmnopqrstuvwxyz"


def _encode(nonce: str) -> str:
    out = []
    for char in nonce:
        value = _ALPHABET.index(char)
        out.append(_DIGITS[value // 16] + _DIGITS[value // 4 % 4] + _DIGITS[value % 4])
    return _FENCE + "".join(out) + _FENCE


def with_marker(kwargs: dict[str, Any], nonce: str) -> dict[str, Any]:
    """`kwargs` for `send` with the nonce appended invisibly to the content (if it fits)."""
    marker = _encode(nonce)
    content = kwargs.get("content") or ""
    if len(content) + len(marker) > render.MAX_CONTENT:
        return kwargs  # cannot happen with today's renderers (headers are short); then unmarked
    return {**kwargs, "content": content + marker}


def marker_in(content: str | None) -> str | None:
    """The nonce hidden in a message's content by `with_marker`, if any."""
    if not content or not content.endswith(_FENCE):
        return None
    start = content.rfind(_FENCE, 0, len(content) - 1)
    body = content[start + 1 : -1] if start >= 0 else None
    if not body or len(body) % 3 or any(c not in _DIGITS for c in body):
        return None
    chars = []
    for i in range(0, len(body), 3):
        value = _DIGITS.index(body[i]) * 16 + _DIGITS.index(body[i + 1]) * 4 + _DIGITS.index(body[i + 2])
        if value >= len(_ALPHABET):
            return None
        chars.append(_ALPHABET[value])
    return "".join(chars)


def without_marker(content: str | None) -> str:
    """The visible content (tests and previews compare this)."""
    if marker_in(content) is None:
        return content or ""
    assert content is not None
    return content[: content.rfind(_FENCE, 0, len(content) - 1)]


# -- the poster -----------------------------------------------------------------------------------


class Poster:
    """Sends planned messages for one bot (a `discord.Client` with `.db`); shared by every kind.

    `retry_delays` (default `RETRY_DELAYS`): the pauses before each immediate retry of an
    ambiguous send.
    """

    def __init__(
        self, bot: discord.Client, *, requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        retry_delays: tuple[float, ...] | None = None, pacer: Pacer | None = None,
    ) -> None:
        self.bot = bot
        self.pacer = pacer or RequestPacer(requests_per_second)
        self._retry_delays = retry_delays

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return self._retry_delays if self._retry_delays is not None else RETRY_DELAYS

    @property
    def db(self):
        return self.bot.db

    @asynccontextmanager
    async def claim(self, item: Item) -> AsyncIterator[Item | None]:
        """The item as the ledger holds it now, while only this process may send it; None while
        another holds it (that one sends it; if it dies, a later pass or its restart does).

        Several processes share a PostgreSQL library and each may come to the same item (DMs
        belong to no shard; a restart resumes what a killed process left). The claim
        (`storage.outbox.claim`) is released when this process lets go or dies. The item is read
        again once held: the previous holder may have sent some of it, or all of it.
        """
        async with outbox.claim(self.db, item.id) as held:
            yield await outbox.get(self.db, item.kind, item.target_id, item.period) if held else None

    async def send(
        self, item: Item, planned: PlannedMessage, target: discord.abc.Messageable, *, after: int | None = None
    ) -> discord.Message | None:
        """Send one planned message unless already accepted, and record it. None if it was already sent.

        `after`: the newest message id known in `target` before this one, remembered as where to
        look for a copy if the answer is lost; None: the newest recorded for the item's target.
        """
        if planned.message_id is not None:
            return None
        if planned.tried:
            found = await self.find(item, planned, target, after=planned.look_after)
            if found is not None:
                return found
        else:
            if after is None:
                after = await outbox.last_recorded_message(self.db, item.kind, item.target_id)
            # Where to look later: a message sent meanwhile (the next day's digest, a roundup)
            # must not hide this one if its answer is lost.
            await outbox.mark_tried(self.db, item.id, planned.position, after)
            planned.tried, planned.look_after = True, after
        kwargs = with_marker(render.payload_from_dict(planned.payload).as_kwargs(), planned.nonce)
        message = await self.attempt(lambda: target.send(**kwargs, nonce=planned.nonce))
        await outbox.mark_sent(self.db, item.id, planned.position, message.id)
        planned.message_id = message.id
        return message

    async def attempt(self, request, *, retry: bool = True):
        """Await `request()` (paced), retrying ambiguous failures at once; raise a sorted `Failure`.

        `retry=False` for requests without a nonce (a forum post): a retry could create a copy.
        """
        delays = iter(self.retry_delays if retry else ())
        while True:
            try:
                await self.pacer.wait()
                return await request()
            except (discord.HTTPException, discord.RateLimited, *NETWORK_ERRORS) as error:
                kind = sort_failure(error)
                delay = next(delays, None) if kind is Ambiguous else None
                if delay is None:
                    raise kind(error) from error
                log.info("ambiguous answer (%s); retrying with the same nonce in %.1fs", describe_error(error), delay)
                await asyncio.sleep(delay)

    async def find(
        self, item: Item, planned: PlannedMessage, target: discord.abc.Messageable, *, after: int | None = None
    ) -> discord.Message | None:
        """The copy of `planned` an earlier run created in `target` (recorded now), if any.

        Reads the bot's messages after `after` (None: the newest ones) and matches the hidden
        marker. A channel whose history Paperbot may not read is logged (and shown by `/digest
        status`); the message is then sent again, which may duplicate it.
        """
        me = self.bot.user.id if self.bot.user is not None else None
        try:
            # After the last recorded message, oldest first; with none recorded, the newest ones.
            async for message in target.history(
                limit=HISTORY_LOOKUP_LIMIT, after=discord.Object(id=after) if after else None,
                oldest_first=after is not None,
            ):
                if message.author.id == me and marker_in(message.content) == planned.nonce:
                    log.info("found message %s of %s %s/%s already posted; recorded",
                             message.id, item.kind, item.target_id, item.period)
                    await outbox.mark_sent(self.db, item.id, planned.position, message.id)
                    planned.message_id = message.id
                    return message
        except discord.Forbidden as error:
            log.warning("cannot read the history of channel %s (%s): sending %s again may duplicate it",
                        getattr(target, "id", "?"), describe_error(error), planned.nonce)
        except (discord.HTTPException, *NETWORK_ERRORS) as error:
            raise sort_failure(error)(error) from error
        return None
