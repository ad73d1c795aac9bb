"""storage.stats on the corpus library, checked against counts rebuilt from `papers_on_day`."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import pytest

from storage import papers, stats


async def independent_weekly(library, since: dt.date | None, until: dt.date | None) -> dict[str, dict[dt.date, set]]:
    """tag name -> week start -> arXiv ids, from each day's papers."""
    found: dict[str, dict[dt.date, set]] = defaultdict(lambda: defaultdict(set))
    for day in await papers.digest_days(library, since=since, until=until):
        week = day - dt.timedelta(days=day.weekday())
        for paper in await papers.papers_on_day(library, day):
            for tag in paper.tags:
                found[tag][week].add(paper.arxiv_id)
    return found


def totals(weekly: dict[str, dict[dt.date, set]]) -> Counter:
    return Counter({tag: len(set().union(*weeks.values())) for tag, weeks in weekly.items()})


def test_week_start_is_the_monday() -> None:
    assert stats.week_start(dt.date(2025, 3, 31)) == dt.date(2025, 3, 31)  # a Monday
    assert stats.week_start(dt.date(2025, 3, 30)) == dt.date(2025, 3, 24)  # a Sunday
    assert stats.week_start(dt.date(2025, 3, 26)) == dt.date(2025, 3, 24)


@pytest.mark.parametrize("since, until", [(None, None), (dt.date(2025, 1, 6), dt.date(2025, 3, 31)),
                                          (dt.date(2025, 2, 12), dt.date(2025, 2, 27))])
async def test_weekly_counts_match_the_days(library, since, until) -> None:
    expected = await independent_weekly(library, since, until)
    days = await papers.digest_days(library, since=since, until=until)
    weeks, series = await stats.tag_counts_by_week(library, since=since, until=until, tags=None, top=6)

    first, last = stats.week_start(days[0]), stats.week_start(days[-1])
    assert weeks[0] == first and weeks[-1] == last
    assert all(b - a == dt.timedelta(weeks=1) for a, b in zip(weeks, weeks[1:])), "every week, no gaps"
    assert all(w.weekday() == 0 for w in weeks)

    assert len(series) == 6
    for name, counts in series.items():
        assert len(counts) == len(weeks)
        assert counts == [len(expected[name].get(week, ())) for week in weeks], name

    # the top tags: the most distinct papers over the whole period
    by_papers = totals(expected)
    chosen = [by_papers[name] for name in series]
    assert chosen == sorted(chosen, reverse=True)
    others = [v for tag, v in by_papers.items() if tag not in series]
    assert not others or min(chosen) >= max(others)


async def test_top_tags_are_ranked_by_distinct_papers_in_the_period(library) -> None:
    since, until = dt.date(2025, 3, 3), dt.date(2025, 3, 31)
    expected = totals(await independent_weekly(library, since, until))
    rows = {}
    for day in await papers.digest_days(library, since=since, until=until):
        for paper in await papers.papers_on_day(library, day):
            for tag in paper.tags:
                rows.setdefault(tag, set()).add(paper.arxiv_id)
    distinct = Counter({tag: len(ids) for tag, ids in rows.items()})
    assert distinct == expected
    _, series = await stats.tag_counts_by_week(library, since=since, until=until, tags=None, top=3)
    ranked = sorted(distinct.items(), key=lambda kv: (-kv[1], kv[0].casefold()))
    assert list(series)[0] == ranked[0][0]
    assert {distinct[name] for name in series} <= {count for _, count in ranked[:3]}


async def test_chosen_tags_any_spelling_in_the_order_given(library) -> None:
    since, until = dt.date(2024, 10, 1), dt.date(2025, 3, 31)
    expected = await independent_weekly(library, since, until)
    weeks, series = await stats.tag_counts_by_week(
        library, since=since, until=until, tags=["robotics", "COMPUTER VISION", "Robotics", "no such tag"]
    )
    assert list(series) == ["Robotics", "Computer Vision"], "known tags once each, unknown ones left out"
    for name in series:
        assert series[name] == [len(expected[name].get(week, ())) for week in weeks]
    assert sum(series["Robotics"]) > 0


async def test_a_period_without_papers_is_empty(library) -> None:
    assert await stats.tag_counts_by_week(
        library, since=dt.date(2030, 1, 1), until=dt.date(2030, 6, 1), tags=None
    ) == ([], {})
    weeks, series = await stats.tag_counts_by_week(library, since=None, until=None, tags=["no such tag"])
    assert weeks and series == {}


async def test_an_empty_library(conn) -> None:
    assert await stats.tag_counts_by_week(conn, since=None, until=None, tags=None) == ([], {})
    summary = await stats.day_summary(conn, dt.date(2025, 3, 31))
    assert summary.papers == 0 and summary.top_tags == [] and summary.sources == []


async def test_day_summary_matches_the_day(library) -> None:
    days = await papers.digest_days(library)
    for day in (days[0], days[len(days) // 2], days[-1]):
        found = await papers.papers_on_day(library, day)
        summary = await stats.day_summary(library, day, top=4)
        assert summary.day == day
        assert summary.papers == len(found)
        assert summary.with_code == sum(1 for p in found if p.github_urls)
        tags = Counter(tag for p in found for tag in p.tags)
        assert [t.count for t in summary.top_tags] == sorted(tags.values(), reverse=True)[:4]
        assert all(tags[t.name] == t.count for t in summary.top_tags)
        async with library.execute("SELECT source, paper_count FROM digests WHERE day = ? ORDER BY source",
                                   (day.isoformat(),)) as cursor:
            listed = [(row[0], row[1]) for row in await cursor.fetchall()]
        assert [(s.source, s.papers) for s in summary.sources] == listed
        assert max(s.papers for s in summary.sources) <= summary.papers
