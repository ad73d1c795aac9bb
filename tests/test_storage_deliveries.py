"""The digest channels and the delivery ledger on real SQLite files."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3

import pytest
from pydantic import ValidationError

from storage import channels, db, deliveries
from storage.channels import DigestChannel

DAY = dt.date(2025, 2, 20)
GUILD = 900


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


# ----- digest channels -----------------------------------------------------------------------


async def test_a_saved_channel_reads_back_with_its_settings(conn):
    saved = a_channel(tags=["Robotics", " ", "Robotics", "NLP"], style="thread", empty_day_note=True,
                      set_up_by=42, post_time=dt.time(7, 30, 15))
    await channels.save_channel(conn, saved)
    got = await channels.get_channel(conn, 100)
    assert got.model_dump(exclude={"created_at", "updated_at"}) == saved.model_copy(
        update={"tags": ["Robotics", "NLP"], "post_time": dt.time(7, 30)}
    ).model_dump(exclude={"created_at", "updated_at"})
    assert got.broken_reason is None and not got.broken_notified and got.last_error is None
    assert got.created_at is not None and got.created_at.tzinfo is not None and got.updated_at is not None


async def test_created_at_is_kept_on_update_unless_given(conn):
    await channels.save_channel(conn, a_channel())
    created = (await channels.get_channel(conn, 100)).created_at
    await channels.save_channel(conn, a_channel(style="thread"))
    assert (await channels.get_channel(conn, 100)).created_at == created
    back_then = dt.datetime(2025, 3, 18, 6, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    await channels.save_channel(conn, a_channel(created_at=back_then))
    assert (await channels.get_channel(conn, 100)).created_at == back_then


async def test_channel_settings_are_validated():
    with pytest.raises(ValidationError, match="unknown time zone"):
        a_channel(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        a_channel(style="fancy")


async def test_channels_list_by_guild_and_remove(conn):
    for channel_id, guild_id in [(3, 1), (1, 2), (2, 1)]:
        await channels.save_channel(conn, a_channel(channel_id, guild_id=guild_id))
    assert [c.channel_id for c in await channels.list_channels(conn)] == [1, 2, 3]
    assert [c.channel_id for c in await channels.list_channels(conn, guild_id=1)] == [2, 3]
    assert await channels.remove_channel(conn, 2) is True
    assert await channels.remove_channel(conn, 2) is False
    assert await channels.get_channel(conn, 2) is None


async def test_mark_broken_asks_to_notify_once_until_the_channel_is_saved_again(conn, channel):
    assert await channels.mark_broken(conn, 100, "Paperbot lost access to #papers (Missing Permissions)") is True
    assert await channels.mark_broken(conn, 100, "Paperbot can no longer find #papers (Unknown Channel)") is False
    broken = await channels.get_channel(conn, 100)
    assert broken.broken_reason == "Paperbot can no longer find #papers (Unknown Channel)"
    assert broken.broken_notified

    await channels.save_channel(conn, broken)  # an admin fixed it and saved the settings
    fixed = await channels.get_channel(conn, 100)
    assert fixed.broken_reason is None and not fixed.broken_notified
    assert await channels.mark_broken(conn, 100, "again") is True
    assert await channels.mark_broken(conn, 999, "no such channel") is False


async def test_record_error_keeps_the_last_one_and_none_clears_it(conn, channel):
    await channels.record_error(conn, 100, "Discord answered 503: Service Unavailable")
    failing = await channels.get_channel(conn, 100)
    assert failing.last_error == "Discord answered 503: Service Unavailable"
    assert failing.last_error_at is not None and failing.last_error_at.tzinfo is not None
    await channels.record_error(conn, 100, None)
    healthy = await channels.get_channel(conn, 100)
    assert healthy.last_error is None and healthy.last_error_at is None


# ----- planning ------------------------------------------------------------------------------


async def test_plan_stores_messages_in_order_with_unique_short_nonces(conn, channel):
    delivery = await deliveries.plan_delivery(conn, 100, DAY, payloads(3, thread=True), late=True)
    assert (delivery.channel_id, delivery.day, delivery.late, delivery.status) == (100, DAY, True, "pending")
    assert [m.position for m in delivery.messages] == [0, 1, 2]
    assert [m.payload["content"] for m in delivery.messages] == ["message 0", "message 1", "message 2"]
    assert [m.in_thread for m in delivery.messages] == [False, True, True]
    assert all(m.message_id is None for m in delivery.messages)
    nonces = [m.nonce for m in delivery.messages]
    assert len(set(nonces)) == 3 and all(0 < len(n) <= 25 for n in nonces)
    assert await deliveries.get_delivery(conn, 100, DAY) == delivery


async def test_planning_again_replays_the_stored_payloads(conn, channel):
    first = await deliveries.plan_delivery(conn, 100, DAY, payloads(2), late=False)
    rerendered = [({"v": 1, "content": "something else", "embeds": []}, False)] * 5
    again = await deliveries.plan_delivery(conn, 100, DAY, rerendered, late=True)
    assert again == first


async def test_concurrent_plans_create_one_delivery(conn, channel):
    plans = await asyncio.gather(*(deliveries.plan_delivery(conn, 100, DAY, payloads(i + 1), late=False)
                                   for i in range(5)))
    assert len({p.id for p in plans}) == 1 and all(p == plans[0] for p in plans)
    assert not conn.in_transaction


async def test_a_failed_plan_leaves_nothing_and_no_open_transaction(conn, channel):
    with pytest.raises(TypeError):  # a payload that is not JSON
        await deliveries.plan_delivery(conn, 100, DAY, [({"v": 1, "content": object()}, False)], late=False)
    assert not conn.in_transaction
    assert await deliveries.get_delivery(conn, 100, DAY) is None


async def test_a_delivery_needs_its_channel(conn):
    with pytest.raises(sqlite3.IntegrityError):
        await deliveries.plan_delivery(conn, 12345, DAY, payloads(1), late=False)
    assert not conn.in_transaction


async def test_nonces_are_not_reused_after_a_channel_is_removed(conn, channel):
    old = await deliveries.plan_delivery(conn, 100, DAY, payloads(2), late=False)
    await channels.remove_channel(conn, 100)
    await channels.save_channel(conn, channel)
    new = await deliveries.plan_delivery(conn, 100, DAY, payloads(2), late=False)
    assert {m.nonce for m in old.messages}.isdisjoint(m.nonce for m in new.messages)


# ----- sending and finishing -------------------------------------------------------------------


async def test_mark_sent_records_accepted_messages_and_keeps_the_first_id(conn, channel):
    delivery = await deliveries.plan_delivery(conn, 100, DAY, payloads(3), late=False)
    await deliveries.mark_sent(conn, delivery.id, 0, 5000)
    await deliveries.mark_sent(conn, delivery.id, 0, 6000)
    assert await deliveries.finish_delivery(conn, delivery.id) is False  # two are still unsent
    await deliveries.mark_sent(conn, delivery.id, 1, 5001)
    stored = await deliveries.get_delivery(conn, 100, DAY)
    assert [m.message_id for m in stored.messages] == [5000, 5001, None]
    assert stored.status == "pending"


async def test_finish_and_thread(conn, channel):
    delivery = await deliveries.plan_delivery(conn, 100, DAY, payloads(2, thread=True), late=False)
    await deliveries.set_thread(conn, delivery.id, 777)
    for message in delivery.messages:
        await deliveries.mark_sent(conn, delivery.id, message.position, 1000 + message.position)
    assert await deliveries.finish_delivery(conn, delivery.id) is True
    assert await deliveries.finish_delivery(conn, delivery.id) is False
    done = await deliveries.get_delivery(conn, 100, DAY)
    assert (done.status, done.thread_id) == ("delivered", 777)
    assert await deliveries.last_delivered_day(conn, 100) == DAY


async def test_unfinished_lists_pending_deliveries_oldest_first(conn, channel):
    await channels.save_channel(conn, a_channel(200))
    days = [DAY + dt.timedelta(days=n) for n in range(3)]
    late_plan = await deliveries.plan_delivery(conn, 200, days[2], payloads(1), late=False)
    await deliveries.plan_delivery(conn, 100, days[1], payloads(2), late=True)
    done = await deliveries.plan_delivery(conn, 100, days[0], payloads(1), late=False)
    await deliveries.mark_sent(conn, done.id, 0, 1)
    await deliveries.finish_delivery(conn, done.id)
    await deliveries.skip_day(conn, 200, days[0], "no papers")

    unfinished = await deliveries.unfinished_deliveries(conn)
    assert [(d.channel_id, d.day) for d in unfinished] == [(100, days[1]), (200, days[2])]
    assert unfinished[0].late and len(unfinished[0].messages) == 2
    assert unfinished[1] == late_plan


# ----- skipped days and history ------------------------------------------------------------


async def test_skip_day_is_idempotent_and_never_undoes_a_delivery(conn, channel):
    await deliveries.skip_day(conn, 100, DAY, "no papers")
    await deliveries.skip_day(conn, 100, DAY, "something else")
    skipped = await deliveries.get_delivery(conn, 100, DAY)
    assert (skipped.status, skipped.reason, skipped.messages) == ("skipped", "no papers", [])
    assert await deliveries.plan_delivery(conn, 100, DAY, payloads(2), late=False) == skipped

    next_day = DAY + dt.timedelta(days=1)
    delivery = await deliveries.plan_delivery(conn, 100, next_day, payloads(1), late=False)
    await deliveries.mark_sent(conn, delivery.id, 0, 1)
    await deliveries.finish_delivery(conn, delivery.id)
    await deliveries.skip_day(conn, 100, next_day, "no papers")
    assert (await deliveries.get_delivery(conn, 100, next_day)).status == "delivered"


async def test_skip_day_abandons_a_pending_delivery(conn, channel):
    await deliveries.plan_delivery(conn, 100, DAY, payloads(3, thread=True), late=False)
    await deliveries.skip_day(conn, 100, DAY, "the digest's thread was deleted")
    abandoned = await deliveries.get_delivery(conn, 100, DAY)
    assert (abandoned.status, abandoned.reason) == ("skipped", "the digest's thread was deleted")
    assert await deliveries.unfinished_deliveries(conn) == []


async def test_delivered_days_counts_delivered_and_skipped_from_since(conn, channel):
    days = [DAY + dt.timedelta(days=n) for n in range(4)]
    for day in (days[0], days[1]):
        delivery = await deliveries.plan_delivery(conn, 100, day, payloads(1), late=False)
        await deliveries.mark_sent(conn, delivery.id, 0, day.toordinal())
        await deliveries.finish_delivery(conn, delivery.id)
    await deliveries.skip_day(conn, 100, days[2], "no papers")
    await deliveries.plan_delivery(conn, 100, days[3], payloads(1), late=False)  # still pending

    assert await deliveries.delivered_days(conn, 100, days[1]) == {days[1], days[2]}
    assert await deliveries.delivered_days(conn, 200, days[0]) == set()
    assert await deliveries.last_delivered_day(conn, 100) == days[1]
    assert await deliveries.last_delivered_day(conn, 200) is None


async def test_removing_a_channel_removes_its_deliveries_and_messages(conn, channel):
    delivery = await deliveries.plan_delivery(conn, 100, DAY, payloads(3), late=False)
    await deliveries.skip_day(conn, 100, DAY + dt.timedelta(days=1), "no papers")
    await channels.remove_channel(conn, 100)
    assert await deliveries.get_delivery(conn, 100, DAY) is None
    async with conn.execute("SELECT count(*) FROM delivery_messages WHERE delivery_id = ?", (delivery.id,)) as cur:
        assert (await cur.fetchone())[0] == 0
    async with conn.execute("SELECT count(*) FROM deliveries") as cur:
        assert (await cur.fetchone())[0] == 0
    assert await db.integrity_check(conn) == []
