"""Hostile members: fuzzed slash-command options, admin commands from non-admins, autocomplete floods.

Everything is drawn from the run's seeded random source. Option values respect what Discord itself
enforces before a bot sees them (the synced schema's length limits and choices), so every reply the
bot owes is one a real member could trigger.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from testing import FakeDiscord
from testing.interactions import find_command

MAX_STRING = 6000  # Discord's longest string option


def fuzz_strings(role_id: int, user_id: int) -> list[str]:
    """Inputs that have broken bots before: FTS syntax, control characters, mentions, markdown, sheer size."""
    return [
        "a" * 6000, "diffusion " * 500, "x" * 201,
        'NEAR(video diffusion, 3)', '"unclosed phrase', 'title:robot', '*', '-', '"', "''", 'a AND OR NOT b',
        '^start', '((((', 'OR', 'NOT', 'video OR', '-only -negations', 'prefix**', 'col:"x" OR 1=1 --',
        "'; DROP TABLE papers; --", "%_%", "\\", "\x00\x01\x07 bell", "\u202e\u200b\u200d zero-width", "\t\n\r\n",
        "@everyone", "@here", f"<@&{role_id}>", f"<@{user_id}>", f"<@!{user_id}> hi", "<#1>",
        "**bold** __under__ ||spoiler|| `code` ```block``` > quote", "[link](https://example.com)",
        "🤖🧪" * 50, "𝕦𝕟𝕚𝕔𝕠𝕕𝕖", "9999-99-99", "2025-02-30", "0000-01-01", "-1", "1e309",
        "2502.13923v99",
        "https://arxiv.org/abs/../../etc/passwd", "Robotcs", "text to video",
    ]


#: (command, subcommand, fuzzed option, other options) a member may run.
FUZZABLE = [
    ("papers", "search", "query", {}),
    ("papers", "search", "tag", {"query": "diffusion"}),
    ("papers", "search", "since", {"query": "model"}),
    ("papers", "tag", "tag", {}),
    ("papers", "day", "day", {}),
    ("paper", None, "id", {}),
    ("stats", "day", "day", {}),
    ("subscribe", "keyword", "keyword", {}),
    ("subscribe", "tag", "tag", {}),
    ("unsubscribe", None, "subscription", {}),
]

#: Admin commands a member without Manage Server tries (options filled in by the caller).
ADMIN_ONLY = [("digest", "setup"), ("digest", "remove"), ("digest", "role"), ("digest", "post"), ("digest", "status"),
              ("digest", "roundup")]

#: Options that autocomplete, for floods.
AUTOCOMPLETED = [
    ("papers", "tag", "tag"), ("papers", "day", "day"), ("subscribe", "tag", "tag"),
    ("unsubscribe", None, "subscription"), ("digest", "setup", "timezone"), ("stats", "day", "day"),
]


@dataclass
class Sent:
    """One interaction the chaos run injected, and what it expects of the answer."""

    kind: str  # "fuzz", "admin", "autocomplete", "setup"
    label: str
    handle: Any
    options: dict[str, Any] = field(default_factory=dict)
    expect: str | None = None  # set-up commands: a phrase the reply must contain


def option_schema(fake: FakeDiscord, guild, command: str, subcommand: str | None, name: str) -> dict[str, Any]:
    schema = find_command(fake, command, guild).get("options") or []
    for part in (subcommand or "").split():
        schema = next(o for o in schema if o["name"] == part).get("options") or []
    return next(o for o in schema if o["name"] == name)


def as_discord_would(schema: dict[str, Any], value: str) -> str | None:
    """Clip to the option's length limits, as Discord's client does; None if it cannot be sent."""
    value = value[: schema.get("max_length", MAX_STRING)]
    if len(value) < schema.get("min_length", 0) or not value:
        return None
    choices = schema.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        return None
    return value


def fuzz_options(fake: FakeDiscord, guild, rand: random.Random, strings: list[str]) -> tuple[str, str | None, dict]:
    """A random fuzzable command with one hostile option (clipped like Discord would)."""
    while True:
        command, sub, name, others = rand.choice(FUZZABLE)
        value = as_discord_would(option_schema(fake, guild, command, sub, name), rand.choice(strings))
        if value is not None:
            return command, sub, {**others, name: value}
