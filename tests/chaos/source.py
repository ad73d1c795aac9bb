"""The digest producer under chaos: a folder source whose files are real corpus days re-dated to the
simulated days, published on time, late, never (404), or broken (truncated, garbage bytes, every row
malformed), some broken files fixed later in the day.

The orchestrator asks `publish(day, hour)` each simulated hour; the plan (what happens to each day)
is drawn up front from the seeded random source, so a run can be replayed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

CORPUS = Path(__file__).parent.parent / "data" / "corpus" / "timlrx" / "archive" / "2025"
HEADING = re.compile(rb"## Papers for \d{4}-\d{2}-\d{2}")
ROW = re.compile(rb"^\| \[", re.MULTILINE)

#: Day kinds and their weights: most days are ordinary.
KINDS = {"on_time": 60, "late": 14, "missing": 8, "truncated": 7, "garbage": 4, "all_malformed": 4, "fixed_later": 3}
#: The kinds whose day ends with the whole digest published before the fetch deadline.
PUBLISHED = {"on_time", "late", "fixed_later"}


@dataclass(frozen=True)
class DayPlan:
    day: date
    kind: str
    hour: int  # UTC hour of the day the (good or bad) file appears; the fix of "fixed_later" comes 3 h later
    corpus_file: Path

    @property
    def published(self) -> bool:
        """The real digest is there before the deadline: the fetch must end with it ingested."""
        return self.kind in PUBLISHED

    @property
    def has_papers(self) -> bool:
        """False for the corpus' few empty days (a table without rows): nothing to post, nothing to store."""
        return bool(ROW.search(self.corpus_file.read_bytes()))


def corpus_days() -> list[Path]:
    return sorted(CORPUS.rglob("*.md"))


def plan_days(days: list[date], rand: random.Random) -> list[DayPlan]:
    files = corpus_days()
    kinds, weights = zip(*KINDS.items())
    every_kind = rand.sample(kinds, min(len(days), len(kinds)))  # a short run still meets each fault once
    drawn = every_kind + rand.choices(kinds, weights, k=len(days) - len(every_kind))
    rand.shuffle(drawn)
    plans = []
    for index, (day, kind) in enumerate(zip(days, drawn)):
        hour = rand.randint(8, 13) if kind in ("late", "fixed_later") else 6
        plans.append(DayPlan(day, kind, hour, files[index % len(files)]))
    return plans


def redated(path: Path, day: date) -> bytes:
    return HEADING.sub(f"## Papers for {day.isoformat()}".encode(), path.read_bytes(), count=1)


def truncated(data: bytes, rand: random.Random) -> bytes:
    """Cut inside a table row, past the table's header: a half-written file."""
    lines = data.split(b"\n")
    rows = [i for i, line in enumerate(lines) if line.startswith(b"| [")]
    cut = rows[rand.randrange(1, len(rows))] if len(rows) > 1 else len(lines) - 1
    line = lines[cut]
    return b"\n".join(lines[:cut]) + b"\n" + line[: max(4, len(line) // 2)]


def all_malformed(day: date) -> bytes:
    """The heading and table header are fine; no row can be read."""
    rows = "\n".join(f"| broken row {n} | with two columns |" for n in range(12))
    return (f"## Papers for {day.isoformat()}\n\n| Title | Authors | Summary | Classification | GitHub URLs |"
            f" HuggingFace URLs |\n|---|---|---|---|---|---|\n{rows}\n").encode()


class Producer:
    """Writes each day's file into `folder` when the plan says it appears."""

    def __init__(self, folder: Path, plans: list[DayPlan], rand: random.Random) -> None:
        self.folder = folder
        self.plans = {plan.day: plan for plan in plans}
        self.rand = rand
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, day: date) -> Path:
        return self.folder / f"{day.isoformat()}.md"

    def publish(self, day: date, hour: int) -> str | None:
        """Write what appears at `hour` UTC on `day`, if anything; returns what was written."""
        plan = self.plans.get(day)
        if plan is None or plan.kind == "missing":
            return None
        good = redated(plan.corpus_file, day)
        if hour == plan.hour:
            match plan.kind:
                case "on_time" | "late":
                    return self._write(day, good, "digest")
                case "truncated" | "fixed_later":
                    return self._write(day, truncated(good, self.rand), "truncated digest")
                case "garbage":
                    return self._write(day, bytes(self.rand.randrange(256) for _ in range(2048)), "garbage bytes")
                case "all_malformed":
                    return self._write(day, all_malformed(day), "digest with every row malformed")
        if plan.kind == "fixed_later" and hour == plan.hour + 3:
            return self._write(day, good, "fixed digest")
        return None

    def _write(self, day: date, data: bytes, what: str) -> str:
        temporary = self.path(day).with_suffix(".tmp")
        temporary.write_bytes(data)
        temporary.replace(self.path(day))  # atomic: the fetcher never reads half a write of ours
        return what
