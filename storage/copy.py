"""Copying a whole library from one backend to the other (`paperbot db copy SOURCE DEST`).

Moving from SQLite to PostgreSQL (or back) is a copy of tables, not of files: both libraries are
opened with `storage.db.connect`, so both are migrated to the same schema version first, then every
table the two backends share is read in batches from one consistent snapshot of the source and
written, ids kept, into the destination inside ONE transaction. A copy that fails or is interrupted
therefore leaves the destination as empty as it found it, never half-filled and looking complete.

What is not copied is each backend's own search machinery (SQLite's FTS5 tables, PostgreSQL's
search structures): the destination's triggers fill its index as the papers arrive. Counters that
hand out ids (SQLite's AUTOINCREMENT, PostgreSQL's identity sequences) are set past the source's,
so an id (and the message nonce made from it) is never handed out twice. Before committing, the
rows of every table are counted on both sides; any difference aborts the copy.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from storage import db
from storage.errors import DatabaseError

BATCH_ROWS = 2000
# What `describe` names first when it refuses a destination that already holds a library.
_HEADLINE = {"papers": "papers", "digest_channels": "digest channels", "subscribers": "subscribers"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CopyRefused(DatabaseError):
    """The copy was not started (or was undone): one line saying why and what to do."""


@dataclasses.dataclass(frozen=True)
class TableCopy:
    name: str
    rows: int


@dataclasses.dataclass(frozen=True)
class CopyReport:
    source: str
    destination: str
    schema_version: int
    tables: list[TableCopy]

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)

    def count(self, table: str) -> int:
        return next((t.rows for t in self.tables if t.name == table), 0)


def describe(target: str) -> str:
    """A target as it may be shown: a PostgreSQL URL without its password."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from storage.postgres import redacted

        return redacted(text)
    return text


async def copy_library(source: str, destination: str, *, batch_rows: int = BATCH_ROWS,
                       on_table: Callable[[TableCopy], None] | None = None) -> CopyReport:
    """Copy every table of the library at `source` into the empty library at `destination`.

    Raises `CopyRefused` (the destination is not empty, is the source, or the counts differ) or the
    `DatabaseError` of either library; in every case the destination keeps no copied row.
    """
    if _same_target(source, destination):
        raise CopyRefused(f"{describe(source)} is both the source and the destination: copy into another library")
    src = await db.connect(source)
    try:
        dest = await db.connect(destination)
        try:
            return await _copy(src, dest, describe(source), describe(destination), batch_rows, on_table)
        finally:
            await dest.close()
    finally:
        await src.close()


def _same_target(source: str, destination: str) -> bool:
    from pathlib import Path

    def key(target: str) -> str:
        text = str(target)
        if text.startswith(("postgresql://", "postgres://")):
            return text
        return str(Path(db.sqlite_path(text)).resolve())

    return key(source) == key(destination)


async def _copy(src: Any, dest: Any, source_name: str, dest_name: str, batch_rows: int,
                on_table: Callable[[TableCopy], None] | None) -> CopyReport:
    source_side, dest_side = _side(src), _side(dest)
    versions = (await source_side.schema_version(), await dest_side.schema_version())
    if versions[0] != versions[1]:
        raise CopyRefused(f"{source_name} is at schema version {versions[0]} but {dest_name} at {versions[1]}: "
                          f"run `paperbot db migrate` on both with this Paperbot first")
    tables = _in_dependency_order(await source_side.tables(), await dest_side.tables())
    filled = {name: n for name, n in [(t, await dest_side.count(t)) for t in tables] if n}
    if filled:
        raise CopyRefused(f"{dest_name} already holds a library ({_what(filled)}): "
                          f"`paperbot db copy` fills only an empty one; choose a new database, schema or file")
    copied: list[TableCopy] = []
    async with source_side.snapshot() as read, dest_side.transaction():
        for table, (source_columns, dest_columns) in tables.items():
            columns = [c for c in source_columns if c in dest_columns]
            written = 0
            async for rows in read(table, columns, batch_rows):
                try:
                    await dest_side.insert(table, columns, rows)
                except dest_side.errors as error:
                    raise CopyRefused(f"{dest_name} refused a row of {table} ({type(error).__name__}: "
                                      f"{str(error).splitlines()[0]}): nothing was copied") from None
                written += len(rows)
            expected, landed = await read.count(table), await dest_side.count(table)
            if not expected == written == landed:
                raise CopyRefused(f"copying {table} read {written} of {expected} rows and wrote {landed}: "
                                  f"nothing was copied into {dest_name}")
            copied.append(TableCopy(table, written))
            if on_table is not None:
                on_table(copied[-1])
        await dest_side.continue_ids(await read.id_high_water())
    return CopyReport(source_name, dest_name, versions[0], copied)


def _what(counts: dict[str, int]) -> str:
    named = [f"{counts[t]:,} {label}" for t, label in _HEADLINE.items() if counts.get(t)]
    others = sum(n for t, n in counts.items() if t not in _HEADLINE)
    if others:
        named.append(f"{others:,} other rows")
    return ", ".join(named)


def _in_dependency_order(source: dict[str, Any], dest: dict[str, Any]) -> dict[str, tuple[list[str], set[str]]]:
    """The tables both libraries have, each after the tables its foreign keys point to.

    `source`/`dest`: table -> (columns in order, tables it references). A table only one backend has
    is that backend's own search machinery, filled on the destination by its triggers.
    """
    shared = sorted(set(source) & set(dest))
    parents = {t: (source[t][1] | dest[t][1]) & set(shared) - {t} for t in shared}
    ordered: list[str] = []
    while len(ordered) < len(shared):
        ready = [t for t in shared if t not in ordered and parents[t] <= set(ordered)]
        if not ready:
            raise CopyRefused(f"the tables {sorted(set(shared) - set(ordered))} refer to each other in a cycle")
        ordered += ready
    return {t: (source[t][0], set(dest[t][0])) for t in ordered}


def _quoted(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise CopyRefused(f"unexpected table or column name {name!r} in the library")
    return f'"{name}"'


def _side(library: Any) -> _SQLite | _Postgres:
    return _Postgres(library) if db.dialect(library) == "postgresql" else _SQLite(library)


# ----- SQLite ------------------------------------------------------------------------------------


class _SQLite:
    """A SQLite library, worked through its writer connection (reads of a snapshot, bulk writes)."""

    errors = (sqlite3.Error,)

    def __init__(self, library: Any) -> None:
        self.library = library
        self.conn = library.writer

    async def _all(self, sql: str, params: tuple = ()) -> list:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def schema_version(self) -> int:
        return await db.user_version(self.conn)

    async def tables(self) -> dict[str, tuple[list[str], set[str]]]:
        """Ordinary tables only: FTS5 tables, their shadow tables and sqlite_* are the index's."""
        found = {}
        for row in await self._all("PRAGMA table_list"):
            name, kind = row["name"], row["type"]
            if row["schema"] != "main" or kind != "table" or name.startswith("sqlite_"):
                continue
            columns = [c["name"] for c in await self._all(f"PRAGMA table_xinfo({_quoted(name)})") if c["hidden"] == 0]
            parents = {f["table"] for f in await self._all(f"PRAGMA foreign_key_list({_quoted(name)})")}
            found[name] = (columns, parents)
        return found

    async def count(self, table: str) -> int:
        return (await self._all(f"SELECT count(*) FROM {_quoted(table)}"))[0][0]

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[_SQLiteSnapshot]:
        """One read transaction: every table as it was at its first read, even if the bot writes meanwhile."""
        await self.conn.execute("BEGIN")
        try:
            yield _SQLiteSnapshot(self)
        finally:
            await self.conn.execute("ROLLBACK")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with db.transaction(self.library):
            yield

    async def insert(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        names = ", ".join(_quoted(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        await self.conn.executemany(f"INSERT INTO {_quoted(table)} ({names}) VALUES ({marks})", rows)

    async def continue_ids(self, high_water: dict[str, int]) -> None:
        """AUTOINCREMENT tables continue after the highest id the source ever gave out (its rows may be gone)."""
        for (table,) in await self._all(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'"):
            highest = max(high_water.get(table, 0), await self._max_rowid(table))
            await self.conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
            if highest:
                await self.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, highest))

    async def _max_rowid(self, table: str) -> int:
        return (await self._all(f"SELECT coalesce(max(rowid), 0) FROM {_quoted(table)}"))[0][0]


class _SQLiteSnapshot:
    def __init__(self, side: _SQLite) -> None:
        self.side = side

    async def __call__(self, table: str, columns: list[str], batch_rows: int) -> AsyncIterator[list[tuple]]:
        names = ", ".join(_quoted(c) for c in columns)
        async with self.side.conn.execute(f"SELECT {names} FROM {_quoted(table)}") as cursor:
            while rows := await cursor.fetchmany(batch_rows):
                yield [tuple(row) for row in rows]

    async def count(self, table: str) -> int:
        return await self.side.count(table)

    async def id_high_water(self) -> dict[str, int]:
        """table -> the highest id it ever handed out: SQLite's AUTOINCREMENT counters and INTEGER PRIMARY KEYs."""
        found = {}
        for row in await self.side._all("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
            if row["sql"] and re.search(r"\bINTEGER PRIMARY KEY\b", row["sql"]) and "WITHOUT ROWID" not in row["sql"]:
                found[row["name"]] = await self.side._max_rowid(row["name"])
        if await self.side._all("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"):
            for name, seq in await self.side._all("SELECT name, seq FROM sqlite_sequence"):
                found[name] = max(found.get(name, 0), seq)
        return found


# ----- PostgreSQL --------------------------------------------------------------------------------


class _Postgres:
    """A PostgreSQL library: its schema's tables, read through a snapshot, written in its one transaction."""

    def __init__(self, library: Any) -> None:
        import asyncpg

        self.library = library
        self.schema = library.schema
        self.errors = (asyncpg.PostgresError,)

    async def _all(self, sql: str, *params: Any) -> list:
        async with self.library.pool.acquire() as conn:
            return await conn.fetch(sql, *params)

    async def schema_version(self) -> int:
        from storage import postgres

        return await postgres.user_version(self.library)

    async def tables(self) -> dict[str, tuple[list[str], set[str]]]:
        rows = await self._all(
            """SELECT c.relname AS table, a.attname AS column
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'paperbot_schema'
                 AND a.attgenerated = ''
               ORDER BY c.relname, a.attnum""", self.schema)
        found: dict[str, tuple[list[str], set[str]]] = {}
        for row in rows:
            found.setdefault(row["table"], ([], set()))[0].append(row["column"])
        for row in await self._all(
                """SELECT child.relname AS child, parent.relname AS parent
                   FROM pg_constraint f JOIN pg_class child ON child.oid = f.conrelid
                   JOIN pg_class parent ON parent.oid = f.confrelid
                   JOIN pg_namespace n ON n.oid = f.connamespace
                   WHERE f.contype = 'f' AND n.nspname = $1""", self.schema):
            if row["child"] in found:
                found[row["child"]][1].add(row["parent"])
        return found

    async def count(self, table: str) -> int:
        rows = await self.library.execute(f"SELECT count(*) FROM {_quoted(table)}")
        return (await rows.fetchone())[0]

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[_PostgresSnapshot]:
        async with self.library.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield _PostgresSnapshot(self, conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.library.transaction():
            yield

    async def insert(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        names = ", ".join(_quoted(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        await self.library.executemany(f"INSERT INTO {_quoted(table)} ({names}) VALUES ({marks})", rows)

    async def _identities(self) -> list[tuple[str, str, str]]:
        """(table, column, sequence) of every identity or serial column in the schema."""
        rows = await self._all(
            """SELECT c.relname AS table, a.attname AS column,
                      pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS sequence
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')""", self.schema)
        return [(r["table"], r["column"], r["sequence"]) for r in rows if r["sequence"]]

    async def continue_ids(self, high_water: dict[str, int]) -> None:
        """Each identity sequence continues after the highest id the source ever gave out."""
        for table, column, sequence in await self._identities():
            await self.library.execute(
                f"SELECT setval(?::regclass, greatest(coalesce(max({_quoted(column)}), 0), ?::bigint, 0) + 1, false) "
                f"FROM {_quoted(table)}", (sequence, high_water.get(table, 0)))


class _PostgresSnapshot:
    def __init__(self, side: _Postgres, conn: Any) -> None:
        self.side, self.conn = side, conn

    async def __call__(self, table: str, columns: list[str], batch_rows: int) -> AsyncIterator[list[tuple]]:
        names = ", ".join(_quoted(c) for c in columns)
        cursor = await self.conn.cursor(f"SELECT {names} FROM {_quoted(table)}")
        while rows := await cursor.fetch(batch_rows):
            yield [tuple(row) for row in rows]

    async def count(self, table: str) -> int:
        return await self.conn.fetchval(f"SELECT count(*) FROM {_quoted(table)}")

    async def id_high_water(self) -> dict[str, int]:
        """table -> the highest id it handed out: each identity sequence's last value, or its column's max."""
        found = {}
        for table, column, sequence in await self.side._identities():
            last = await self.conn.fetchval(
                "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM " + _sequence_name(sequence))
            highest = await self.conn.fetchval(f"SELECT coalesce(max({_quoted(column)}), 0) FROM {_quoted(table)}")
            found[table] = max(last or 0, highest)
        return found


def _sequence_name(sequence: str) -> str:
    """A sequence as pg_get_serial_sequence names it (schema.name, each maybe quoted), checked."""
    if not re.fullmatch(r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\.(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*))?', sequence):
        raise CopyRefused(f"unexpected sequence name {sequence!r} in the library")
    return sequence
