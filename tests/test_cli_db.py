"""`paperbot db migrate|check|backup` (and every command that opens the library) on a broken library:
one line that says what is wrong and what to do, exit status 1, never a traceback.

Most cases run in-process; a read-only file needs a user other than root (root may write
anything), and a full disk a real full file system (a tiny tmpfs in a private mount
namespace), so those two run the command line as a child process and are skipped, with
the reason, where the machine cannot provide that.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.__main__ import app
from storage import db

REPO = Path(__file__).parent.parent
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(autouse=True)
def no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no ./config.toml
    for name in [n for n in os.environ if n.startswith("PAPERBOT_")]:
        monkeypatch.delenv(name)
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "paperbot", False)]:
        root.removeHandler(handler)


def make_library(path: Path) -> Path:
    async def create() -> None:
        conn = await db.connect(path)
        await conn.close()

    asyncio.run(create())
    return path


def broken(kind: str, folder: Path) -> Path:
    """A library path with the named problem."""
    path = folder / "library.db"
    if kind == "missing folder":
        return folder / "no-such-folder" / "library.db"
    if kind == "not a database":
        path.write_text("[database]\npath = 'oops, this is a config file'\n")
    elif kind == "another program's database":
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    elif kind == "corrupt":
        make_library(path)
        with path.open("r+b") as file:  # keep the header, destroy the schema page
            file.seek(100)
            file.write(b"\xff" * 3000)
    elif kind == "newer schema":
        make_library(path)
        with sqlite3.connect(path) as newer:
            newer.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    return path


EXPECTED = {
    "missing folder": "no-such-folder does not exist",
    "not a database": "is not a Paperbot library",
    "another program's database": "is not a Paperbot library",
    "corrupt": "is damaged",
    "newer schema": f"schema version {db.SCHEMA_VERSION + 1}",
}


def assert_one_line_error(stderr: str, fragment: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert fragment in lines[0], lines[0]


def invoke(*args: str, database: Path):
    result = CliRunner().invoke(app, list(args), env={"PAPERBOT_DATABASE__PATH": str(database)})
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("kind", list(EXPECTED))
@pytest.mark.parametrize("command", [["db", "migrate"], ["db", "backup", "copy.db"], ["search", "video"]])
def test_a_broken_library_is_one_line_and_exit_1(kind: str, command: list[str], tmp_path: Path) -> None:
    result = invoke(*command, database=broken(kind, tmp_path))
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, EXPECTED[kind])
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_db_check_reports_each_problem_in_one_line(kind: str, tmp_path: Path) -> None:
    result = invoke("db", "check", database=broken(kind, tmp_path))
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, EXPECTED[kind])


def test_db_check_lists_damage_inside_a_library_that_opens(tmp_path: Path) -> None:
    path = make_library(tmp_path / "library.db")
    with sqlite3.connect(path) as conn:  # a row whose tag does not exist: a broken foreign key
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("INSERT INTO paper_tags (paper_id, tag_id, source) VALUES (424242, 434343, 'x')")
    result = invoke("db", "check", database=path)
    assert result.exit_code == 1
    assert "damaged: paper_tags row" in result.stderr and "Traceback" not in result.stderr


def test_db_migrate_creates_and_reports_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    result = invoke("db", "migrate", database=path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{path}: schema version {db.SCHEMA_VERSION} (current)"
    again = invoke("db", "migrate", database=path)
    assert again.exit_code == 0 and f"schema version {db.SCHEMA_VERSION}" in again.stdout


def test_db_check_says_ok_for_a_healthy_library(tmp_path: Path) -> None:
    result = invoke("db", "check", database=make_library(tmp_path / "library.db"))
    assert result.exit_code == 0 and result.stdout.strip().endswith(": ok")


def test_backup_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    path = make_library(tmp_path / "library.db")
    result = invoke("db", "backup", str(tmp_path / "nope" / "copy.db"), database=path)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"{tmp_path / 'nope'} does not exist")


def test_backup_never_overwrites(tmp_path: Path) -> None:
    path = make_library(tmp_path / "library.db")
    (tmp_path / "copy.db").write_text("keep me")
    result = invoke("db", "backup", str(tmp_path / "copy.db"), database=path)
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert (tmp_path / "copy.db").read_text() == "keep me"


def test_backup_makes_a_library_that_checks_ok(tmp_path: Path) -> None:
    path = make_library(tmp_path / "library.db")
    result = invoke("db", "backup", str(tmp_path / "copy.db"), database=path)
    assert result.exit_code == 0, result.output
    assert invoke("db", "check", database=tmp_path / "copy.db").exit_code == 0


# --- read-only files and full disks: a child process -------------------------------------------


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="paperbot-cli-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def paperbot(*args: str, database: Path, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")},
           "PAPERBOT_DATABASE__PATH": str(database)}
    return subprocess.run([*prefix, sys.executable, "-m", "bot", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def as_another_user() -> list[str]:
    """Root may write a read-only file, so run as nobody; an ordinary user is refused as it is."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot run the command as a user a read-only file refuses")
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import bot"], cwd=REPO, capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run this checkout's Python: {probe.stderr.decode()[-200:]}")
    return NOBODY


@pytest.mark.parametrize("command", [["db", "migrate"], ["db", "check"], ["db", "backup"]])
def test_a_read_only_library_is_one_line_and_exit_1(command: list[str], shared_folder: Path) -> None:
    prefix = as_another_user()
    path = make_library(shared_folder / "library.db")
    path.chmod(0o444)
    args = [*command, str(shared_folder / "copy.db")] if command[-1] == "backup" else command
    result = paperbot(*args, database=path, prefix=prefix)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_line_error(result.stderr, "cannot be written by this user")


def test_a_backup_into_a_read_only_folder_is_one_line_and_exit_1(shared_folder: Path) -> None:
    prefix = as_another_user()
    (shared_folder / "live").mkdir(mode=0o777)
    (shared_folder / "live").chmod(0o777)
    path = make_library(shared_folder / "live" / "library.db")
    path.chmod(0o666)
    locked = shared_folder / "backups"
    locked.mkdir(mode=0o755)
    result = paperbot("db", "backup", str(locked / "copy.db"), database=path, prefix=prefix)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_line_error(result.stderr, "cannot be written by this user")


def tiny_disk(folder: Path, size: str = "120k") -> list[str]:
    """Run the command with a `size` tmpfs mounted on `folder`, in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: cannot mount a small file system to fill")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs {folder}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs in a user namespace here: {probe.stderr.strip()[-200:]}")
    return ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size} tmpfs {folder} && exec "$@"', "sh"]


@pytest.mark.parametrize("command", [["db", "migrate"], ["db", "check"]])
def test_a_full_disk_is_one_line_and_exit_1(command: list[str], shared_folder: Path) -> None:
    disk = shared_folder / "disk"
    disk.mkdir()
    result = paperbot(*command, database=disk / "library.db", prefix=tiny_disk(disk))
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_line_error(result.stderr, "is full: free some space")


def test_a_backup_onto_a_full_disk_is_one_line_and_exit_1(shared_folder: Path) -> None:
    path = make_library(shared_folder / "library.db")
    disk = shared_folder / "disk"
    disk.mkdir()
    result = paperbot("db", "backup", str(disk / "copy.db"), database=path, prefix=tiny_disk(disk))
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_line_error(result.stderr, "is full: free some space")


# --- paperbot db copy: a library into an empty one on the other backend --------------------------


async def _seed_everything_but_papers(path: Path) -> None:
    """Channels (one a forum with a roundup), a tag role, ledger items (sent, skipped, and one whose
    channel was removed, so the id counter is ahead of the rows), votes and subscriptions."""
    import datetime as dt

    from storage import channels, outbox, subscriptions, votes
    from storage.channels import DigestChannel

    conn = await db.connect(path)
    try:
        day = dt.date(2025, 3, 21)
        for n, style in enumerate(["compact", "thread", "forum"]):
            await channels.save_channel(conn, DigestChannel(
                channel_id=1000 + n, guild_id=50 + n, post_time=dt.time(9, 30), timezone="Europe/Paris",
                tags=["Computer Vision"] if n else [], style=style, set_up_by=7))
        await channels.set_roundup(conn, 1002, 4, dt.time(17, 0))
        await channels.set_tag_role(conn, 51, "Computer Vision", 888)
        sent = await outbox.plan(conn, "digest", 1000, day, [({"content": "héllo ✓"}, False), ({"content": "b"}, True)])
        await outbox.mark_tried(conn, sent.id, 0, None)
        await outbox.mark_sent(conn, sent.id, 0, 123456789012345678)
        await outbox.skip(conn, "digest", 1001, day, "nothing to post")
        await outbox.plan(conn, "digest", 1002, day, [({"content": "gone"}, False)])
        await channels.remove_channel(conn, 1002)  # its item goes; its id is never handed out again
        for user in (7, 8):
            await subscriptions.add_subscription(conn, user, "tag", "Computer Vision", guild_id=50, max_per_user=10)
        await subscriptions.add_subscription(conn, 8, "keyword", "diffusion", guild_id=None, max_per_user=10)
        await outbox.plan(conn, "dm", 8, day, [({"content": "your papers"}, False)])
        for user, arxiv_id in [(7, "2502.13923"), (8, "2502.13923")]:
            await votes.toggle_vote(conn, arxiv_id, user, guild_id=50)
    finally:
        await conn.close()


def sqlite_columns(path: Path) -> dict[str, list[str]]:
    """The columns of every ordinary table (not the search index's tables)."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        tables = [row["name"] for row in conn.execute("PRAGMA table_list")
                  if row["type"] == "table" and row["schema"] == "main" and not row["name"].startswith("sqlite_")]
        return {t: [c["name"] for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


def sqlite_rows(path: Path) -> dict[str, list]:
    """Every row of every ordinary table, as sorted dicts."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return {t: sorted((dict(r) for r in conn.execute(f"SELECT * FROM {t}")), key=repr)
                for t in sqlite_columns(path)}


def sqlite_sequences(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))


def postgres_rows(url: str, tables: dict[str, list[str]]) -> dict[str, list]:
    """Every row of `tables`, only their named columns (PostgreSQL's search columns are its own)."""

    async def read() -> dict[str, list]:
        import asyncpg

        from storage.postgres import schema_of

        conn = await asyncpg.connect(url.split("?")[0], server_settings={"search_path": schema_of(url)})
        try:
            return {t: sorted((dict(r) for r in await conn.fetch(f"SELECT {', '.join(columns)} FROM {t}")), key=repr)
                    for t, columns in tables.items()}
        finally:
            await conn.close()

    return asyncio.run(read())


def postgres_next_id(url: str, table: str) -> int:
    """The id the table's identity sequence hands out next (read without taking it)."""

    async def read() -> int:
        import asyncpg

        from storage.postgres import schema_of

        conn = await asyncpg.connect(url.split("?")[0], server_settings={"search_path": schema_of(url)})
        try:
            sequence = await conn.fetchval(f"SELECT pg_get_serial_sequence('{table}', 'id')")
            row = await conn.fetchrow(f"SELECT last_value, is_called FROM {sequence}")
            return row["last_value"] + 1 if row["is_called"] else row["last_value"]
        finally:
            await conn.close()

    return asyncio.run(read())


async def _search_ids(path: Path, query: str) -> list[str]:
    from storage import papers

    conn = await db.connect(path)
    try:
        return [hit.paper.arxiv_id for hit in (await papers.search(conn, query, limit=20)).hits]
    finally:
        await conn.close()


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A URL naming a schema of its own in the test database, dropped afterwards."""
    import uuid

    from storage.postgres import drop_schema, with_schema

    schema = f"copy_{uuid.uuid4().hex[:12]}"
    yield with_schema(postgres_url, schema)
    asyncio.run(drop_schema(postgres_url, schema))


def copy_command(source: str, destination: str):
    return invoke("db", "copy", source, destination, database=Path("unused.db"))


@pytest.mark.postgres
def test_copy_sqlite_to_postgresql_and_back_keeps_every_row_id_and_counter(library_path: Path, tmp_path: Path,
                                                                          postgres_schema: str) -> None:
    asyncio.run(_seed_everything_but_papers(library_path))
    original = sqlite_rows(library_path)
    assert all(original[t] for t in ("papers", "digest_channels", "outbox", "outbox_messages", "votes",
                                     "subscriptions", "subscribers", "tag_roles", "channel_history"))

    there = copy_command(f"sqlite:///{library_path}", postgres_schema)
    assert there.exit_code == 0, there.output
    assert f"{len(original['papers']):,} papers, 2 digest channels, 2 subscribers" in there.stdout
    assert "counts checked" in there.stdout
    assert postgres_rows(postgres_schema, sqlite_columns(library_path)) == original
    # The ledger's id counter continues after the removed channel's item, as SQLite's would.
    assert postgres_next_id(postgres_schema, "outbox") == sqlite_sequences(library_path)["outbox"] + 1

    back = tmp_path / "back.db"
    again = copy_command(postgres_schema, f"sqlite:///{back}")
    assert again.exit_code == 0, again.output
    assert sqlite_rows(back) == original
    assert sqlite_sequences(back) == sqlite_sequences(library_path)
    for query in ("diffusion", '"large language models"', "generat*"):  # the search index was filled
        assert asyncio.run(_search_ids(back, query)) == asyncio.run(_search_ids(library_path, query))
    assert invoke("db", "check", database=back).exit_code == 0


def test_copy_between_two_sqlite_files_keeps_every_row(library_path: Path, tmp_path: Path) -> None:
    """The same copy without PostgreSQL, so it is exercised on every machine."""
    asyncio.run(_seed_everything_but_papers(library_path))
    result = copy_command(str(library_path), str(tmp_path / "copy.db"))
    assert result.exit_code == 0, result.output
    assert sqlite_rows(tmp_path / "copy.db") == sqlite_rows(library_path)
    assert sqlite_sequences(tmp_path / "copy.db") == sqlite_sequences(library_path)
    assert asyncio.run(_search_ids(tmp_path / "copy.db", "diffusion")) == asyncio.run(_search_ids(library_path, "diffusion"))


@pytest.mark.postgres
def test_copy_refuses_a_destination_that_holds_a_library(library_path: Path, postgres_schema: str) -> None:
    assert copy_command(str(library_path), postgres_schema).exit_code == 0
    before = postgres_rows(postgres_schema, {"papers": ["id", "arxiv_id"], "tags": ["id", "norm"]})
    result = copy_command(str(library_path), postgres_schema)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "already holds a library")
    assert f"{len(before['papers']):,} papers" in result.stderr
    assert "postgres@127.0.0.1" in result.stderr or "***" in result.stderr or "@" not in postgres_schema
    assert postgres_rows(postgres_schema, {"papers": ["id", "arxiv_id"], "tags": ["id", "norm"]}) == before


def test_copy_refuses_a_sqlite_destination_that_holds_a_library(library_path: Path, tmp_path: Path) -> None:
    other = make_library(tmp_path / "other.db")
    asyncio.run(_seed_everything_but_papers(other))  # channels and subscribers, no papers
    before = sqlite_rows(other)
    result = copy_command(str(library_path), str(other))
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "already holds a library (2 digest channels, 2 subscribers")
    assert sqlite_rows(other) == before


def test_copy_refuses_to_copy_a_library_onto_itself(library_path: Path) -> None:
    result = copy_command(str(library_path), f"sqlite:///{library_path}")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "is both the source and the destination")


@pytest.mark.postgres
def test_a_copy_that_fails_midway_leaves_the_destination_empty(library_path: Path, postgres_schema: str) -> None:
    """A row PostgreSQL refuses (TEXT cannot hold NUL) in a table copied after the papers: the whole
    copy is undone, so the destination never looks like a complete library."""
    asyncio.run(_seed_everything_but_papers(library_path))
    with sqlite3.connect(library_path) as conn:
        conn.execute("UPDATE votes SET voted_at = ? WHERE user_id = 8", ("bad\x00time",))
    result = copy_command(str(library_path), postgres_schema)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]  # after the tables' progress lines
    assert "refused a row of votes" in error and "nothing was copied" in error
    emptied = postgres_rows(postgres_schema, sqlite_columns(library_path))
    assert {table: len(rows) for table, rows in emptied.items() if rows} == {}
    # ... and a corrected source then copies into it.
    with sqlite3.connect(library_path) as conn:
        conn.execute("UPDATE votes SET voted_at = '2025-03-21T10:00:00+00:00' WHERE user_id = 8")
    assert copy_command(str(library_path), postgres_schema).exit_code == 0
