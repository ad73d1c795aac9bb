"""bot/logs.py: one handler, one line per event, secrets out, expected conditions without tracebacks."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import aiohttp
import pytest

from bot import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    logs.setup("DEBUG", "text", secrets=("the-bot-token",), stream=out)
    yield out
    for handler in [h for h in root.handlers if getattr(h, "paperbot", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_setting_up_twice_still_writes_each_event_once(stream: io.StringIO) -> None:
    logs.setup("INFO", "text", stream=stream)
    logging.getLogger("bot.client").info("connected as %s", "Paperbot")
    assert stream.getvalue().count("connected as Paperbot") == 1


def test_interaction_and_bot_tokens_are_redacted(stream: io.StringIO) -> None:
    log = logging.getLogger("discord.http")
    log.debug("%s %s with %s has returned %s", "POST",
              "https://discord.com/api/v10/interactions/123/aW50ZXJhY3Rpb246MTIz.secret/callback", None, 204)
    log.debug("Webhook ID %s with %s %s", 9, "PATCH", "https://discord.com/api/v10/webhooks/9/tok-en_123/messages/@original")
    logging.getLogger("discord.gateway").debug("WebSocket Event: %s", {"t": "INTERACTION_CREATE", "d": {"token": "tok.xyz"}})
    logging.getLogger("x").info("Authorization: Bot the-bot-token")
    text = stream.getvalue()
    for secret in ("aW50ZXJhY3Rpb246MTIz.secret", "tok-en_123", "tok.xyz", "the-bot-token"):
        assert secret not in text
    assert text.count("<redacted>") == 4 and "/callback" in text and "/messages/@original" in text


def test_a_job_cancelled_by_shutdown_is_one_info_line(stream: io.StringIO) -> None:
    error = raised(asyncio.CancelledError())
    logging.getLogger("apscheduler.executors.default").error(
        'Job "%s" raised an exception', "fetch_and_post (trigger: cron)", exc_info=(type(error), error, error.__traceback__))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "INFO" in lines[0]
    assert "job fetch_and_post (trigger: cron) stopped by the shutdown; it resumes on the next start" in lines[0]


def test_a_dropped_gateway_being_retried_is_one_warning_line(stream: io.StringIO) -> None:
    error = raised(aiohttp.ClientConnectionError("Connection reset by peer"))
    logging.getLogger("discord.client").error("Attempting a reconnect in %.2fs", 4.2,
                                               exc_info=(type(error), error, error.__traceback__))
    lines = stream.getvalue().splitlines()
    assert lines == [lines[0]] and "WARNING" in lines[0]
    assert "connection to Discord lost (ClientConnectionError: Connection reset by peer); reconnecting in 4 s" in lines[0]


def test_a_real_bug_keeps_its_traceback(stream: io.StringIO) -> None:
    error = raised(KeyError("surprise"))
    logging.getLogger("bot.posting").error("delivery failed", exc_info=(type(error), error, error.__traceback__))
    assert "Traceback" in stream.getvalue() and "KeyError" in stream.getvalue()


def test_json_lines_are_one_object_each() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    try:
        logs.setup("INFO", "json", stream=out)
        logging.getLogger("bot.client").info("two\nlines stay one record")
        error = raised(ValueError("bad"))
        logging.getLogger("bot.client").error("bug", exc_info=(type(error), error, error.__traceback__))
    finally:
        for handler in [h for h in root.handlers if getattr(h, "paperbot", False)]:
            root.removeHandler(handler)
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["message"] for e in entries] == ["two\nlines stay one record", "bug"]
    assert entries[0]["level"] == "INFO" and entries[0]["logger"] == "bot.client"
    assert "ValueError: bad" in entries[1]["exception"]
