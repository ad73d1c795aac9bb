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
