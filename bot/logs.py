"""One log line per event, as text or JSON, with secrets taken out before anything is written.

Installed once per process by `setup`: one handler on the root logger (discord.py's own
`setup_logging` is not used, so nothing is printed twice). Every record passes the
`Redact` filter, which removes interaction tokens (in webhook URLs and gateway payloads
that discord.py logs at DEBUG) and the bot token, and the `ShutdownQuiet` filter, which
turns the traceback APScheduler logs for a job cancelled by a clean shutdown into one line.
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


class ShutdownQuiet(logging.Filter):
    """A scheduled job cancelled because the bot is stopping is expected: one line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            record.msg = "%s stopped by the shutdown; it resumes on the next start"
            record.args = (record.args[0] if isinstance(record.args, tuple) and record.args else "a job",)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


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


def setup(level: str = "INFO", fmt: str = "text", *, secrets: tuple[str, ...] = (), stream: TextIO | None = None) -> None:
    """Replace every root handler with one that writes `fmt` lines at `level` to stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else OneLineText(TEXT_FORMAT))
    handler.addFilter(ShutdownQuiet())
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # discord.py warns on every start that voice needs PyNaCl/davey; Paperbot has no voice.
    discord.VoiceClient.warn_nacl = False
    if hasattr(discord.VoiceClient, "warn_dave"):
        discord.VoiceClient.warn_dave = False
