"""Shared helpers for turning rows into models and Python values into stored text."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import aiosqlite

from storage.db import dialect
from storage.models import StoredPaper

PAPER_COLUMNS = "p.id, p.arxiv_id, p.title, p.url, p.authors, p.summary, p.github_urls, p.huggingface_urls, p.extra"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def to_json(value: Any) -> str:
    """Compact, deterministic JSON, so an unchanged value is the same string and needs no write."""
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return _ENCODER.encode(value)


def id_list(ids: Iterable[Any]) -> str:
    """A JSON array bound as one parameter and read with json_each: any number of ids, one statement."""
    return json.dumps(list(ids))


def any_of(conn: Any, column: str, values: Iterable[Any]) -> tuple[str, Any]:
    """"`column` is one of `values`", for any number of values in one statement: the SQL condition
    and the one parameter it binds, in the connection's dialect (a JSON array read with json_each
    on SQLite, an array on PostgreSQL)."""
    if dialect(conn) == "postgresql":
        return f"{column} = ANY(?)", list(values)
    return f"{column} IN (SELECT value FROM json_each(?))", id_list(values)


def utc_now_text() -> str:
    """Now, as the UTC ISO text (to the second) every timestamp column holds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def to_day(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    async with conn.execute(sql, tuple(params)) as cursor:
        return list(await cursor.fetchall())


async def load_papers(conn: aiosqlite.Connection, ids: Iterable[int]) -> dict[int, StoredPaper]:
    """StoredPapers by row id, with tags (display forms, alphabetical), days and sources: three queries for any number."""
    ids = list(ids)
    (paper_listed, ids_param), (tag_listed, _), (day_listed, _) = (
        any_of(conn, column, ids) for column in ("p.id", "pt.paper_id", "paper_id")
    )
    rows = await fetch_all(conn, f"SELECT {PAPER_COLUMNS} FROM papers p WHERE {paper_listed}", (ids_param,))
    tags: dict[int, list[str]] = defaultdict(list)
    for paper_id, name, _norm in await fetch_all(
        conn,
        f"""SELECT DISTINCT pt.paper_id, t.name, t.norm FROM paper_tags pt JOIN tags t ON t.id = pt.tag_id
            WHERE {tag_listed} ORDER BY pt.paper_id, t.norm""",
        (ids_param,),
    ):
        tags[paper_id].append(name)
    days: dict[int, set[str]] = defaultdict(set)
    sources: dict[int, set[str]] = defaultdict(set)
    for paper_id, day, source in await fetch_all(
        conn,
        f"SELECT paper_id, day, source FROM appearances WHERE {day_listed}",
        (ids_param,),
    ):
        days[paper_id].add(day)
        sources[paper_id].add(source)
    return {
        row[0]: StoredPaper(
            arxiv_id=row[1],
            title=row[2],
            url=row[3],
            authors=json.loads(row[4]),
            summary=row[5],
            github_urls=json.loads(row[6]),
            huggingface_urls=json.loads(row[7]),
            extra=json.loads(row[8]),
            tags=tags[row[0]],
            days=[to_day(day) for day in sorted(days[row[0]])],
            sources=sorted(sources[row[0]]),
        )
        for row in rows
    }


async def load_papers_in_order(conn: aiosqlite.Connection, ids: list[int]) -> list[StoredPaper]:
    """load_papers, keeping the caller's order (ranking, digest order)."""
    papers = await load_papers(conn, ids)
    return [papers[paper_id] for paper_id in ids if paper_id in papers]
