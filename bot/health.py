"""The heartbeat file: how a container's HEALTHCHECK (or any monitor) knows the bot is really working.

A process that is alive is not enough: the bot may have lost the gateway or its scheduler may
have stopped. So the running bot rewrites a small JSON file beside the library every
`INTERVAL_SECONDS` with what it knows, and `paperbot health` reads it: healthy only when the
file is fresh, the gateway is connected and the scheduler runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

INTERVAL_SECONDS = 30.0
STALE_AFTER_SECONDS = 3 * INTERVAL_SECONDS  # two missed beats: the process hangs or is gone


def heartbeat_path(database: Path) -> Path:
    """Beside the library, so it lands on the same volume and needs no setting of its own."""
    return database.with_name(database.name + ".health")


@dataclass(frozen=True)
class Beat:
    at: datetime
    connected: bool
    scheduler_running: bool
    pid: int


def write(path: Path, *, connected: bool, scheduler_running: bool, now: datetime | None = None) -> None:
    """Replace the file atomically, so a reader never sees half of it."""
    beat = {
        "at": (now or datetime.now(UTC)).isoformat(),
        "connected": connected,
        "scheduler_running": scheduler_running,
        "pid": os.getpid(),
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(beat), encoding="utf-8")
    partial.replace(path)


def read(path: Path) -> Beat | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Beat(datetime.fromisoformat(data["at"]), bool(data["connected"]),
                    bool(data["scheduler_running"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def problem(path: Path, *, now: datetime | None = None, stale_after: float = STALE_AFTER_SECONDS) -> str | None:
    """Why the bot is not healthy (one line), or None when it is."""
    beat = read(path)
    if beat is None:
        return f"no heartbeat in {path}: the bot is not running (or not yet started)"
    age = ((now or datetime.now(UTC)) - beat.at).total_seconds()
    if age > stale_after:
        return f"the last heartbeat is {age:.0f} s old: the bot is stopped or hangs"
    if not beat.connected:
        return "the bot is not connected to Discord"
    if not beat.scheduler_running:
        return "the bot's scheduler is not running: no digests will be posted"
    return None
