"""Subscriptions in SQLite: no Discord."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import outbox
from storage import subscriptions as subs
from storage._rows import fetch_all
from storage.search_query import QueryError

DAY = dt.date(2025, 3, 21)
ALICE, BOB = 11, 22
USER_TABLES = ("subscribers", "subscriptions", "outbox")


async def add(conn, user, kind, value, cap=25, guild=1):
    return await subs.add_subscription(conn, user, kind, value, guild_id=guild, max_per_user=cap)


async def test_add_list_and_remove(conn) -> None:
    await add(conn, ALICE, "tag", "Robotics")
    await add(conn, ALICE, "keyword", "  video   diffusion ")
    found = await subs.list_subscriptions(conn, ALICE)
    assert [(s.kind, s.value) for s in found] == [("tag", "Robotics"), ("keyword", "video diffusion")]
    assert await subs.remove_subscription(conn, ALICE, "tag", "ROBOTICS")
    assert not await subs.remove_subscription(conn, ALICE, "tag", "Robotics")
    assert await subs.remove_subscription(conn, ALICE, "keyword", "Video Diffusion")
    assert await subs.list_subscriptions(conn, ALICE) == []


async def test_duplicates_are_refused_in_any_spelling(conn) -> None:
    await add(conn, ALICE, "tag", "Text-to-Video")
    with pytest.raises(subs.AlreadySubscribed):
        await add(conn, ALICE, "tag", "text to video")
    await add(conn, ALICE, "keyword", "Diffusion")
    with pytest.raises(subs.AlreadySubscribed):
        await add(conn, ALICE, "keyword", "diffusion")
    await add(conn, BOB, "tag", "Text-to-Video")  # another user may


async def test_the_cap_counts_tags_and_keywords(conn) -> None:
    await add(conn, ALICE, "tag", "A", cap=2)
    await add(conn, ALICE, "keyword", "b", cap=2)
    with pytest.raises(subs.TooManySubscriptions) as raised:
        await add(conn, ALICE, "keyword", "c", cap=2)
    assert raised.value.limit == 2
    assert len(await subs.list_subscriptions(conn, ALICE)) == 2


async def test_pause_closed_mark_and_who_gets_dms(conn) -> None:
    assert not await subs.set_paused(conn, ALICE, True)  # no subscriber yet
    await add(conn, ALICE, "tag", "Robotics", guild=5)
    await add(conn, BOB, "tag", "Robotics", guild=None)
    assert [s.user_id for s in await subs.subscribers_to_deliver(conn)] == [ALICE, BOB]
    assert await subs.set_paused(conn, ALICE, True)
    await subs.mark_dm_closed(conn, BOB)
    assert await subs.subscribers_to_deliver(conn) == []
    bob = await subs.get_subscriber(conn, BOB)
    assert bob.dm_closed and bob.guild_ids == []
    assert (await subs.get_subscriber(conn, ALICE)).guild_ids == [5]
    assert await subs.clear_dm_closed(conn, BOB)
    assert not await subs.clear_dm_closed(conn, BOB)
    assert [s.user_id for s in await subs.subscribers_to_deliver(conn)] == [BOB]


async def test_delete_user_removes_every_row_about_them(conn) -> None:
    await add(conn, ALICE, "tag", "Robotics")
    await add(conn, BOB, "tag", "Robotics")
    delivery = await outbox.plan(conn, "dm", ALICE, DAY, [({"content": "x"}, False)])
    await outbox.mark_sent(conn, delivery.id, 0, 99)
    assert await subs.delete_user(conn, ALICE) == 1
    for table in USER_TABLES:
        assert (await fetch_all(conn, f"SELECT count(*) FROM {table} WHERE user_id = ?", (ALICE,)))[0][0] == 0
    assert (await fetch_all(conn, "SELECT count(*) FROM outbox_messages"))[0][0] == 0
    assert len(await subs.list_subscriptions(conn, BOB)) == 1
    assert await subs.export_user(conn, ALICE) == {"user_id": str(ALICE), "paused": False, "subscriptions": []}


async def test_a_member_who_left_every_server_is_marked_until_they_subscribe_from_one_again(conn) -> None:
    await add(conn, ALICE, "tag", "Robotics", guild=5)
    assert await subs.mark_left_servers(conn, ALICE, True)
    assert not await subs.mark_left_servers(conn, ALICE, True)  # already marked
    assert (await subs.get_subscriber(conn, ALICE)).left_servers
    await add(conn, ALICE, "tag", "Vision", guild=None)  # from a DM: proves nothing about servers
    assert (await subs.get_subscriber(conn, ALICE)).left_servers
    await add(conn, ALICE, "tag", "Audio", guild=6)
    assert not (await subs.get_subscriber(conn, ALICE)).left_servers


async def test_matches_list_each_paper_once_with_every_matching_subscription(library) -> None:
    await add(library, ALICE, "tag", "Robotics")  # the cog stores the resolved name
    await add(library, ALICE, "keyword", "JARVIS")
    await add(library, BOB, "keyword", "nothingmatchesthisword")
    found = await subs.matches_on_day(library, DAY, [ALICE, BOB])
    assert set(found) == {ALICE}
    by_id = {m.paper.arxiv_id: m.matched for m in found[ALICE]}
    assert by_id["2503.16365"] == ["tag: Robotics", "keyword: JARVIS"]  # JARVIS-VLA: both, listed once
    assert by_id["2503.15558"] == ["tag: Robotics"]  # Cosmos-Reason1
    assert len(found[ALICE]) == len(by_id)


# -- cost limits (issue #12) --------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["a* b* c*", "ab*", '"' + "a " * 40 + '"'])
async def test_a_keyword_search_would_refuse_is_refused_when_made(conn, keyword) -> None:
    with pytest.raises(QueryError):
        await add(conn, ALICE, "keyword", keyword)
    assert await subs.list_subscriptions(conn, ALICE) == []


async def test_a_keyword_too_costly_for_the_budget_matches_nothing_and_tags_still_do(library, monkeypatch) -> None:
    from storage import db

    await add(library, ALICE, "tag", "Robotics")
    await add(library, ALICE, "keyword", "JARVIS")
    monkeypatch.setattr(db, "QUERY_BUDGET_SECONDS", 0)
    found = await subs.matches_on_day(library, DAY, [ALICE])
    assert {m.paper.arxiv_id: m.matched for m in found[ALICE]}["2503.16365"] == ["tag: Robotics"]
