"""Opening, migrating, checking and backing up the library database.

Every connection goes through `connect` so that all of them share the same
PRAGMAs (WAL for concurrent readers, enforced foreign keys) and the schema is
always current before anyone reads it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import aiosqlite

BUSY_TIMEOUT_MS = 5000
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer Paperbot; opening it could damage it."""


def _load_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every packaged migration, in order, numbered 1..N without gaps."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"storage migrations must be numbered 001, 002, … without gaps; found {versions}")
    return found


MIGRATIONS = _load_migrations()
SCHEMA_VERSION = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split SQL into statements (triggers kept whole), so a migration can run inside our own transaction.

    `executescript` would COMMIT first, breaking the one-transaction-per-migration rule.
    """
    statements, pending = [], ""
    *terminated, rest = script.split(";")
    for piece in terminated:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if _SQL_COMMENTS.sub("", pending + rest).strip():
        raise ValueError(f"SQL script ends with an unterminated statement: {(pending + rest).strip()[:80]!r}")
    return statements


async def user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        return (await cursor.fetchone())[0]


async def migrate(conn: aiosqlite.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION and return the version now in force.

    Each migration runs in its own IMMEDIATE transaction together with its
    user_version bump, re-checking the version under the write lock so two
    processes starting at once cannot apply a migration twice.
    """
    version = await user_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"The database is at schema version {version}, but this Paperbot only knows up to "
            f"{SCHEMA_VERSION}. Upgrade Paperbot (or restore a backup) before using it."
        )
    for number, name, sql in MIGRATIONS[version:]:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if await user_version(conn) < number:
                for statement in split_statements(sql):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number:d}")
            await conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise RuntimeError(f"migration {name} failed: {error}") from error
            raise
    return await user_version(conn)


async def connect(path: str | Path) -> aiosqlite.Connection:
    """Open the library at `path` (created if missing), configured and migrated.

    Autocommit mode (isolation_level=None): writers open their own explicit
    transactions, so nothing is ever left implicitly open between calls.
    """
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def integrity_check(conn: aiosqlite.Connection) -> list[str]:
    """Problems found in the file, its foreign keys, the search index and tag counts; [] means healthy."""
    try:
        async with conn.execute("PRAGMA integrity_check") as cursor:
            problems = [row[0] for row in await cursor.fetchall() if row[0] != "ok"]
    except sqlite3.DatabaseError as error:
        return [f"not a readable database: {error}"]
    async with conn.execute("PRAGMA foreign_key_check") as cursor:
        problems += [
            f"{row[0]} row {row[1]} points to a missing {row[2]} row" for row in await cursor.fetchall()
        ]
    if await user_version(conn) >= 1:
        problems += await _search_index_problems(conn)
        problems += await _tag_count_problems(conn)
    return problems


async def _search_index_problems(conn: aiosqlite.Connection) -> list[str]:
    """FTS5's check is spelled as an INSERT; undo any transaction it opened on a non-autocommit connection."""
    was_in_transaction = conn.in_transaction
    try:
        await conn.execute("INSERT INTO papers_fts (papers_fts) VALUES ('integrity-check')")
    except sqlite3.DatabaseError as error:
        return [f"search index is damaged ({error}); run rebuild_search_index"]
    finally:
        if conn.in_transaction and not was_in_transaction:
            await conn.execute("ROLLBACK")
    return []


async def _tag_count_problems(conn: aiosqlite.Connection) -> list[str]:
    sql = """
        SELECT t.name, t.paper_count,
               (SELECT count(DISTINCT pt.paper_id) FROM paper_tags pt WHERE pt.tag_id = t.id) AS actual
        FROM tags t WHERE t.paper_count IS NOT actual"""
    async with conn.execute(sql) as cursor:
        return [f"tag {row[0]!r} counts {row[1]} papers but has {row[2]}" for row in await cursor.fetchall()]


# One writer at a time per connection. The bot's coroutines share one connection, and a
# statement run while another coroutine's BEGIN … COMMIT is open would join (or break) it.
_write_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(conn: aiosqlite.Connection) -> asyncio.Lock:
    lock = _write_locks.get(conn)
    if lock is None:
        lock = _write_locks[conn] = asyncio.Lock()
    return lock


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN IMMEDIATE … COMMIT under the connection's write lock; ROLLBACK on any error.

    Every multi-statement write in `storage` goes through here, so a failure leaves
    nothing half-written and concurrent writers never interleave.
    """
    async with write_lock(conn):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                await conn.execute("ROLLBACK")
            raise


async def write(conn: aiosqlite.Connection, sql: str, params: tuple = ()) -> int:
    """One autocommit statement, never inside another coroutine's transaction; returns rowcount."""
    async with write_lock(conn):
        cursor = await conn.execute(sql, params)
        return cursor.rowcount


async def rebuild_search_index(conn: aiosqlite.Connection) -> None:
    """Re-create the full-text index from the papers table.

    FTS5's own 'rebuild' cannot read the content view (it uses json_each), so
    this empties the index and re-inserts from the view in one transaction.
    """
    async with transaction(conn):
        await conn.execute("INSERT INTO papers_fts (papers_fts) VALUES ('delete-all')")
        await conn.execute(
            "INSERT INTO papers_fts (rowid, title, authors, summary, tags, facets) "
            "SELECT id, title, authors, summary, tags, facets FROM paper_search_text"
        )
        for index in ("papers_titles", "search_words"):  # search's title and word indexes (migration 012)
            await conn.execute(f"INSERT INTO {index} ({index}) VALUES ('rebuild')")


async def _database_file(conn: aiosqlite.Connection) -> str:
    async with conn.execute("PRAGMA database_list") as cursor:
        for row in await cursor.fetchall():
            if row[1] == "main":
                return row[2] or ""
    return ""


async def backup(conn: aiosqlite.Connection, dest: Path) -> None:
    """Copy the live database to `dest` with SQLite's online backup, safe while the bot runs.

    The copy goes to a temporary file renamed into place, so `dest` is never a
    half-written database. For a file database a second connection does the
    copying, so the bot's own connection is not blocked meanwhile.
    """
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    source_file = await _database_file(conn)
    target = await aiosqlite.connect(str(partial))
    try:
        if source_file:
            async with aiosqlite.connect(source_file) as source:
                await source.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
                await source.backup(target)
        else:
            await conn.backup(target)
    finally:
        await target.close()
    partial.replace(dest)
