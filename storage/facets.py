"""Filter tokens stored in the full-text index's `facets` column.

Search filters (tag, has code, appearance dates) become extra MATCH terms on
this column, so FTS5 intersects posting lists instead of SQLite looking up a
row for every match — the difference between milliseconds and seconds when
a common word meets a filter in a million papers. Pure Python, no SQL.

Tokens: `zzzt<tag id>` per tag (the id stands for the tag's identity, see
storage/tags.py, so every spelling of a tag filters through the same token),
`zzzcode` when the paper links GitHub (in the union of its sources' links), and
for each appearance day `zzzd<YYYYMMDD>`, `zzzm<YYYYMM>`, `zzzy<YYYY>`, so any
date range is a short OR of whole years, whole months and single days.

The `zzz` prefix keeps them out of the way of real words, so user queries need
no column filter (a `{title …} :` filter makes FTS5 decode every position
list and doubled the time of common-word searches). The filter terms, though,
are always limited to the `facets` column (`facet_match`): a digest whose
summary says `zzzcode zzzt7 zzzm202502` must not pass the filters. A facet
token occurs once per paper, so its position lists are one entry each and the
column filter costs next to nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable

PREFIX = "zzz"
CODE = PREFIX + "code"


COLUMN = "facets"  # the full-text index's column that holds the tokens (migration 001)


def facet_match(*tokens: str) -> str:
    """An FTS5 expression true when the paper's own facets hold any of `tokens`, never its text."""
    if not tokens:
        raise ValueError("facet_match needs at least one token")
    return f"{COLUMN} : (" + " OR ".join(f'"{token}"' for token in tokens) + ")"


def tag_token(tag_id: int) -> str:
    return f"{PREFIX}t{tag_id:d}"


def day_tokens(day: dt.date) -> list[str]:
    return [f"{PREFIX}d{day:%Y%m%d}", f"{PREFIX}m{day:%Y%m}", f"{PREFIX}y{day:%Y}"]


def paper_facets(tag_ids: Iterable[int], has_code: bool, days: Iterable[str]) -> str:
    """The facets text of a paper: its tags, whether it has code, and its ISO appearance days."""
    tokens = {tag_token(tag_id) for tag_id in tag_ids}
    if has_code:
        tokens.add(CODE)
    for day in days:
        tokens.update(_iso_day_tokens(day))
    return " ".join(sorted(tokens))


@functools.lru_cache(maxsize=4096)
def _iso_day_tokens(day: str) -> tuple[str, ...]:
    """day_tokens of an ISO day, cached: ingest asks for the same few days again and again."""
    return tuple(day_tokens(dt.date.fromisoformat(day)))


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def date_range_tokens(start: dt.date, end: dt.date) -> list[str]:
    """The fewest day/month/year tokens covering [start, end] exactly (at most ~90 for any range)."""
    tokens, day = [], start
    while day <= end:
        year_token, month_token, day_token = day_tokens(day)[::-1]
        if day.month == 1 and day.day == 1 and dt.date(day.year, 12, 31) <= end:
            tokens.append(year_token)
            day = dt.date(day.year + 1, 1, 1)
        elif day.day == 1 and _month_end(day) <= end:
            tokens.append(month_token)
            day = _month_end(day) + dt.timedelta(days=1)
        else:
            tokens.append(day_token)
            day += dt.timedelta(days=1)
    return tokens
