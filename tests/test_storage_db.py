"""storage.db on real SQLite files and on PostgreSQL: settings, migrations, integrity checks, backups, reads."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
import uuid

import aiosqlite
import asyncpg
import pytest

from storage import db, errors, postgres
from storage.models import Digest, Paper
from storage.papers import get_paper, ingest_digest, search
from storage.postgres import with_schema
from tests.backends import empty_postgres_library, sqlite_only


def a_digest(day: dt.date = dt.date(2025, 2, 20), count: int = 3) -> Digest:
    return Digest(
        date=day,
        papers=[
            Paper(
                arxiv_id=f"2502.{i:05d}",
                title=f"Paper number {i} on diffusion",
                url=f"https://arxiv.org/abs/2502.{i:05d}",
                authors=["Ada Lovelace"],
                summary="A summary.",
                tags=["Diffusion"],
            )
            for i in range(count)
        ],
    )


async def pragma(conn: aiosqlite.Connection, name: str):
    async with conn.execute(f"PRAGMA {name}") as cursor:
        return (await cursor.fetchone())[0]


@sqlite_only("PRAGMAs and the row factory are settings of a SQLite connection")
async def test_connect_sets_pragmas_and_row_factory(conn):
    assert await pragma(conn, "journal_mode") == "wal"
    assert await pragma(conn, "foreign_keys") == 1
    assert await pragma(conn, "synchronous") == 1  # NORMAL
    assert await pragma(conn, "busy_timeout") == db.BUSY_TIMEOUT_MS
    assert conn.row_factory is sqlite3.Row


async def test_connect_migrates_to_schema_version(conn):
    assert db.SCHEMA_VERSION == len(db.MIGRATIONS) >= 1
    assert await db.user_version(conn) == db.SCHEMA_VERSION


async def test_migrate_is_rerunnable(conn):
    assert await db.migrate(conn) == db.SCHEMA_VERSION
    assert await db.migrate(conn) == db.SCHEMA_VERSION


async def test_reopening_keeps_data(tmp_path):
    first = await db.connect(tmp_path / "library.db")
    await ingest_digest(first, a_digest(), source="s", origin="o", sha256="h")
    await first.close()
    second = await db.connect(tmp_path / "library.db")
    try:
        assert (await get_paper(second, "2502.00001")).title == "Paper number 1 on diffusion"
    finally:
        await second.close()


async def test_newer_database_is_a_clear_error(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as plain:
        plain.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    with pytest.raises(db.SchemaTooNewError, match="Upgrade Paperbot"):
        await db.connect(path)


async def test_failed_migration_rolls_back_with_its_version(tmp_path, monkeypatch):
    broken = [*db.MIGRATIONS, (db.SCHEMA_VERSION + 1, "999_broken.sql", "CREATE TABLE half (x); SELECT nope();")]
    monkeypatch.setattr(db, "MIGRATIONS", broken)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(broken))
    with pytest.raises(RuntimeError, match="999_broken.sql"):
        await db.connect(tmp_path / "library.db")
    monkeypatch.undo()
    conn = await db.connect(tmp_path / "library.db")
    try:
        assert await pragma(conn, "user_version") == db.SCHEMA_VERSION
        async with conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'") as cursor:
            assert (await cursor.fetchone())[0] == 0
    finally:
        await conn.close()


def test_split_statements_keeps_triggers_whole():
    script = """
        CREATE TABLE a (x TEXT DEFAULT ';');
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            INSERT INTO a VALUES ('x;y'); DELETE FROM a WHERE x = ';';
        END;
        -- a comment; with a semicolon
    """
    statements = db.split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_split_statements_rejects_an_unterminated_statement():
    with pytest.raises(ValueError, match="unterminated"):
        db.split_statements("CREATE TABLE a (x); CREATE TABLE b (y)")


def test_migrations_are_packaged_resources_numbered_from_one():
    assert [version for version, _, _ in db.MIGRATIONS] == list(range(1, db.SCHEMA_VERSION + 1))
    assert db.MIGRATIONS[0][1] == "001_papers.sql"


async def test_integrity_check_ok_on_fresh_and_filled_library(conn):
    assert await db.integrity_check(conn) == []
    await ingest_digest(conn, a_digest(), source="s", origin="o", sha256="h")
    assert await db.integrity_check(conn) == []


async def test_integrity_check_reports_dangling_foreign_keys_and_stale_counts(conn):
    await ingest_digest(conn, a_digest(), source="s", origin="o", sha256="h")
    if db.dialect(conn) == "postgresql":  # superusers only: enforcement switched off for the table
        await conn.execute("ALTER TABLE digests DISABLE TRIGGER ALL")
    else:
        await conn.execute("PRAGMA foreign_keys = OFF")
    await conn.execute("DELETE FROM digests")
    await conn.execute("UPDATE tags SET paper_count = 99")
    problems = await db.integrity_check(conn)
    assert any("appearances" in problem for problem in problems)
    assert any("counts 99 papers" in problem for problem in problems)


async def test_integrity_check_leaves_no_transaction_open(tmp_path):
    await (await db.connect(tmp_path / "library.db")).close()
    async with aiosqlite.connect(tmp_path / "library.db") as legacy:  # implicit-transaction mode
        assert await db.integrity_check(legacy) == []
        assert not legacy.in_transaction


BACKUP_IS_SQLITES = "SQLite's online backup of its file; a PostgreSQL library is refused, naming pg_dump"


@sqlite_only(BACKUP_IS_SQLITES)
async def test_backup_copies_a_healthy_library(conn, tmp_path):
    await ingest_digest(conn, a_digest(count=50), source="s", origin="o", sha256="h")
    dest = tmp_path / "backups" / "copy.db"
    dest.parent.mkdir()
    await db.backup(conn, dest)
    assert not dest.with_name("copy.db.partial").exists()
    copy = await db.connect(dest)
    try:
        assert await db.integrity_check(copy) == []
        assert (await search(copy, "diffusion")).total == 50
    finally:
        await copy.close()


@sqlite_only(BACKUP_IS_SQLITES)
async def test_backup_while_another_connection_writes(conn, tmp_path):
    await ingest_digest(conn, a_digest(count=10), source="s", origin="o", sha256="h")
    writer = await db.connect(tmp_path / "library.db")
    try:
        await writer.execute("BEGIN IMMEDIATE")
        await writer.execute("UPDATE papers SET summary = 'in flight' WHERE arxiv_id = '2502.00001'")
        await db.backup(conn, tmp_path / "copy.db")  # a reader: not blocked by the open write
        await writer.execute("COMMIT")
    finally:
        await writer.close()
    copy = await db.connect(tmp_path / "copy.db")
    try:
        assert await db.integrity_check(copy) == []
        assert (await get_paper(copy, "2502.00001")).summary == "A summary."  # the committed state
    finally:
        await copy.close()


@sqlite_only(BACKUP_IS_SQLITES)
async def test_backup_overwrites_an_older_copy(conn, tmp_path):
    dest = tmp_path / "copy.db"
    await db.backup(conn, dest)
    await ingest_digest(conn, a_digest(), source="s", origin="o", sha256="h")
    await db.backup(conn, dest)
    copy = await db.connect(dest)
    try:
        assert await get_paper(copy, "2502.00000") is not None
    finally:
        await copy.close()


async def test_rebuild_search_index_restores_search(conn):
    await ingest_digest(conn, a_digest(), source="s", origin="o", sha256="h")
    if db.dialect(conn) == "postgresql":
        await conn.execute("UPDATE papers SET search_vector = '', title_vector = ''")
        await conn.execute("DELETE FROM search_words")
    else:
        await conn.execute("INSERT INTO papers_fts (papers_fts) VALUES ('delete-all')")
    assert (await search(conn, "diffusion")).total == 0
    await db.rebuild_search_index(conn)
    assert (await search(conn, "diffusion")).total == 3
    assert (await search(conn, "lovelace")).total == 3
    assert await db.integrity_check(conn) == []


async def test_concurrent_writers_on_one_connection_never_interleave(conn):
    """The bot shares one connection: an ingest (a transaction over many awaits) and a
    single-statement write from another coroutine must each stay whole."""
    import asyncio

    from storage import channels
    from storage.channels import DigestChannel

    row = DigestChannel(channel_id=1, guild_id=2, post_time=dt.time(9), timezone="UTC", tags=[], style="compact",
                        empty_day_note=False, set_up_by=None)
    await channels.save_channel(conn, row)

    async def record_errors() -> None:
        for n in range(50):
            await channels.record_error(conn, 1, f"error {n}")
            await asyncio.sleep(0)

    days = [dt.date(2025, 1, d) for d in range(1, 21)]
    await asyncio.gather(record_errors(), *(ingest_digest(conn, a_digest(day, 30), source="s", origin="o",
                                                           sha256="x") for day in days))
    assert not conn.in_transaction
    assert (await channels.get_channel(conn, 1)).last_error == "error 49"
    assert await db.integrity_check(conn) == []


# -- readers and budgets (issue #12: one member stalls everyone) ---------------------------------

ENDLESS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"


async def test_a_read_that_would_never_end_is_stopped_by_its_budget(conn):
    with db.budget(0.2), pytest.raises(db.QueryTooBroad, match="add a word"):
        await fetch_one(conn, ENDLESS)


async def test_an_exhausted_budget_refuses_before_reading(conn):
    with db.budget(0), pytest.raises(db.QueryTooBroad):
        await fetch_one(conn, "SELECT 1")


async def test_search_runs_within_the_query_budget(conn, monkeypatch):
    await ingest_digest(conn, a_digest(), source="s", origin="o", sha256="h")
    assert (await search(conn, "diffusion")).total == 3
    monkeypatch.setattr(db, "QUERY_BUDGET_SECONDS", 0)
    with pytest.raises(db.QueryTooBroad):
        await search(conn, "diffusion")


async def fetch_one(conn, sql: str):
    async with conn.execute(sql) as cursor:
        return (await cursor.fetchone())[0]


async def test_a_read_does_not_queue_behind_a_slow_read(conn):
    async def slow() -> None:
        with db.budget(60):
            await fetch_one(conn, ENDLESS)

    slow_read = asyncio.create_task(slow())
    await asyncio.sleep(0)  # the slow read holds its reader
    try:
        assert await asyncio.wait_for(fetch_one(conn, "SELECT count(*) FROM papers"), 30) == 0
        assert not slow_read.done()
    finally:
        slow_read.cancel()  # a cancelled read stops its statement too
        with pytest.raises(asyncio.CancelledError):
            await slow_read


async def test_reads_do_not_wait_for_the_writer_nor_see_its_open_transaction(conn):
    gate = threading.Event()
    if db.dialect(conn) == "sqlite":
        await conn.writer.create_function("wait_for_gate", 0, lambda: gate.wait(60))

    async def ingest_like() -> None:
        async with db.transaction(conn):
            await conn.execute("INSERT INTO tags (id, norm, name) VALUES (1, 'held', 'Held')")
            written.set()
            if db.dialect(conn) == "sqlite":
                await conn.execute("SELECT wait_for_gate()")  # the writer is busy until the gate opens
            else:  # its transaction stays open (and its write lock held) until the gate opens
                while not gate.is_set():
                    await asyncio.sleep(0.01)

    written = asyncio.Event()
    writing = asyncio.create_task(ingest_like())
    await written.wait()
    try:
        assert await asyncio.wait_for(fetch_one(conn, "SELECT count(*) FROM tags"), 30) == 0
        assert not writing.done()
    finally:
        gate.set()
        await writing
    assert await fetch_one(conn, "SELECT count(*) FROM tags WHERE norm = 'held'") == 1


async def test_reads_inside_a_transaction_see_its_own_writes(conn):
    async with db.transaction(conn):
        await conn.execute("INSERT INTO tags (id, norm, name) VALUES (1, 'mine', 'Mine')")
        assert await fetch_one(conn, "SELECT count(*) FROM tags WHERE norm = 'mine'") == 1
    assert await fetch_one(conn, "SELECT count(*) FROM tags WHERE norm = 'mine'") == 1


@sqlite_only("SQLite reads run on read-only connections of their own; PostgreSQL's pool serves both")
async def test_readers_are_read_only(conn):
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await conn._read("INSERT INTO tags (norm, name) VALUES ('x', 'x')", ())


async def test_one_members_reads_run_one_at_a_time_and_others_pass(conn):
    async def slow(member: int) -> None:
        db.reads_for(member)
        with db.budget(60):
            await fetch_one(conn, ENDLESS)

    async def quick(member: int | None) -> int:
        if member is not None:
            db.reads_for(member)
        return await fetch_one(conn, "SELECT 1")

    first = asyncio.create_task(slow(1))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(quick(1))  # the same member: waits for their slow read
    try:
        assert await asyncio.wait_for(quick(2), 30) == 1  # another member: answered at once
        assert await asyncio.wait_for(quick(None), 30) == 1
        assert not second.done() and not first.done()
    finally:
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert await asyncio.wait_for(second, 30) == 1


async def test_a_budget_counts_database_time_not_time_spent_waiting(conn):
    with db.budget(0.5):
        time.sleep(0.6)  # the event loop held by something else (a huge ingest, say)
        assert await fetch_one(conn, "SELECT 1") == 1


# -- PostgreSQL's own ways to fail: the server, the URL, the schema (issue #15) -------------------


@pytest.fixture
async def schema_url(postgres_url):
    """A URL naming a schema of its own in the test database, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield with_schema(postgres_url, schema)
    plain = await asyncpg.connect(postgres_url)
    try:
        await plain.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await plain.close()


@pytest.mark.postgres
async def test_backup_refuses_a_postgres_library_naming_pg_dump(tmp_path):
    async with empty_postgres_library() as library:
        with pytest.raises(errors.DatabaseError, match="pg_dump"):
            await db.backup(library, tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("url, says", [
    ("postgresql://postgres@127.0.0.1:1/test", "cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:1/test"),
    ("postgresql://postgres@127.0.0.1:5432/no_such_database_here", 'database "no_such_database_here" does not exist'),
    ("postgresql://postgres:secret@127.0.0.1:notaport/test", "check \\[database\\] url"),
])
async def test_an_unreachable_server_or_a_wrong_url_is_one_clear_error(url, says):
    with pytest.raises(errors.DatabaseError, match=says) as raised:
        await db.connect(url)
    assert "secret" not in str(raised.value)


@pytest.mark.postgres
async def test_a_newer_postgres_schema_is_a_clear_error(schema_url):
    library = await db.connect(schema_url)
    await library.write("UPDATE paperbot_schema SET version = ?", (db.SCHEMA_VERSION + 1,))
    await library.close()
    with pytest.raises(db.SchemaTooNewError, match="Upgrade Paperbot"):
        await db.connect(schema_url)


@pytest.mark.postgres
async def test_a_failed_postgres_migration_rolls_back_with_its_version(schema_url, monkeypatch):
    broken = [*postgres.MIGRATIONS, (db.SCHEMA_VERSION + 1, "999_broken.sql", "CREATE TABLE half (x int); SELECT nope();")]
    monkeypatch.setattr(postgres, "MIGRATIONS", broken)
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", len(broken))
    with pytest.raises(RuntimeError, match="999_broken.sql"):
        await db.connect(schema_url)
    monkeypatch.undo()
    library = await db.connect(schema_url)
    try:
        assert await db.user_version(library) == db.SCHEMA_VERSION  # the good ones stay applied
        assert await fetch_one(library, "SELECT to_regclass('half') IS NULL") is True
    finally:
        await library.close()


@pytest.mark.postgres
async def test_processes_migrating_one_postgres_schema_at_once_apply_each_migration_once(schema_url):
    libraries = await asyncio.gather(*(db.connect(schema_url) for _ in range(4)))
    try:
        assert {await db.user_version(library) for library in libraries} == {db.SCHEMA_VERSION}
        assert await db.integrity_check(libraries[0]) == []
    finally:
        for library in libraries:
            await library.close()


@pytest.mark.postgres
async def test_a_postgres_schema_holding_another_programs_tables_is_refused(schema_url, postgres_url):
    schema = schema_url.rsplit("search_path=", 1)[1]
    plain = await asyncpg.connect(postgres_url)
    try:
        await plain.execute(f'CREATE SCHEMA "{schema}"; CREATE TABLE "{schema}".invoices (id int)')
    finally:
        await plain.close()
    with pytest.raises(errors.DatabaseError, match="another program's tables \\(invoices\\)"):
        await db.connect(schema_url)


@pytest.mark.postgres
async def test_names_sort_bytewise_as_on_sqlite_whatever_the_databases_locale(conn, tmp_path) -> None:
    """A PostgreSQL database made with an English locale sorts 'alpha' before 'Zeta'; SQLite sorts
    bytewise ('Zeta' first). Sorted names (tag roles, tags, sources) follow SQLite's order on both."""
    from storage import channels
    from tests.backends import create_database, drop_database, with_database
    from tests.services import service_url

    url, name = service_url("postgres"), f"paperbot_icu_{uuid.uuid4().hex[:8]}"
    await create_database(url, name, "template0", "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    try:
        english = await db.connect(with_database(url, name))
        try:
            for library in (conn, english):
                for tag, role in (("alpha", 1), ("Zeta", 2), ("beta", 3)):
                    await channels.set_tag_role(library, 7, tag, role)
            assert list(await channels.tag_roles(english, 7)) == list(await channels.tag_roles(conn, 7)) == [
                "zeta", "alpha", "beta"]
        finally:
            await english.close()
    finally:
        await drop_database(url, name)
