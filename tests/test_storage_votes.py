"""Votes, rankings by votes, busiest tags, roundup settings and the roundup ledger, on the real corpus."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import channels, outbox, votes
from storage.channels import DigestChannel
from storage.papers import papers_on_day

DAY = dt.date(2025, 3, 21)
WEEK = (dt.date(2025, 3, 15), DAY)


async def test_a_vote_toggles_once_per_member(library) -> None:
    paper = (await papers_on_day(library, DAY))[0]
    assert await votes.toggle_vote(library, paper.arxiv_id, 1) == votes.Vote(voted=True, count=1)
    assert await votes.toggle_vote(library, paper.arxiv_id, 2) == votes.Vote(voted=True, count=2)
    assert await votes.toggle_vote(library, paper.arxiv_id, 1) == votes.Vote(voted=False, count=1)
    assert await votes.vote_counts(library, [paper.arxiv_id, "0000.00000"]) == {paper.arxiv_id: 1, "0000.00000": 0}
    assert await votes.toggle_vote(library, "0000.00000", 1) is None


async def test_ranking_is_by_votes_then_newest(library) -> None:
    older = (await papers_on_day(library, dt.date(2025, 3, 17)))[:2]
    newer = (await papers_on_day(library, DAY))[:2]
    for paper, voters in ((older[0], 3), (older[1], 1), (newer[0], 1), (newer[1], 0)):
        for user in range(voters):
            await votes.toggle_vote(library, paper.arxiv_id, user)

    top = await votes.ranked_papers(library, since=WEEK[0], until=WEEK[1])
    assert [(r.paper.arxiv_id, r.votes) for r in top.papers] == [
        (older[0].arxiv_id, 3), (newer[0].arxiv_id, 1), (older[1].arxiv_id, 1)]
    assert top.total == 3

    everything = await votes.ranked_papers(library, since=WEEK[0], until=WEEK[1], voted_only=False, limit=1000)
    week_ids = {p.arxiv_id for d in range(7) for p in await papers_on_day(library, WEEK[0] + dt.timedelta(days=d))}
    assert everything.total == len(week_ids) == len(everything.papers)
    assert everything.papers[3].votes == 0 and everything.papers[3].paper.days[-1] == DAY  # zero votes: newest first

    page = await votes.ranked_papers(library, since=WEEK[0], until=WEEK[1], limit=1, offset=1)
    assert [r.paper.arxiv_id for r in page.papers] == [newer[0].arxiv_id] and page.total == 3
    assert (await votes.ranked_papers(library, since=dt.date(2025, 3, 22), until=dt.date(2025, 3, 23))).total == 0


async def test_rankings_and_busiest_tags_can_keep_to_tags(library) -> None:
    tags = await votes.busiest_tags(library, *WEEK, limit=5)
    assert len(tags) == 5 and [t.count for t in tags] == sorted((t.count for t in tags), reverse=True)
    busiest = tags[0]
    tagged = await votes.ranked_papers(library, since=WEEK[0], until=WEEK[1], tags=[busiest.name.upper()],
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
