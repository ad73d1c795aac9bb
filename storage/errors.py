"""What went wrong with the library file, in words an admin can act on.

SQLite reports every problem with a file as one of a few terse codes ("unable to open
database file" covers a missing folder and a permission problem alike). `translated`
turns them into one `DatabaseError` subclass per cause, each a single line saying what
is wrong and what to do, so the command line and the bot can print it and exit instead
of showing a chain of tracebacks.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"

# Primary SQLite result codes (the low byte of an extended code).
_READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB, _PERM, _BUSY = 8, 10, 11, 13, 14, 26, 3, 5


class DatabaseError(Exception):
    """The library cannot be used; the message is one line naming the file and the fix."""


class MissingFolder(DatabaseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the folder {path.parent} does not exist, so {path} cannot be created: "
            f"create it first (mkdir -p {path.parent}), or choose another path"
        )


class NotALibrary(DatabaseError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path} is not a Paperbot library ({detail}): check [database] path")


class CorruptDatabase(DatabaseError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"{path} is damaged ({detail}): restore a backup, or move it aside to start a new library"
        )


class ReadOnlyDatabase(DatabaseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} cannot be written by this user: give it and its folder write permission "
            f"(the folder holds the -wal and -shm files)"
        )


class DiskFull(DatabaseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the disk holding {path} is full: free some space and try again (nothing was half-written)"
        )


class SchemaTooNewError(DatabaseError):
    """The database was written by a newer Paperbot; opening it could damage it."""


class BackupNotHere(DatabaseError):
    """`backup` copies SQLite files; PostgreSQL has its own tool for a consistent copy of a live database."""

    def __init__(self, url: str, schema: str) -> None:
        from storage.postgres import redacted

        super().__init__(
            f"the library at {redacted(url)} is on PostgreSQL, which Paperbot does not copy itself: back it up "
            f"with pg_dump (pg_dump --schema={schema} --format=custom --file=paperbot.dump 'DATABASE URL'), "
            f"and restore it with pg_restore"
        )


class CannotOpen(DatabaseError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"cannot use the library {path}: {detail}")


def check_folder(path: Path) -> None:
    """SQLite says only "unable to open database file" for a missing folder; say which folder."""
    if str(path) != ":memory:" and not path.parent.is_dir():
        raise MissingFolder(path)


def _has_sqlite_header(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def classify(path: Path, error: BaseException) -> DatabaseError | None:
    """The DatabaseError that explains `error` (or its causes), None if it is not about the file."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DatabaseError):
            return seen
        if isinstance(seen, sqlite3.Error):
            return _from_sqlite(path, seen)
        if isinstance(seen, OSError) and seen.errno is not None:
            return _from_os(path, seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _from_sqlite(path: Path, error: sqlite3.Error) -> DatabaseError | None:
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    detail = str(error)
    if code == _FULL or "disk is full" in detail:
        return DiskFull(path)
    if code in (_CORRUPT, _NOTADB):
        return CorruptDatabase(path, detail) if _has_sqlite_header(path) else NotALibrary(path, detail)
    if code in (_READONLY, _PERM):
        return ReadOnlyDatabase(path)
    if code == _CANTOPEN:
        if path.is_dir():
            return NotALibrary(path, "it is a folder")
        if not path.parent.is_dir():
            return MissingFolder(path)
        if (path.exists() and not os.access(path, os.R_OK | os.W_OK)) or not os.access(path.parent, os.W_OK):
            return ReadOnlyDatabase(path)
    if code == _IOERR:
        return CannotOpen(path, f"{detail}: check the disk, its free space (df -h) and any file size limit")
    if code == _CANTOPEN:
        return CannotOpen(path, detail)
    if code == _BUSY:
        return CannotOpen(path, f"{detail}: another process held its write lock too long; try again")
    return None  # not about the file (a bug in a migration, say): the original error says more


def _from_os(path: Path, error: OSError) -> DatabaseError:
    if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return DiskFull(path)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ReadOnlyDatabase(path)
    if error.errno == errno.ENOENT and not path.parent.is_dir():
        return MissingFolder(path)
    return CannotOpen(path, error.strerror or str(error))


@contextmanager
def translated(path: str | Path) -> Iterator[None]:
    """Re-raise SQLite and file-system errors about `path` as the DatabaseError that explains them."""
    path = Path(path)
    try:
        yield
    except DatabaseError:
        raise
    except (sqlite3.Error, OSError, RuntimeError) as error:
        explained = classify(path, error)
        if explained is None:
            raise
        raise explained from error
