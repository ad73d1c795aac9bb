"""Several processes on one library file: a write waits its turn, it does not fail at once.

SQLite waits (busy_timeout) for another process's write transaction, except when the waiting
connection is itself inside a read: then it answers "database is locked" at once, since
waiting could deadlock. Paperbot's coroutines share one connection, and a SELECT is open
between its execute and its fetch, when another coroutine may start a write. Alone, nobody
else writes, so this never showed; with a second process (a cluster, or `paperbot ingest`
while the bot runs) writes failed at random.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage import db


async def test_a_write_waits_for_another_processs_transaction_while_a_read_is_open(tmp_path: Path) -> None:
    ours, theirs = await db.connect(tmp_path / "library.db"), await db.connect(tmp_path / "library.db")
    try:
        await ours.execute("CREATE TABLE t (x)")
        await db.write(ours, "INSERT INTO t VALUES (0)")
        their_transaction = asyncio.Event()

        async def other_process() -> None:
            async with db.transaction(theirs):
                await theirs.execute("INSERT INTO t VALUES (1)")
                their_transaction.set()
                await asyncio.sleep(0.3)

        async def a_read() -> None:
            await their_transaction.wait()
            async with ours.execute("SELECT x FROM t") as cursor:
                await asyncio.sleep(0.2)  # another coroutine's turn while the SELECT is open
                await cursor.fetchall()

        async def a_transaction() -> None:
            await their_transaction.wait()
            await asyncio.sleep(0.05)
            async with db.transaction(ours):
                await ours.execute("INSERT INTO t VALUES (2)")

        async def a_write() -> None:
            await their_transaction.wait()
            await asyncio.sleep(0.05)
            await db.write(ours, "INSERT INTO t VALUES (3)")

        await asyncio.gather(other_process(), a_read(), a_transaction(), a_write())
        async with ours.execute("SELECT x FROM t ORDER BY x") as cursor:
            assert [row[0] for row in await cursor.fetchall()] == [0, 1, 2, 3]
    finally:
        await ours.close()
        await theirs.close()
