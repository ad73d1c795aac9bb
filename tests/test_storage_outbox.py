"""The delivery ledger (`storage.outbox`) on each backend: channel digests, roundups, DMs, and who may send them."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import subprocess
import sys

import asyncpg
import pytest

from storage import channels, db, outbox
from storage import subscriptions as subs
from storage.channels import DigestChannel
from tests.backends import empty_postgres_library

DAY = dt.date(2025, 2, 20)
GUILD = 900
#: What each backend raises for a row a constraint refuses.
INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


def a_channel(channel_id: int = 100, **settings) -> DigestChannel:
    values = dict(channel_id=channel_id, guild_id=GUILD, post_time=dt.time(9, 0), timezone="Europe/Paris")
    return DigestChannel(**(values | settings))


def payloads(count: int, *, thread: bool = False) -> list[tuple[dict, bool]]:
    return [({"v": 1, "content": f"message {i}", "embeds": [], "allowed_mentions": {"parse": []}}, thread and i > 0)
            for i in range(count)]


@pytest.fixture
async def channel(conn) -> DigestChannel:
    row = a_channel()
    await channels.save_channel(conn, row)
    return row


# ----- planning ------------------------------------------------------------------------------


async def test_plan_stores_messages_in_order_with_unique_short_nonces(conn, channel):
    delivery = await outbox.plan(conn, "digest", 100, DAY, payloads(3, thread=True), late=True)
    assert (delivery.target_id, delivery.day, delivery.late, delivery.status) == (100, DAY, True, "planned")
    assert [m.position for m in delivery.messages] == [0, 1, 2]
    assert [m.payload["content"] for m in delivery.messages] == ["message 0", "message 1", "message 2"]
    assert [m.in_thread for m in delivery.messages] == [False, True, True]
    assert all(m.message_id is None for m in delivery.messages)
    nonces = [m.nonce for m in delivery.messages]
    assert len(set(nonces)) == 3 and all(0 < len(n) <= 25 for n in nonces)
    assert await outbox.get(conn, "digest", 100, DAY) == delivery


async def test_planning_again_replays_the_stored_payloads(conn, channel):
    first = await outbox.plan(conn, "digest", 100, DAY, payloads(2), late=False)
    rerendered = [({"v": 1, "content": "something else", "embeds": []}, False)] * 5
    again = await outbox.plan(conn, "digest", 100, DAY, rerendered, late=True)
    assert again == first


async def test_concurrent_plans_create_one_delivery(conn, channel):
    plans = await asyncio.gather(*(outbox.plan(conn, "digest", 100, DAY, payloads(i + 1), late=False)
                                   for i in range(5)))
    assert len({p.id for p in plans}) == 1 and all(p == plans[0] for p in plans)
    assert not conn.in_transaction


async def test_a_failed_plan_leaves_nothing_and_no_open_transaction(conn, channel):
    with pytest.raises(TypeError):  # a payload that is not JSON
        await outbox.plan(conn, "digest", 100, DAY, [({"v": 1, "content": object()}, False)], late=False)
    assert not conn.in_transaction
    assert await outbox.get(conn, "digest", 100, DAY) is None


async def test_a_delivery_needs_its_channel(conn):
    with pytest.raises(INTEGRITY_ERRORS):
        await outbox.plan(conn, "digest", 12345, DAY, payloads(1), late=False)
    assert not conn.in_transaction


async def test_nonces_are_not_reused_after_a_channel_is_removed(conn, channel):
    old = await outbox.plan(conn, "digest", 100, DAY, payloads(2), late=False)
    await channels.remove_channel(conn, 100)
    await channels.save_channel(conn, channel)
    new = await outbox.plan(conn, "digest", 100, DAY, payloads(2), late=False)
    assert {m.nonce for m in old.messages}.isdisjoint(m.nonce for m in new.messages)


# ----- sending and finishing -------------------------------------------------------------------


async def test_mark_sent_records_accepted_messages_and_keeps_the_first_id(conn, channel):
    delivery = await outbox.plan(conn, "digest", 100, DAY, payloads(3), late=False)
    await outbox.mark_sent(conn, delivery.id, 0, 5000)
    await outbox.mark_sent(conn, delivery.id, 0, 6000)
    assert await outbox.finish(conn, delivery.id) is False  # two are still unsent
    await outbox.mark_sent(conn, delivery.id, 1, 5001)
    stored = await outbox.get(conn, "digest", 100, DAY)
    assert [m.message_id for m in stored.messages] == [5000, 5001, None]
    assert stored.status == "planned"


async def test_finish_and_thread(conn, channel):
    delivery = await outbox.plan(conn, "digest", 100, DAY, payloads(2, thread=True), late=False)
    await outbox.set_thread(conn, delivery.id, 777)
    for message in delivery.messages:
        await outbox.mark_sent(conn, delivery.id, message.position, 1000 + message.position)
    assert await outbox.finish(conn, delivery.id) is True
    assert await outbox.finish(conn, delivery.id) is False
    done = await outbox.get(conn, "digest", 100, DAY)
    assert (done.status, done.thread_id) == ("done", 777)
    assert await outbox.last_done(conn, "digest", 100) == DAY


async def test_unfinished_lists_pending_deliveries_oldest_first(conn, channel):
    await channels.save_channel(conn, a_channel(200))
    days = [DAY + dt.timedelta(days=n) for n in range(3)]
    late_plan = await outbox.plan(conn, "digest", 200, days[2], payloads(1), late=False)
    await outbox.plan(conn, "digest", 100, days[1], payloads(2), late=True)
    done = await outbox.plan(conn, "digest", 100, days[0], payloads(1), late=False)
    await outbox.mark_sent(conn, done.id, 0, 1)
    await outbox.finish(conn, done.id)
    await outbox.skip(conn, "digest", 200, days[0], "no papers")

    unfinished = await outbox.unfinished(conn, "digest")
    assert [(d.target_id, d.day) for d in unfinished] == [(100, days[1]), (200, days[2])]
    assert unfinished[0].late and len(unfinished[0].messages) == 2
    assert unfinished[1] == late_plan


# ----- skipped days and history ------------------------------------------------------------


async def test_skip_day_is_idempotent_and_never_undoes_a_delivery(conn, channel):
    await outbox.skip(conn, "digest", 100, DAY, "no papers")
    await outbox.skip(conn, "digest", 100, DAY, "something else")
    skipped = await outbox.get(conn, "digest", 100, DAY)
    assert (skipped.status, skipped.reason, skipped.messages) == ("skipped", "no papers", [])
    assert await outbox.plan(conn, "digest", 100, DAY, payloads(2), late=False) == skipped

    next_day = DAY + dt.timedelta(days=1)
    delivery = await outbox.plan(conn, "digest", 100, next_day, payloads(1), late=False)
    await outbox.mark_sent(conn, delivery.id, 0, 1)
    await outbox.finish(conn, delivery.id)
    await outbox.skip(conn, "digest", 100, next_day, "no papers")
    assert (await outbox.get(conn, "digest", 100, next_day)).status == "done"


async def test_skip_day_abandons_a_pending_delivery(conn, channel):
    await outbox.plan(conn, "digest", 100, DAY, payloads(3, thread=True), late=False)
    await outbox.skip(conn, "digest", 100, DAY, "the digest's thread was deleted")
    abandoned = await outbox.get(conn, "digest", 100, DAY)
    assert (abandoned.status, abandoned.reason) == ("skipped", "the digest's thread was deleted")
    assert await outbox.unfinished(conn, "digest") == []


async def test_delivered_days_counts_delivered_and_skipped_from_since(conn, channel):
    days = [DAY + dt.timedelta(days=n) for n in range(4)]
    for day in (days[0], days[1]):
        delivery = await outbox.plan(conn, "digest", 100, day, payloads(1), late=False)
        await outbox.mark_sent(conn, delivery.id, 0, day.toordinal())
        await outbox.finish(conn, delivery.id)
    await outbox.skip(conn, "digest", 100, days[2], "no papers")
    await outbox.plan(conn, "digest", 100, days[3], payloads(1), late=False)  # still pending

    assert await outbox.periods(conn, "digest", 100, days[1], ("done", "skipped")) == {days[1], days[2]}
    assert await outbox.periods(conn, "digest", 200, days[0], ("done", "skipped")) == set()
    assert await outbox.last_done(conn, "digest", 100) == days[1]
    assert await outbox.last_done(conn, "digest", 200) is None


async def test_removing_a_channel_removes_its_deliveries_and_messages(conn, channel):
    delivery = await outbox.plan(conn, "digest", 100, DAY, payloads(3), late=False)
    await outbox.skip(conn, "digest", 100, DAY + dt.timedelta(days=1), "no papers")
    await channels.remove_channel(conn, 100)
    assert await outbox.get(conn, "digest", 100, DAY) is None
    async with conn.execute("SELECT count(*) FROM outbox_messages WHERE item_id = ?", (delivery.id,)) as cur:
        assert (await cur.fetchone())[0] == 0
    async with conn.execute("SELECT count(*) FROM outbox") as cur:
        assert (await cur.fetchone())[0] == 0
    assert await db.integrity_check(conn) == []


# ----- one ledger for every kind -------------------------------------------------------------------


async def test_dm_items_plan_once_record_sends_and_go_with_the_subscriber(conn) -> None:
    await subs.add_subscription(conn, 11, "tag", "Robotics", guild_id=1, max_per_user=25)
    first = await outbox.plan(conn, "dm", 11, DAY, [({"content": "a"}, False), ({"content": "b"}, False)])
    again = await outbox.plan(conn, "dm", 11, DAY, [({"content": "other"}, False)])
    assert again == first and [m.payload["content"] for m in again.messages] == ["a", "b"]
    await outbox.mark_sent(conn, first.id, 0, 100)
    assert not await outbox.finish(conn, first.id)
    assert [i.id for i in await outbox.unfinished(conn, "dm")] == [first.id]
    assert await outbox.unfinished(conn, "digest") == []
    await outbox.mark_sent(conn, first.id, 1, 101)
    assert await outbox.finish(conn, first.id)
    await outbox.skip(conn, "dm", 11, DAY, "late skip")  # a finished day is left alone
    assert (await outbox.get(conn, "dm", 11, DAY)).status == "done"
    await outbox.skip(conn, "dm", 12, DAY, "no matches")  # no subscriber row: nothing recorded
    assert await outbox.get(conn, "dm", 12, DAY) is None
    await subs.delete_user(conn, 11)
    assert await outbox.get(conn, "dm", 11, DAY) is None


async def test_a_day_a_channel_got_is_remembered_after_the_channel_is_removed(conn, channel) -> None:
    delivered = await outbox.plan(conn, "digest", 100, DAY, payloads(1))
    await outbox.mark_sent(conn, delivered.id, 0, 1)
    await outbox.finish(conn, delivered.id)
    await outbox.skip(conn, "digest", 100, DAY + dt.timedelta(days=1), "no papers")
    await outbox.plan(conn, "digest", 100, DAY + dt.timedelta(days=2), payloads(1))  # still planned: not history
    await channels.remove_channel(conn, 100)
    assert await outbox.periods(conn, "digest", 100, DAY, ("done", "skipped")) == set()
    assert await outbox.history(conn, "digest", 100, since=DAY) == {DAY, DAY + dt.timedelta(days=1)}
    assert await outbox.last_done(conn, "digest", 100) == DAY


async def test_the_last_recorded_message_of_a_target_starts_the_look_for_a_lost_one(conn, channel) -> None:
    item = await outbox.plan(conn, "digest", 100, DAY, payloads(3, thread=True))
    assert await outbox.last_recorded_message(conn, "digest", 100) is None
    await outbox.mark_sent(conn, item.id, 0, 500)
    await outbox.mark_sent(conn, item.id, 1, 900)  # in the thread: not the channel's
    assert await outbox.last_recorded_message(conn, "digest", 100) == 500
    await outbox.mark_tried(conn, item.id, 2, 900)
    stored = await outbox.get(conn, "digest", 100, DAY)
    assert [m.tried for m in stored.messages] == [True, True, True] and stored.messages[2].look_after == 900


async def test_migration_10_moves_the_three_old_ledgers_into_one(tmp_path, monkeypatch) -> None:
    path = tmp_path / "old.db"
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:9])
    monkeypatch.setattr(db, "SCHEMA_VERSION", 9)
    old = await db.connect(path)
    try:
        now = "2025-02-20T09:00:00+00:00"
        await old.execute("INSERT INTO digest_channels (channel_id, guild_id, post_time, timezone, created_at, "
                          "updated_at) VALUES (100, 1, '09:00', 'UTC', ?, ?)", (now, now))
        await old.execute("INSERT INTO deliveries (id, channel_id, day, late, status, planned_at) "
                          "VALUES (7, 100, '2025-02-20', 1, 'delivered', ?), (8, 100, '2025-02-21', 0, 'pending', ?)",
                          (now, now))
        await old.execute("INSERT INTO delivery_messages (delivery_id, position, payload, nonce, message_id) "
                          "VALUES (7, 0, '{}', 'pb7.0', 70), (8, 0, '{}', 'pb8.0', NULL)")
        await old.execute("INSERT INTO subscribers (user_id, created_at) VALUES (11, ?)", (now,))
        await old.execute("INSERT INTO dm_deliveries (id, user_id, day, status, planned_at) "
                          "VALUES (7, 11, '2025-02-20', 'pending', ?)", (now,))
        await old.execute("INSERT INTO dm_messages (delivery_id, position, payload, nonce) VALUES (7, 0, '{}', 'pd7.0')")
        await old.execute("INSERT INTO roundups (id, channel_id, week_end, payload, message_id, planned_at) "
                          "VALUES (7, 100, '2025-02-21', '{}', 77, ?)", (now,))
    finally:
        await old.close()
    monkeypatch.undo()

    conn = await db.connect(path)
    try:
        digests = [await outbox.get(conn, "digest", 100, DAY + dt.timedelta(days=n)) for n in range(2)]
        assert [(d.status, d.late, d.messages[0].nonce, d.messages[0].message_id) for d in digests] == [
            ("done", True, "pb7.0", 70), ("planned", False, "pb8.0", None)]
        dm = await outbox.get(conn, "dm", 11, DAY)
        assert (dm.status, dm.messages[0].nonce) == ("planned", "pd7.0") and dm.id not in {d.id for d in digests}
        roundup = await outbox.get(conn, "roundup", 100, DAY + dt.timedelta(days=1))
        assert (roundup.status, roundup.messages[0].nonce, roundup.messages[0].message_id) == ("done", "pbr7", 77)
        assert await outbox.history(conn, "digest", 100, since=DAY) == {DAY}
        fresh = await outbox.plan(conn, "digest", 100, DAY + dt.timedelta(days=5), payloads(1))
        assert fresh.messages[0].nonce.startswith("po")
        assert await db.integrity_check(conn) == []
    finally:
        await conn.close()


# ----- claims: one sender per item, across processes (issue #15) ------------------------------------


async def test_an_item_is_claimed_by_one_task_at_a_time_and_freed_after(conn, channel) -> None:
    item = await outbox.plan(conn, "digest", 100, DAY, payloads(1))
    other = await outbox.plan(conn, "digest", 100, DAY + dt.timedelta(days=1), payloads(1))

    async def try_claim(item_id: int) -> bool:
        async with outbox.claim(conn, item_id) as mine:
            return mine

    async with outbox.claim(conn, item.id) as mine:
        assert mine
        assert not await asyncio.create_task(try_claim(item.id))  # another task of this process
        assert await asyncio.create_task(try_claim(other.id))  # other items stay free
    assert await try_claim(item.id)


@pytest.mark.postgres
async def test_two_processes_on_one_library_never_claim_the_same_item() -> None:
    async with empty_postgres_library() as first:
        second = await db.connect(first.url)  # another process's library: its own connections
        try:
            await channels.save_channel(first, a_channel())
            item = await outbox.plan(first, "digest", 100, DAY, payloads(1))
            other = await outbox.plan(first, "digest", 100, DAY + dt.timedelta(days=1), payloads(1))
            async with outbox.claim(first, item.id) as mine:
                assert mine
                async with outbox.claim(second, item.id) as theirs:
                    assert not theirs
                async with outbox.claim(second, other.id) as theirs:
                    assert theirs
            async with outbox.claim(second, item.id) as theirs:
                assert theirs
                async with outbox.claim(first, item.id) as mine:
                    assert not mine
            async with outbox.claim(first, item.id) as mine:  # a closed holder holds nothing
                assert mine
                await first.close()
                async with outbox.claim(second, item.id) as theirs:
                    assert theirs
        finally:
            await second.close()


_HOLDER = """
import asyncio, sys
from storage import db, outbox

async def hold(url, item_id):
    library = await db.connect(url)
    async with outbox.claim(library, item_id) as mine:
        print(mine, flush=True)
        await asyncio.sleep(3600)

asyncio.run(hold(sys.argv[1], int(sys.argv[2])))
"""


async def _claim_once_freed(library, item_id: int, attempts: int = 200) -> bool:
    """Claim the item as soon as PostgreSQL has noticed its holder died (a few polls at most)."""
    for _ in range(attempts):
        async with outbox.claim(library, item_id) as mine:
            if mine:
                return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.postgres
async def test_an_item_claimed_by_a_killed_process_is_claimed_by_another() -> None:
    async with empty_postgres_library() as library:
        await channels.save_channel(library, a_channel())
        item = await outbox.plan(library, "digest", 100, DAY, payloads(1))
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, library.url, str(item.id)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            said = await asyncio.to_thread(holder.stdout.readline)
            assert said.strip() == "True"
            async with outbox.claim(library, item.id) as mine:
                assert not mine  # held by the other process
        finally:
            holder.kill()  # SIGKILL: no chance to let go
            holder.wait()
            holder.stdout.close()
        assert await _claim_once_freed(library, item.id)
