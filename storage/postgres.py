"""The library on PostgreSQL: the same calls as `storage.db.Library`, on an asyncpg pool.

Storage modules are written once, against the small part of an aiosqlite connection they use
(`execute` returning rows, `executemany`, `transaction`, `write`). `PostgresLibrary` offers the
same part, so every table group runs on either backend; where the two SQL dialects differ, the
module asks `dialect(conn)` and says both.

- Placeholders: modules write `?`; they are numbered (`$1`, `$2`, …) once per statement text.
- Transactions: `transaction(library)` takes a pooled connection for the task, and every statement
  the task runs inside goes to it (a context variable), like the SQLite writer's. Writers take one
  transaction-scoped advisory lock first, so write transactions run one at a time as on SQLite,
  where BEGIN IMMEDIATE serialises them: the modules' read-then-write steps stay correct across
  processes without each growing its own locking.
- Reads outside a transaction run on any pooled connection within the caller's time budget
  (`storage.db.budget`); one that runs out is cancelled and raises `QueryTooBroad`. One member's
  reads run one at a time (`storage.db.reads_for`), as on SQLite.
- `hold(name, key)`: a session advisory lock on a connection kept for locks, so a claim (a day's
  fetch, a ledger item) belongs to one process and dies with it: PostgreSQL releases a killed
  process's locks when its connection drops, with no lease to wait out.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from importlib import resources
from typing import Any

import asyncpg

from storage import errors
from storage.db import SCHEMA_VERSION, _allowance, _member, _remaining, _Rows
from storage.search_query import QueryTooBroad

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_RETURNS_ROWS = re.compile(r"^\s*(?:SELECT|VALUES|WITH|SHOW)\b|\bRETURNING\b", re.IGNORECASE)
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$\$.*?\$\$|\?", re.DOTALL)
_STATUS_COUNT = re.compile(r"(\d+)$")
# Every write transaction takes this lock first (see the module docstring). Its key is the
# library's schema, so libraries in separate schemas of one database never wait for each other.
_WRITERS = "writers"
CONNECT_TIMEOUT_SECONDS = 10  # an unreachable host says so within this, instead of a minute's silence
POOL_SIZE = 6  # the writer's transaction, readers, and the migration lock; plus one connection for `hold`

_transaction: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
    "paperbot_pg_transaction", default=None
)


@lru_cache(maxsize=2048)
def numbered(sql: str) -> str:
    """`?` placeholders as `$1`, `$2`, …, leaving string literals, quoted names and comments alone."""
    count = 0

    def renumber(match: re.Match) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return _TOKENS.sub(renumber, sql)


def _load_migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("storage").joinpath("migrations", "postgres")
    found = sorted(
        (int(match.group(1)), entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if (match := _MIGRATION_NAME.match(entry.name))
    )
    return found


MIGRATIONS = _load_migrations()


class _Statement:
    """What `execute` returns: awaitable, and an async context manager, like aiosqlite's cursor."""

    def __init__(self, library: PostgresLibrary, sql: str, params: Sequence) -> None:
        self._library, self._sql, self._params = library, sql, params

    def __await__(self):
        return self._library._run(self._sql, self._params).__await__()

    async def __aenter__(self) -> _Rows:
        return await self._library._run(self._sql, self._params)

    async def __aexit__(self, *exc_info) -> None:
        return None


class PostgresLibrary:
    """A Paperbot library in one PostgreSQL schema: a pool of connections, used like `storage.db.Library`."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str, schema: str) -> None:
        self.pool, self.url, self.schema = pool, url, schema
        self._locks_conn: asyncpg.Connection | None = None
        self._locks_guard = asyncio.Lock()
        self._writer = asyncio.Lock()  # this process's writers, one at a time (see `transaction`)
        self._held: dict[tuple[str, int], int] = {}  # (name, key) -> times held by this process
        self._members: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    # ----- statements ----------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return _transaction.get() is not None

    def execute(self, sql: str, parameters: Sequence | None = None) -> _Statement:
        return _Statement(self, sql, tuple(parameters or ()))

    async def _run(self, sql: str, params: Sequence) -> _Rows:
        text = numbered(sql)
        conn = _transaction.get()
        if conn is not None:
            return await _on(conn, text, params)
        member = _member.get()
        if member is None:
            return await self._read(text, params)
        lock = self._members.get(member)
        if lock is None:
            lock = self._members[member] = asyncio.Lock()
        async with lock:  # one member's reads one at a time (`storage.db.reads_for`), as on SQLite
            return await self._read(text, params)

    async def _read(self, text: str, params: Sequence) -> _Rows:
        """A statement outside any transaction, on a pooled connection, within the caller's budget."""
        seconds = _remaining()
        if seconds <= 0:
            raise QueryTooBroad()
        async with self.pool.acquire() as pooled:
            started = time.monotonic()  # waiting for a connection is not the query's cost
            try:
                return await _on(pooled, text, params, timeout=seconds)
            except asyncio.TimeoutError:
                raise QueryTooBroad() from None
            finally:
                allowance = _allowance.get()
                if allowance is not None:
                    allowance.charge(time.monotonic() - started)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if not rows:
            return
        conn = _transaction.get()
        if conn is not None:
            await conn.executemany(numbered(sql), rows)
            return
        async with self.transaction() as _:
            await _transaction.get().executemany(numbered(sql), rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresLibrary]:
        """One write transaction at a time for the whole library, as SQLite's BEGIN IMMEDIATE.

        A process's writers queue here first, not on the advisory lock: a writer waiting there
        would hold a pooled connection, and enough of them would leave none for reads.
        """
        if _transaction.get() is not None:
            raise RuntimeError("a transaction is already open in this task")
        async with self._writer, self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", self._key(_WRITERS, 0))
            token = _transaction.set(conn)
            try:
                yield self
            finally:
                _transaction.reset(token)

    async def write(self, sql: str, params: Sequence = ()) -> int:
        """One statement on its own, which PostgreSQL applies atomically: it needs no writers lock,
        so the ledger's per-message marks from many processes never queue behind each other."""
        conn = _transaction.get()
        if conn is not None:
            return (await _on(conn, numbered(sql), params)).rowcount
        async with self.pool.acquire() as pooled:
            return (await _on(pooled, numbered(sql), params)).rowcount

    # ----- claims --------------------------------------------------------------------------

    def _key(self, name: str, key: int) -> str:
        return f"{self.schema}:{name}:{key}"

    async def _locks(self) -> asyncpg.Connection:
        if self._locks_conn is None or self._locks_conn.is_closed():
            self._locks_conn = await asyncpg.connect(self.url)
        return self._locks_conn

    @asynccontextmanager
    async def hold(self, name: str, key: int, *, wait: bool = False) -> AsyncIterator[bool]:
        """Yield True while this process holds (name, key) across all processes, False if another does.

        `wait=True` waits for the holder to let go instead of yielding False.
        """
        lock = self._key(name, key)
        async with self._locks_guard:
            if (name, key) in self._held:  # held by another task of this process: not ours to share
                got = False
            else:
                conn = await self._locks()
                got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lock)
                if got:
                    self._held[(name, key)] = 1
        if not got and wait:
            while not got:
                await asyncio.sleep(0.2)
                async with self._locks_guard:
                    if (name, key) not in self._held:
                        conn = await self._locks()
                        got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lock)
                        if got:
                            self._held[(name, key)] = 1
        try:
            yield got
        finally:
            if got:
                async with self._locks_guard:
                    del self._held[(name, key)]
                    conn = self._locks_conn
                    if conn is not None and not conn.is_closed():
                        await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock)

    # ----- lifetime ------------------------------------------------------------------------

    async def close(self) -> None:
        if self._locks_conn is not None and not self._locks_conn.is_closed():
            await self._locks_conn.close()
        await self.pool.close()

    async def __aenter__(self) -> PostgresLibrary:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


async def _on(conn: asyncpg.Connection, sql: str, params: Sequence, timeout: float | None = None) -> _Rows:
    if _RETURNS_ROWS.search(sql):
        return _Rows(await conn.fetch(sql, *params, timeout=timeout), ())
    status = await conn.execute(sql, *params, timeout=timeout)
    count = _STATUS_COUNT.search(status or "")
    rows = _Rows([], ())
    rows.rowcount = int(count.group(1)) if count else -1
    return rows


def with_schema(url: str, schema: str) -> str:
    """`url` with its library in `schema` (the `search_path` option `schema_of` reads back)."""
    return url + ("&" if "?" in url else "?") + f"search_path={schema}"


@asynccontextmanager
async def scratch_schema(url: str, prefix: str) -> AsyncIterator[str]:
    """A URL naming a new schema (`prefix` + random) in `url`'s database, dropped with all it holds
    afterwards: a throw-away library for tests and benchmarks."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield with_schema(url, schema)
    finally:
        await drop_schema(url, schema)


async def drop_schema(url: str, schema: str) -> None:
    """Drop `schema` and everything in it from `url`'s database."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def schema_of(url: str) -> str:
    """The schema a URL's `search_path` names (asyncpg passes unknown URL options as server settings)."""
    match = re.search(r"[?&]search_path=([A-Za-z_][A-Za-z0-9_]*)", url)
    return match.group(1) if match else "public"


async def connect(url: str, *, pool_size: int = POOL_SIZE) -> PostgresLibrary:
    """Open the library at `url` (postgresql://…), its schema created and migrated."""
    schema = schema_of(url)
    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=CONNECT_TIMEOUT_SECONDS)
    except (OSError, asyncio.TimeoutError) as error:
        raise errors.DatabaseError(
            f"cannot reach PostgreSQL at {redacted(url)} ({error or 'no answer'}): is the server running, "
            f"and are the host and port in [database] url right?"
        ) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as error:
        raise errors.DatabaseError(f"cannot use PostgreSQL at {redacted(url)}: {error}; check [database] url") from None
    library = PostgresLibrary(pool, url, schema)
    try:
        await migrate(library)
    except asyncpg.PostgresError as error:  # not a migration's own failure (that is a RuntimeError naming it)
        await pool.close()
        raise errors.DatabaseError(f"cannot set up the library at {redacted(url)}: {error}") from None
    except BaseException:
        await pool.close()
        raise
    return library


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


async def user_version(library: PostgresLibrary) -> int:
    async with library.pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('paperbot_schema') IS NOT NULL")
        if not exists:
            return 0
        return await conn.fetchval("SELECT version FROM paperbot_schema")


async def migrate(library: PostgresLibrary) -> int:
    """Bring the schema up to SCHEMA_VERSION and return the version now in force.

    As on SQLite, each migration runs in its own transaction together with its version bump.
    A session advisory lock, taken before anything else (even creating the schema), makes
    processes starting at once migrate one after the other: the second finds the work done.
    PostgreSQL releases the lock if the migrating process dies.
    """
    async with library.pool.acquire() as conn:
        lock = library._key("migrate", 0)
        await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", lock)
        try:
            return await _migrate_locked(conn, library.schema)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock)


async def _migrate_locked(conn: asyncpg.Connection, schema: str) -> int:
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    if await conn.fetchval("SELECT to_regclass('paperbot_schema') IS NULL"):
        others = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema)
        if others:
            names = ", ".join(row[0] for row in others[:5])
            raise errors.DatabaseError(
                f"the PostgreSQL schema {schema!r} holds another program's tables ({names}) and no Paperbot "
                f"library: give Paperbot a schema of its own (?search_path=paperbot in [database] url)"
            )
        await conn.execute("CREATE TABLE paperbot_schema (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO paperbot_schema VALUES (0)")
    version = await conn.fetchval("SELECT version FROM paperbot_schema")
    if version > SCHEMA_VERSION:
        raise errors.SchemaTooNewError(
            f"The database is at schema version {version}, but this Paperbot only knows up to "
            f"{SCHEMA_VERSION}. Upgrade Paperbot (or restore a backup) before using it."
        )
    for number, name, sql in MIGRATIONS[version:]:
        try:
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("UPDATE paperbot_schema SET version = $1", number)
        except asyncpg.PostgresError as error:
            raise RuntimeError(f"migration postgres/{name} failed: {error}") from error
    return await conn.fetchval("SELECT version FROM paperbot_schema")


async def integrity_problems(library: PostgresLibrary) -> list[str]:
    """Foreign keys that are not enforced or do not hold; [] when every one does.

    PostgreSQL enforces foreign keys as rows are written, so they hold by construction unless
    someone switched that off (a NOT VALID constraint, triggers disabled, a replica session):
    the check says which, and counts the rows pointing nowhere, as SQLite's foreign_key_check.
    """
    problems = []
    async with library.pool.acquire() as conn:
        keys = await conn.fetch(
            """SELECT c.conname, c.convalidated, child.relname AS child, parent.relname AS parent,
                      ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
                      ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                            JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS refers
               FROM pg_constraint c
               JOIN pg_class child ON child.oid = c.conrelid
               JOIN pg_class parent ON parent.oid = c.confrelid
               WHERE c.contype = 'f' AND c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
               ORDER BY child.relname, c.conname""",
            library.schema,
        )
        switched_off = {
            row[0]
            for row in await conn.fetch(
                """SELECT DISTINCT c.conname FROM pg_trigger t JOIN pg_constraint c ON c.oid = t.tgconstraint
                   WHERE t.tgenabled = 'D' AND c.contype = 'f' AND c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)""",
                library.schema,
            )
        }
        for key in keys:
            if not key["convalidated"]:
                problems.append(f"{key['child']}: foreign key {key['conname']} is not validated (NOT VALID)")
            if key["conname"] in switched_off:
                problems.append(f"{key['child']}: foreign key {key['conname']} is switched off (triggers disabled)")
            joined = " AND ".join(f'p."{r}" = c."{col}"' for col, r in zip(key["columns"], key["refers"]))
            present = " AND ".join(f'c."{col}" IS NOT NULL' for col in key["columns"])
            dangling = await conn.fetchval(
                f'SELECT count(*) FROM "{key["child"]}" c WHERE {present} '
                f'AND NOT EXISTS (SELECT 1 FROM "{key["parent"]}" p WHERE {joined})'
            )
            if dangling:
                problems.append(f"{key['child']}: {dangling} rows point to a missing {key['parent']} row")
    return problems
