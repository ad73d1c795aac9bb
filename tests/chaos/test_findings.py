"""Regression tests for what the chaos run found, each small and deterministic (see README.md).

Each test names the finding. The chaos run shows a bug; the test here shows the fix holds.
"""

from __future__ import annotations

import datetime as dt

from digests.fetcher import digest_problem
from storage import outbox, papers
from storage import subscriptions as subs
from tests.chaos.source import all_malformed
from tests.world import World

LATEST = dt.date(2025, 3, 27)  # a Thursday: the three days before it are digest days too


def test_a_digest_none_of_whose_rows_can_be_read_is_not_stored() -> None:
    day = dt.date(2026, 12, 3)
    problem = digest_problem(all_malformed(day), f"/digests/{day}.md", day)
    assert problem == "not one of its 12 rows could be read"


async def test_a_subscriber_gets_the_days_missed_since_their_last_dm_and_a_newcomer_only_the_latest(
    world: World,
) -> None:
    """A restart after the next day's digest arrived, but before the DMs were planned, skipped a day."""
    db, poster = world.bot.db, world.bot.subscription_poster
    window = await papers.digest_days(db, since=LATEST - dt.timedelta(days=3), until=LATEST)
    first, *missed = window
    assert len(missed) >= 2, "a day in between, and the latest"
    await subs.add_subscription(db, world.alice.id, "keyword", "model", guild_id=world.guild.id, max_per_user=25)
    await poster.deliver_day(first)  # alice got her DM for the first day, then the bot went down
    await subs.add_subscription(db, world.bob.id, "keyword", "model", guild_id=world.guild.id, max_per_user=25)

    await world.bot.daily.post_due(now=dt.datetime.combine(LATEST, dt.time(12), dt.UTC))

    alice = [await outbox.get(db, "dm", world.alice.id, day) for day in window]
    assert all(d is not None and d.status in ("done", "skipped") for d in alice), alice
    assert [d.day for d in alice if d.status == "done"][-1] == LATEST
    bob = [await outbox.get(db, "dm", world.bob.id, day) for day in window]
    assert [d.day for d in bob if d is not None] == [LATEST]  # a new subscriber does not get a backlog
