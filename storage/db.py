"""Opening, migrating, checking and backing up the library database.

Every connection goes through `connect` so that all of them share the same
PRAGMAs (WAL for concurrent readers, enforced foreign keys) and the schema is
always current before anyone reads it.

`connect` returns a `Library`: one writer connection plus a small pool of
read-only reader connections (WAL lets them read while the writer writes), used
like an aiosqlite connection. Reads (SELECT/WITH outside a transaction) go to an
idle reader, so a member's lookup never queues behind ingest or behind another
member's slow search; everything else, and every read inside a transaction,
goes to the writer. Every read on a reader runs within a time budget that
SQLite itself enforces (a progress handler), so a query too costly to answer
stops with `QueryTooBroad` instead of holding a reader and a CPU. An in-memory
database (tests) has no readers: everything runs on the writer, without budgets.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path

import aiosqlite

from storage import errors
from storage.errors import DatabaseError, SchemaTooNewError  # noqa: F401  (re-exported for callers)
from storage.search_query import QueryTooBroad

BUSY_TIMEOUT_MS = 5000
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def _load_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every packaged migration, in order, numbered 1..N without gaps."""
    folder = resources.files(__package__).joinpath("migrations", "sqlite")
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
    """The schema version in force (SQLite keeps it in the file header, PostgreSQL in a table)."""
    if dialect(conn) == "postgresql":
        from storage import postgres

        return await postgres.user_version(conn)
    async with conn.execute("PRAGMA user_version") as cursor:
        return (await cursor.fetchone())[0]


async def migrate(conn: aiosqlite.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION and return the version now in force.

    Each migration runs in its own IMMEDIATE transaction together with its
    user_version bump, re-checking the version under the write lock so two
    processes starting at once cannot apply a migration twice. On PostgreSQL,
    `storage.postgres.migrate` keeps the same promises.
    """
    if dialect(conn) == "postgresql":
        from storage import postgres

        return await postgres.migrate(conn)
    version = await user_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"The database is at schema version {version}, but this Paperbot only knows up to "
            f"{SCHEMA_VERSION}. Upgrade Paperbot (or restore a backup) before using it."
        )
    if version == 0 and await _foreign_tables(conn):
        raise errors.NotALibrary(Path(await _database_file(conn)), "a SQLite file with other tables")
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


async def _foreign_tables(conn: aiosqlite.Connection) -> list[str]:
    """Tables in a schema-0 file: another program's database, which migrating would litter."""
    async with conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cursor:
        return [row[0] for row in await cursor.fetchall()]


def dialect(conn) -> str:
    """'sqlite' or 'postgresql': which SQL a storage module speaks to `conn` where the two differ."""
    return getattr(conn, "dialect", "sqlite")


def sqlite_path(target: str | Path) -> str | Path:
    """The file a SQLite target names: a path, or a URL as SQLAlchemy spells it
    (`sqlite:///paperbot.db` relative, `sqlite:////var/lib/paperbot/paperbot.db` absolute)."""
    if isinstance(target, str) and target.startswith("sqlite:///"):
        return target[len("sqlite:///"):]
    return target


async def connect(target: str | Path, *, readers: int | None = None):
    """Open the library at `target`, configured and migrated: a SQLite file's path (or a
    `sqlite:///path` URL), created if missing, or a `postgresql://…` URL (`storage.postgres`).

    Any problem with the file is raised as the `storage.errors.DatabaseError` that explains it.
    `readers`: size of the SQLite read pool (default READERS); an in-memory database has none.
    """
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from storage import postgres

        return await postgres.connect(target)
    path = sqlite_path(target)
    with errors.translated(path):
        in_memory = str(path) in ("", ":memory:") or str(path).startswith("file::memory:")
        if not in_memory:
            errors.check_folder(Path(path))
        conn = await _open_writer(path)
        try:
            await _check_writable(conn)
        except BaseException:
            await conn.close()
            raise
        return Library(conn, None if in_memory else str(path), READERS if readers is None else readers)


async def _check_writable(conn: aiosqlite.Connection) -> None:
    """SQLite opens a file it may not write read-only without a word; the first write would fail later.

    Rewriting the header's user_version (rolled back) is a real page write, which a read-only
    file refuses even in WAL mode, where BEGIN IMMEDIATE alone succeeds.
    """
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(f"PRAGMA user_version = {await user_version(conn):d}")
    finally:
        await conn.execute("ROLLBACK")


async def _open_writer(path: str | Path) -> aiosqlite.Connection:
    """Open and migrate: autocommit mode (isolation_level=None): writers open their own explicit
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


# ----- the library: one writer, a pool of budgeted readers ------------------------------------

READERS = 4  # enough that a few slow reads leave idle readers for everyone else
QUERY_BUDGET_SECONDS = 2.0  # one lookup (a search, a keyword's matches), all its statements; inside Discord's 3 s
READ_BUDGET_SECONDS = 10.0  # any one read at all: generous for admin reports, but never a stall without end
_PROGRESS_STEPS = 20_000  # SQLite VM steps between budget checks: ~1 ms of work, so the check costs nothing
_READ_STATEMENT = re.compile(r"^\s*(?:SELECT|VALUES)\b|^\s*WITH\b(?!.*\b(?:INSERT|UPDATE|DELETE|REPLACE)\b)",
                             re.IGNORECASE | re.DOTALL)
_TRANSACTION_START = re.compile(r"^\s*BEGIN\b", re.IGNORECASE)
_TRANSACTION_END = re.compile(r"^\s*(?:COMMIT|END|ROLLBACK)\b(?!\s+TO\b)", re.IGNORECASE)

# True while this task has a transaction open on the writer: its reads must see its own writes.
_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("paperbot_db_writing", default=False)
# Whose reads these are (a member's id), set by `reads_for`; None for the bot's own jobs.
_member: contextvars.ContextVar[int | None] = contextvars.ContextVar("paperbot_db_member", default=None)
# The database time this task's current `budget` has left, or None.
_allowance: contextvars.ContextVar[_Allowance | None] = contextvars.ContextVar("paperbot_db_budget", default=None)


class _Allowance:
    """Database time a `budget` has left: what its reads spent running, never time spent waiting.

    Waiting for an idle reader, or for the event loop while something else holds it, is not
    the query's cost; charging it would refuse innocent searches as "too broad" while, say, a
    huge digest is being ingested.
    """

    def __init__(self, seconds: float, outer: _Allowance | None) -> None:
        self.left = seconds if outer is None else min(seconds, outer.left)
        self.outer = outer

    def charge(self, seconds: float) -> None:
        allowance: _Allowance | None = self
        while allowance is not None:
            allowance.left -= seconds
            allowance = allowance.outer


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Every read inside shares `seconds` of database time (a nested budget can only shorten it).

    Searches, exports and subscription matching wrap their several statements in one
    budget, so the whole answer, not each statement, is bounded.
    """
    token = _allowance.set(_Allowance(seconds, _allowance.get()))
    try:
        yield
    finally:
        _allowance.reset(token)


def reads_for(member_id: int) -> None:
    """From here on, this task's reads are `member_id`'s: one member's reads run one at a time.

    So a member sending costly commands back to back (an export still running while the
    next search starts) holds at most one reader; everyone else keeps the rest of the pool.
    """
    _member.set(member_id)


def budgeted(function):
    """Run `function` (a coroutine function) with its reads sharing one QUERY_BUDGET_SECONDS budget,
    unless its caller already set a budget for the whole job (an export, a day's subscriptions)."""

    @functools.wraps(function)
    async def within_budget(*args, **kwargs):
        if _allowance.get() is not None:
            return await function(*args, **kwargs)
        with budget(QUERY_BUDGET_SECONDS):
            return await function(*args, **kwargs)

    return within_budget


def _remaining() -> float:
    allowance = _allowance.get()
    return READ_BUDGET_SECONDS if allowance is None else min(READ_BUDGET_SECONDS, allowance.left)


class _Reader:
    """One read-only connection with its own thread; SQLite stops its statement at the deadline.

    Two stops, because neither alone is enough: a timer on the event loop calls the
    connection's `interrupt()` at the deadline (FTS5 notices it within milliseconds, while
    it may run for hundreds between two progress-handler calls), and the progress handler
    checks the clock too, for an interrupt that came just before the statement started.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="paperbot-reader")
        self._conn: sqlite3.Connection | None = None  # used on self._thread; interrupt() from the loop
        self._deadline = 0.0
        self._lock = threading.Lock()
        self._running = 0  # the ticket of the read in progress, 0 when idle
        self._tickets = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            conn.execute("PRAGMA query_only = ON")
            conn.set_progress_handler(self._over_budget, _PROGRESS_STEPS)
            self._conn = conn
        return self._conn

    def _over_budget(self) -> int:
        return int(time.monotonic() > self._deadline)

    def _fetch(self, sql: str, params: Sequence, deadline: float, ticket: int) -> tuple[list, tuple, float]:
        """The rows, their description, and the seconds the statement ran (on this thread)."""
        conn = self._connection()
        with self._lock:
            self._deadline, self._running = deadline, ticket
        started = time.monotonic()
        try:
            cursor = conn.execute(sql, params)
            return cursor.fetchall(), cursor.description, time.monotonic() - started
        except sqlite3.OperationalError as error:
            if "interrupted" in str(error):
                raise QueryTooBroad() from None
            raise
        finally:
            with self._lock:
                self._running = 0

    def _interrupt(self, ticket: int) -> None:
        """Stop the read `ticket` if it is still running (never a later one)."""
        with self._lock:
            if self._running == ticket and self._conn is not None:
                self._deadline = 0.0
                self._conn.interrupt()

    async def fetch(self, sql: str, params: Sequence, seconds: float) -> tuple[list, tuple, float]:
        loop = asyncio.get_running_loop()
        self._tickets += 1
        ticket = self._tickets
        timer = loop.call_later(seconds, self._interrupt, ticket)
        running = loop.run_in_executor(self._thread, self._fetch, sql, params, time.monotonic() + seconds, ticket)
        try:
            return await running
        except asyncio.CancelledError:
            self._interrupt(ticket)  # nobody waits for the rows any more
            raise
        finally:
            timer.cancel()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)


class _Rows:
    """A read's rows, already fetched, behind the parts of aiosqlite's Cursor that callers use."""

    rowcount = -1
    lastrowid = None

    def __init__(self, rows: list, description: tuple) -> None:
        self._rows, self._next, self.description = rows, 0, description

    async def fetchall(self) -> list:
        rest, self._next = self._rows[self._next :], len(self._rows)
        return rest

    async def fetchone(self):
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchmany(self, size: int = 1) -> list:
        chunk = self._rows[self._next : self._next + size]
        self._next += len(chunk)
        return chunk

    def __aiter__(self) -> _Rows:
        return self

    async def __anext__(self):
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def close(self) -> None:
        self._rows = []

    async def __aenter__(self) -> _Rows:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


class _ReadResult:
    """What `Library.execute` returns for a read: awaitable and an async context manager, like aiosqlite's."""

    def __init__(self, library: Library, sql: str, params: Sequence) -> None:
        self._library, self._sql, self._params = library, sql, params

    def __await__(self):
        return self._library._read(self._sql, self._params).__await__()

    async def __aenter__(self) -> _Rows:
        return await self._library._read(self._sql, self._params)

    async def __aexit__(self, *exc_info) -> None:
        return None


class Library:
    """The writer connection and a pool of readers, used like an aiosqlite connection.

    `execute` sends a read to an idle reader (waiting for one if all are busy) and
    everything else to the writer; any other attribute is the writer's, so code written
    for one aiosqlite connection keeps working unchanged.
    """

    dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, path: str | None, readers: int) -> None:
        self.writer = writer
        self._held: set[tuple[str, int]] = set()
        self._readers = [_Reader(path) for _ in range(readers)] if path else []
        self._idle: asyncio.Queue[_Reader] | None = None
        self._members: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def __getattr__(self, name: str):
        return getattr(self.writer, name)

    @property
    def row_factory(self):
        return self.writer.row_factory

    @row_factory.setter
    def row_factory(self, factory) -> None:
        self.writer.row_factory = factory

    @property
    def in_transaction(self) -> bool:
        return self.writer.in_transaction

    def execute(self, sql: str, parameters: Sequence | None = None):
        params = parameters if isinstance(parameters, dict) else tuple(parameters or ())
        if self._readers and not _writing.get() and _READ_STATEMENT.match(sql):
            return _ReadResult(self, sql, params)
        if _TRANSACTION_START.match(sql):
            return self._begin(sql, params)
        if _TRANSACTION_END.match(sql):
            _writing.set(False)
        return self.writer.execute(sql, params)

    async def _begin(self, sql: str, params: Sequence) -> aiosqlite.Cursor:
        """BEGIN on the writer; only once it succeeded are this task's reads sent to the writer too."""
        cursor = await self.writer.execute(sql, params)
        _writing.set(True)  # awaited directly, so this sets the calling task's context
        return cursor

    async def _read(self, sql: str, params: Sequence) -> _Rows:
        member = _member.get()
        if member is None:
            return await self._read_on_idle_reader(sql, params)
        lock = self._members.get(member)
        if lock is None:
            lock = self._members[member] = asyncio.Lock()
        async with lock:
            return await self._read_on_idle_reader(sql, params)

    async def _read_on_idle_reader(self, sql: str, params: Sequence) -> _Rows:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for reader in self._readers:
                self._idle.put_nowait(reader)
        reader = await self._idle.get()
        try:
            seconds = _remaining()
            if seconds <= 0:
                raise QueryTooBroad()
            rows, description, spent = await reader.fetch(sql, params, seconds)
        finally:
            self._idle.put_nowait(reader)
        allowance = _allowance.get()
        if allowance is not None:
            allowance.charge(spent)
        return _Rows(rows, description)

    @asynccontextmanager
    async def hold(self, name: str, key: int, *, wait: bool = False) -> AsyncIterator[bool]:
        """Yield True while this process holds (name, key), False if another task does
        (`wait=True`: wait for it). One process owns a SQLite library, so a set in memory is
        the whole claim; `storage.postgres` holds the same across processes."""
        while (name, key) in self._held:
            if not wait:
                yield False
                return
            await asyncio.sleep(0.05)
        self._held.add((name, key))
        try:
            yield True
        finally:
            self._held.discard((name, key))

    async def close(self) -> None:
        for reader in self._readers:
            await reader.close()
        await self.writer.close()

    async def __aenter__(self) -> Library:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


async def integrity_check(conn: aiosqlite.Connection) -> list[str]:
    """Problems found in the file, its foreign keys, the search index and tag counts; [] means healthy.

    On PostgreSQL the server looks after its files; `storage.postgres.integrity_problems` checks
    that every foreign key is enforced and holds, then the tag counts are checked as here.
    """
    if dialect(conn) == "postgresql":
        from storage import postgres

        return await postgres.integrity_problems(conn) + await _tag_count_problems(conn)
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
        SELECT name, paper_count, actual FROM (
            SELECT t.name, t.paper_count,
                   (SELECT count(DISTINCT pt.paper_id) FROM paper_tags pt WHERE pt.tag_id = t.id) AS actual
            FROM tags t) counted
        WHERE paper_count IS DISTINCT FROM actual"""
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


async def _execute_when_not_busy(conn: aiosqlite.Connection, sql: str, params: tuple = ()) -> aiosqlite.Cursor:
    """Execute a write, retrying while another process holds the write lock (up to BUSY_TIMEOUT_MS).

    SQLite's own busy wait is skipped when this connection is inside a read (a SELECT another
    coroutine has open between its execute and its fetch): waiting there could deadlock, so it
    answers "database is locked" at once. Retrying from here lets that read finish first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return await conn.execute(sql, params)
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.01)


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN IMMEDIATE … COMMIT under the connection's write lock; ROLLBACK on any error.

    Every multi-statement write in `storage` goes through here, so a failure leaves
    nothing half-written and concurrent writers never interleave. On PostgreSQL the
    library's own `transaction` keeps the same promises.
    """
    if dialect(conn) == "postgresql":
        async with conn.transaction():
            yield conn
        return
    async with write_lock(conn):
        await _execute_when_not_busy(conn, "BEGIN IMMEDIATE")
        try:
            yield conn
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                await conn.execute("ROLLBACK")
            raise


async def write(conn: aiosqlite.Connection, sql: str, params: tuple = ()) -> int:
    """One autocommit statement, never inside another coroutine's transaction; returns rowcount."""
    if dialect(conn) == "postgresql":
        return await conn.write(sql, params)
    async with write_lock(conn):
        cursor = await _execute_when_not_busy(conn, sql, params)
        return cursor.rowcount


async def rebuild_search_index(conn: aiosqlite.Connection) -> None:
    """Re-create the full-text index from the papers table.

    FTS5's own 'rebuild' cannot read the content view (it uses json_each), so
    this empties the index and re-inserts from the view in one transaction. On PostgreSQL the
    index is the papers' own vectors (migrations/postgres 001, 012), recomputed in place, and the
    vocabulary is counted again.
    """
    if dialect(conn) == "postgresql":
        async with transaction(conn):
            await conn.execute(
                "UPDATE papers SET search_vector = v.vector, "
                "search_length = (SELECT coalesce(sum(cardinality(positions)), 0) FROM unnest(v.vector)), "
                "title_vector = to_tsvector('paperbot_search', title) "
                "FROM (SELECT id, paperbot_search_vector(title, authors, summary, tag_text) AS vector FROM papers) v "
                "WHERE papers.id = v.id"
            )
            await conn.execute("DELETE FROM search_words")
            await conn.execute(
                "INSERT INTO search_words (word, papers) SELECT word, count(*) "
                "FROM papers, paperbot_words(papers.title, papers.tag_text) AS word GROUP BY word"
            )
        return
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
    """Copy the live database to `dest`; a problem with `dest` is raised as the DatabaseError explaining it.

    A PostgreSQL library is backed up by PostgreSQL's own tool, which copies it consistently
    while the bot runs: refused here with the command to use.
    """
    if dialect(conn) == "postgresql":
        raise errors.BackupNotHere(conn.url, conn.schema)
    with errors.translated(dest):
        errors.check_folder(Path(dest))
        await _backup(conn, dest)


async def _backup(conn: aiosqlite.Connection, dest: Path) -> None:
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
