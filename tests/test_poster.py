"""The one poster's pure parts: the invisible marker and the one place failures are sorted.

Its sending (pacing, retries with the same nonce, looking before resending) is tested end to end on
the fake Discord in test_delivery.py, test_forum_digest.py, test_roundup.py and test_subscription_delivery.py.
"""

from __future__ import annotations

import asyncio
import unicodedata

import aiohttp
import discord
import pytest

from bot import render
from bot.posting.poster import (
    Ambiguous,
    Refused,
    Rejected,
    marker_in,
    sort_failure,
    with_marker,
    without_marker,
)
from storage.outbox import message_nonce


class _Response:
    def __init__(self, status: int) -> None:
        self.status, self.reason = status, "x"


def http_error(cls: type[discord.HTTPException], status: int, code: int = 0) -> discord.HTTPException:
    return cls(_Response(status), {"code": code, "message": "m"})


@pytest.mark.parametrize("nonce", [message_nonce(1, 0), message_nonce(987654321, 41), "pb12.3", "pd7.0", "pbr99"])
def test_the_marker_carries_the_nonce_invisibly(nonce: str) -> None:
    marked = with_marker({"content": "📄 Papers for 2025-02-20 (20 papers)"}, nonce)["content"]
    assert marker_in(marked) == nonce
    assert without_marker(marked) == "📄 Papers for 2025-02-20 (20 papers)"
    hidden = marked[len("📄 Papers for 2025-02-20 (20 papers)"):]
    assert all(unicodedata.category(c) == "Cf" for c in hidden)  # format characters: nothing to see


def test_a_message_without_content_gets_only_the_marker_and_an_unmarked_one_reads_as_none() -> None:
    assert marker_in(with_marker({"content": None, "embeds": []}, "po5.1")["content"]) == "po5.1"
    assert marker_in("plain text") is None and marker_in(None) is None and marker_in("") is None
    assert without_marker("plain text") == "plain text"


def test_the_marker_never_pushes_content_past_discords_limit() -> None:
    full = {"content": "x" * render.MAX_CONTENT}
    assert with_marker(full, "po1.0") == full


@pytest.mark.parametrize(("error", "kind"), [
    (http_error(discord.Forbidden, 403, 50013), Refused),
    (http_error(discord.NotFound, 404, 10003), Refused),
    (http_error(discord.HTTPException, 400, 50035), Rejected),
    (http_error(discord.HTTPException, 413), Rejected),
    (http_error(discord.HTTPException, 429), Ambiguous),
    (http_error(discord.HTTPException, 408), Ambiguous),
    (http_error(discord.DiscordServerError, 503), Ambiguous),
    (aiohttp.ServerDisconnectedError(), Ambiguous),
    (asyncio.TimeoutError(), Ambiguous),
    (ConnectionResetError(), Ambiguous),
])
def test_every_failure_is_sorted_once(error: BaseException, kind: type) -> None:
    assert sort_failure(error) is kind
