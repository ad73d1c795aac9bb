"""Votes, rankings by votes, busiest tags, roundup settings and the roundup ledger, on the real corpus."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import channels, outbox, votes
from storage.channels import DigestChannel
from storage.papers import papers_on_day

DAY = dt.date(2025, 3, 21)
WEEK = (dt.date(2025, 3, 15), DAY)
G = 7001  # the server the votes are cast in


async def test_a_vote_toggles_once_per_member(library) -> None:
    paper = (await papers_on_day(library, DAY))[0]
    assert await votes.toggle_vote(library, paper.arxiv_id, 1, guild_id=G) == votes.Vote(voted=True, count=1)
    assert await votes.toggle_vote(library, paper.arxiv_id, 2, guild_id=G) == votes.Vote(voted=True, count=2)
    assert await votes.toggle_vote(library, paper.arxiv_id, 1, guild_id=G) == votes.Vote(voted=False, count=1)
    counts = await votes.vote_counts(library, [paper.arxiv_id, "0000.00000"], guild_id=G)
    assert counts == {paper.arxiv_id: 1, "0000.00000": 0}
    assert await votes.toggle_vote(library, "0000.00000", 1, guild_id=G) is None


async def test_ranking_is_by_votes_then_newest(library) -> None:
    older = (await papers_on_day(library, dt.date(2025, 3, 17)))[:2]
    newer = (await papers_on_day(library, DAY))[:2]
    for paper, voters in ((older[0], 3), (older[1], 1), (newer[0], 1), (newer[1], 0)):
        for user in range(voters):
            await votes.toggle_vote(library, paper.arxiv_id, user, guild_id=G)

    top = await votes.ranked_papers(library, guild_id=G, since=WEEK[0], until=WEEK[1])
    assert [(r.paper.arxiv_id, r.votes) for r in top.papers] == [
        (older[0].arxiv_id, 3), (newer[0].arxiv_id, 1), (older[1].arxiv_id, 1)]
    assert top.total == 3

    everything = await votes.ranked_papers(library, guild_id=G, since=WEEK[0], until=WEEK[1], voted_only=False,
                                           limit=1000)
    week_ids = {p.arxiv_id for d in range(7) for p in await papers_on_day(library, WEEK[0] + dt.timedelta(days=d))}
    assert everything.total == len(week_ids) == len(everything.papers)
    assert everything.papers[3].votes == 0 and everything.papers[3].paper.days[-1] == DAY  # zero votes: newest first

    page = await votes.ranked_papers(library, guild_id=G, since=WEEK[0], until=WEEK[1], limit=1, offset=1)
    assert [r.paper.arxiv_id for r in page.papers] == [newer[0].arxiv_id] and page.total == 3
    empty = await votes.ranked_papers(library, guild_id=G, since=dt.date(2025, 3, 22), until=dt.date(2025, 3, 23))
    assert empty.total == 0


async def test_rankings_and_busiest_tags_can_keep_to_tags(library) -> None:
    tags = await votes.busiest_tags(library, *WEEK, limit=5)
    assert len(tags) == 5 and [t.count for t in tags] == sorted((t.count for t in tags), reverse=True)
    busiest = tags[0]
    tagged = await votes.ranked_papers(library, guild_id=G, since=WEEK[0], until=WEEK[1], tags=[busiest.name.upper()],
                                       voted_only=False, limit=1000)
    assert tagged.total == busiest.count
    assert all(busiest.name in r.paper.tags for r in tagged.papers)
    only = await votes.busiest_tags(library, *WEEK, tags=[busiest.name])
    assert only[0] == busiest


async def test_roundup_settings_are_kept_apart_from_the_digest_settings(library) -> None:
    row = DigestChannel(channel_id=5, guild_id=1, post_time=dt.time(9), timezone="Europe/Paris")
    await channels.save_channel(library, row)
    assert await channels.set_roundup(library, 5, 4, dt.time(17, 30))
    saved = await channels.get_channel(library, 5)
    assert (saved.roundup_weekday, saved.roundup_time) == (4, dt.time(17, 30)) and saved.roundup_since is not None
    await channels.save_channel(library, row.model_copy(update={"post_time": dt.time(8)}))  # /digest setup again
    assert (await channels.get_channel(library, 5)).roundup_weekday == 4
    assert await channels.set_roundup(library, 5, None)
    off = await channels.get_channel(library, 5)
    assert (off.roundup_weekday, off.roundup_time, off.roundup_since) == (None, None, None)
    assert not await channels.set_roundup(library, 6, 0, dt.time(9))  # not a digest channel
    with pytest.raises(ValueError):
        await channels.set_roundup(library, 5, 0)


async def test_a_roundup_is_planned_once_and_sent_once(library) -> None:
    await channels.save_channel(library, DigestChannel(channel_id=5, guild_id=1, post_time=dt.time(9), timezone="UTC"))
    planned = await outbox.plan(library, "roundup", 5, DAY, [({"v": 1, "content": "first"}, False)])
    again = await outbox.plan(library, "roundup", 5, DAY, [({"v": 1, "content": "second"}, False)])
    assert again == planned and again.messages[0].payload["content"] == "first" and again.messages[0].message_id is None
    other = await outbox.plan(library, "roundup", 5, DAY + dt.timedelta(days=7), [({"v": 1, "content": "next"}, False)])
    assert other.messages[0].nonce != planned.messages[0].nonce and len(planned.messages[0].nonce) <= 25
    await outbox.mark_sent(library, planned.id, 0, 111)
    await outbox.mark_sent(library, planned.id, 0, 222)
    assert (await outbox.get(library, "roundup", 5, DAY)).messages[0].message_id == 111
    assert await outbox.finish(library, planned.id)
    await channels.remove_channel(library, 5)
    assert await outbox.get(library, "roundup", 5, DAY) is None
    assert await outbox.history(library, "roundup", 5, since=DAY) == {DAY}  # kept for a new setup


# ----- votes belong to their server (issue #12) --------------------------------------------------

OTHER = 7002


async def test_votes_cast_in_another_server_neither_count_nor_rank_here(library) -> None:
    paper = (await papers_on_day(library, DAY))[0]
    for user in (1, 2, 3):
        await votes.toggle_vote(library, paper.arxiv_id, user, guild_id=OTHER)
    assert await votes.toggle_vote(library, paper.arxiv_id, 1, guild_id=G) == votes.Vote(voted=True, count=1)
    assert await votes.vote_counts(library, [paper.arxiv_id], guild_id=G) == {paper.arxiv_id: 1}
    assert await votes.vote_counts(library, [paper.arxiv_id], guild_id=OTHER) == {paper.arxiv_id: 3}
    here = await votes.ranked_papers(library, guild_id=G, since=WEEK[0], until=WEEK[1])
    assert [(r.paper.arxiv_id, r.votes) for r in here.papers] == [(paper.arxiv_id, 1)]
    assert (await votes.ranked_papers(library, guild_id=None, since=WEEK[0], until=WEEK[1])).total == 0


async def test_a_vote_taken_back_in_one_server_stays_in_the_other(library) -> None:
    paper = (await papers_on_day(library, DAY))[0]
    await votes.toggle_vote(library, paper.arxiv_id, 1, guild_id=G)
    await votes.toggle_vote(library, paper.arxiv_id, 1, guild_id=OTHER)
    assert await votes.toggle_vote(library, paper.arxiv_id, 1, guild_id=G) == votes.Vote(voted=False, count=0)
    assert await votes.vote_counts(library, [paper.arxiv_id], guild_id=OTHER) == {paper.arxiv_id: 1}


async def test_deleting_a_member_deletes_their_votes_in_every_server(library) -> None:
    from storage import subscriptions

    paper = (await papers_on_day(library, DAY))[0]
    for server in (G, OTHER, None):
        await votes.toggle_vote(library, paper.arxiv_id, 1, guild_id=server)
    await votes.toggle_vote(library, paper.arxiv_id, 2, guild_id=G)
    await subscriptions.delete_user(library, 1)
    async with library.execute("SELECT user_id, count(*) FROM votes GROUP BY user_id") as cursor:
        assert [tuple(row) for row in await cursor.fetchall()] == [(2, 1)]


async def _library_with_old_votes(path, guilds: list[int]) -> None:
    """A library at schema 10 (votes without a server) holding two votes and digest channels in `guilds`."""
    from storage import db

    previous = (db.MIGRATIONS, db.SCHEMA_VERSION)
    db.MIGRATIONS, db.SCHEMA_VERSION = db.MIGRATIONS[:10], 10
    try:
        conn = await db.connect(path)
    finally:
        db.MIGRATIONS, db.SCHEMA_VERSION = previous
    try:
        await conn.execute(
            "INSERT INTO papers (id, arxiv_id, title, url, updated_at) VALUES (1, '2501.00001', 't', 'u', 'x')"
        )
        for number, guild in enumerate(guilds):
            await conn.execute(
                "INSERT INTO digest_channels (channel_id, guild_id, post_time, timezone, created_at, updated_at) "
                "VALUES (?, ?, '09:00', 'UTC', 'x', 'x')", (100 + number, guild))
        for user in (1, 2):
            await conn.execute("INSERT INTO votes (paper_id, user_id, voted_at) VALUES (1, ?, 'x')", (user,))
    finally:
        await conn.close()


@pytest.mark.parametrize(("guilds", "owner"), [([G, G], G), ([G, OTHER], 0), ([], 0)])
async def test_existing_votes_go_to_the_only_server_else_to_none(tmp_path, guilds, owner) -> None:
    from storage import db

    await _library_with_old_votes(tmp_path / "old.db", guilds)
    conn = await db.connect(tmp_path / "old.db")
    try:
        async with conn.execute("SELECT guild_id, user_id FROM votes ORDER BY user_id") as cursor:
            assert [tuple(row) for row in await cursor.fetchall()] == [(owner, 1), (owner, 2)]
    finally:
        await conn.close()
