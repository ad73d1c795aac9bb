"""One log line per event, as text or JSON, with secrets taken out before anything is written.

Installed once per process by `setup`: one handler on the root logger (discord.py's own
`setup_logging` is not used, so nothing is printed twice). Every record passes the
`Redact` filter, which removes interaction tokens (in webhook URLs and gateway payloads
that discord.py logs at DEBUG) and the bot token, and the `Expected` filter, which turns the
tracebacks libraries log for expected conditions (a job cancelled by a clean shutdown, a
dropped gateway connection about to be retried) into one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

import discord

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
REDACTED = "<redacted>"

# Interaction tokens travel in the URL of every follow-up (webhooks/<app id>/<token>) and
# callback (interactions/<id>/<token>/callback), and in the gateway's INTERACTION_CREATE.
_TOKEN_PATTERNS = (
    re.compile(r"(webhooks/\d+/)[^/\s'\"?]+"),
    re.compile(r"(interactions/\d+/)[^/\s'\"?]+"),
    re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+"""),
)


class Redact(logging.Filter):
    """Render each record's message and take out interaction tokens and the known secrets."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class Expected(logging.Filter):
    """Expected conditions logged by libraries with a traceback become one line without it.

    - a scheduled job cancelled because the bot is stopping (APScheduler: "Job … raised an exception");
    - a lost gateway connection that discord.py is about to retry ("Attempting a reconnect in …").
    A traceback is kept for everything else: that is a bug worth its stack.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        if isinstance(error, asyncio.CancelledError):
            self._rewrite(record, logging.INFO, "job %s stopped by the shutdown; it resumes on the next start",
                          (args[0] if args else "?",))
        elif record.name == "discord.client" and str(record.msg).startswith("Attempting a reconnect"):
            self._rewrite(record, logging.WARNING, "connection to Discord lost (%s); reconnecting in %.0f s",
                          (describe(error), args[0] if args else 0.0))
        return True

    @staticmethod
    def _rewrite(record: logging.LogRecord, level: int, msg: str, args: tuple) -> None:
        record.msg, record.args = msg, args
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.exc_info, record.exc_text = None, None


def describe(error: BaseException) -> str:
    """`Type: message`, the one line an expected failure gets instead of its traceback."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (Loki, CloudWatch, journald's JSON fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class OneLineText(logging.Formatter):
    """Text lines; a traceback (only for real bugs) stays attached to its event, indented."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\n", "\n    ")


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record arrives (a test runner may swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup(level: str = "INFO", fmt: str = "text", *, secrets: tuple[str, ...] = (), stream: TextIO | None = None) -> None:
    """Install the one root handler, writing `fmt` lines at `level` to `stream` (default stderr).

    Called again (the CLI, then the bot with its token), it replaces its own handler, never adds one.
    """
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else OneLineText(TEXT_FORMAT))
    handler.addFilter(Expected())
    handler.addFilter(Redact(secrets))
    handler.paperbot = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "paperbot", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # discord.py warns on every start that voice needs PyNaCl/davey; Paperbot has no voice.
    discord.VoiceClient.warn_nacl = False
    if hasattr(discord.VoiceClient, "warn_dave"):
        discord.VoiceClient.warn_dave = False
