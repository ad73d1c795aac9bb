"""Library statistics: papers per tag per week (for trend charts) and one day's summary.

Everything counts distinct papers by the day they appeared in a digest (`appearances.day`):
a paper listed by two sources, or on two days of the same week, counts once for that week;
a paper listed again in a later week counts in that week too. A week is an ISO week
(Monday to Sunday) named by its Monday.
"""

from __future__ import annotations

import datetime as dt

import aiosqlite
from pydantic import BaseModel, ConfigDict

from storage._rows import any_of, fetch_all, to_day
from storage.db import dialect
from storage.models import TagCount
from storage.tags import normalize_tag

__all__ = ["DaySummary", "SourceCount", "day_summary", "tag_counts_by_week", "week_start"]

# The Monday on or before a 'YYYY-MM-DD' day, as the same text. SQLite: back 6 days, then forward
# to a Monday; PostgreSQL: date_trunc to the ISO week, which starts on Monday.
_WEEK_OF = {
    "sqlite": "date(a.day, '-6 days', 'weekday 1')",
    "postgresql": "to_char(date_trunc('week', a.day::date), 'YYYY-MM-DD')",
}


def week_start(day: dt.date) -> dt.date:
    """The Monday of `day`'s ISO week."""
    return day - dt.timedelta(days=day.weekday())


def _bounds(since: dt.date | None, until: dt.date | None) -> tuple[str, str]:
    return (since.isoformat() if since else "0000-00-00", until.isoformat() if until else "9999-99-99")


async def tag_counts_by_week(
    conn: aiosqlite.Connection,
    *,
    since: dt.date | None,
    until: dt.date | None,
    tags: list[str] | None,
    top: int = 5,
) -> tuple[list[dt.date], dict[str, list[int]]]:
    """Distinct papers per tag per ISO week, for appearances in [since, until] (None: unbounded).

    Returns `(weeks, series)`: every week start (Monday) from the week of the first appearance
    in the period to the week of the last one, without gaps, and for each tag its display name
    mapped to one count per week (0 where it had none). With `tags` (any spelling), those tags
    in the order given, unknown ones left out; otherwise the `top` tags with the most papers in
    the period, most first (ties alphabetical). A period without appearances gives `([], {})`.
    """
    low, high = _bounds(since, until)
    span = await fetch_all(conn, "SELECT min(day), max(day) FROM appearances WHERE day >= ? AND day <= ?", (low, high))
    if span[0][0] is None:
        return [], {}
    first, last = week_start(to_day(span[0][0])), week_start(to_day(span[0][1]))
    weeks = [first + dt.timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]

    if tags:
        norms = list(dict.fromkeys(normalize_tag(t) for t in tags))
        named, param = any_of(conn, "t.norm", norms)
        rows = await fetch_all(conn, f"SELECT t.id, t.name, t.norm FROM tags t WHERE {named}", (param,))
        by_norm = {row[2]: (row[0], row[1]) for row in rows}
        chosen = [by_norm[n] for n in norms if n in by_norm]
    else:
        chosen = [
            (row[0], row[1])
            for row in await fetch_all(
                conn,
                """SELECT t.id, t.name, count(DISTINCT a.paper_id) AS n
                   FROM appearances a
                   JOIN paper_tags pt ON pt.paper_id = a.paper_id
                   JOIN tags t ON t.id = pt.tag_id
                   WHERE a.day >= ? AND a.day <= ?
                   GROUP BY t.id, t.name, t.norm ORDER BY n DESC, t.norm LIMIT ?""",
                (low, high, max(0, top)),
            )
        ]
    if not chosen:
        return weeks, {}

    index = {week.isoformat(): n for n, week in enumerate(weeks)}
    series: dict[int, list[int]] = {tag_id: [0] * len(weeks) for tag_id, _ in chosen}
    tagged, param = any_of(conn, "pt.tag_id", [tag_id for tag_id, _ in chosen])
    rows = await fetch_all(
        conn,
        f"""SELECT pt.tag_id, {_WEEK_OF[dialect(conn)]} AS week, count(DISTINCT a.paper_id)
            FROM appearances a
            JOIN paper_tags pt ON pt.paper_id = a.paper_id
            WHERE a.day >= ? AND a.day <= ? AND {tagged}
            GROUP BY pt.tag_id, week""",
        (low, high, param),
    )
    for tag_id, week, count in rows:
        series[tag_id][index[week]] = count
    return weeks, {name: series[tag_id] for tag_id, name in chosen}


class SourceCount(BaseModel):
    """How many papers one producer listed on a day."""

    model_config = ConfigDict(frozen=True)

    source: str
    papers: int


class DaySummary(BaseModel):
    """One digest day at a glance: distinct papers, how many link code, the top tags, the sources."""

    model_config = ConfigDict(frozen=True)

    day: dt.date
    papers: int
    with_code: int
    top_tags: list[TagCount]
    sources: list[SourceCount]


async def day_summary(conn: aiosqlite.Connection, day: dt.date, *, top: int = 5) -> DaySummary:
    """The summary of `day`; a day without a digest has zero papers and empty lists."""
    key = day.isoformat()
    totals = await fetch_all(
        conn,
        """SELECT count(*), count(*) FILTER (WHERE p.github_urls != '[]')
           FROM papers p WHERE p.id IN (SELECT paper_id FROM appearances WHERE day = ?)""",
        (key,),
    )
    tag_rows = await fetch_all(
        conn,
        """SELECT t.name, count(DISTINCT a.paper_id) AS n
           FROM appearances a
           JOIN paper_tags pt ON pt.paper_id = a.paper_id
           JOIN tags t ON t.id = pt.tag_id
           WHERE a.day = ?
           GROUP BY t.id, t.name, t.norm ORDER BY n DESC, t.norm LIMIT ?""",
        (key, max(0, top)),
    )
    source_rows = await fetch_all(
        conn, "SELECT source, count(*) FROM appearances WHERE day = ? GROUP BY source ORDER BY source", (key,)
    )
    return DaySummary(
        day=day,
        papers=totals[0][0],
        with_code=totals[0][1],
        top_tags=[TagCount(name=name, count=n) for name, n in tag_rows],
        sources=[SourceCount(source=source, papers=n) for source, n in source_rows],
    )
