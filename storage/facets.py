"""Filter tokens stored in the full-text index's `facets` column.

Search filters (tag, has code, appearance dates) become extra MATCH terms on
this column, so FTS5 intersects posting lists instead of SQLite looking up a
row for every match — the difference between milliseconds and seconds when
a common word meets a filter in a million papers. Pure Python, no SQL.

Tokens: `t<tag id>` per tag, `code` when the paper links GitHub, and for each
appearance day `d<YYYYMMDD>`, `m<YYYYMM>`, `y<YYYY>`, so any date range is a
short OR of whole years, whole months and single days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

CODE = "code"


def tag_token(tag_id: int) -> str:
    return f"t{tag_id:d}"


def day_tokens(day: dt.date) -> list[str]:
    return [f"d{day:%Y%m%d}", f"m{day:%Y%m}", f"y{day:%Y}"]


def paper_facets(tag_ids: Iterable[int], has_code: bool, days: Iterable[str]) -> str:
    """The facets text of a paper: its tags, whether it has code, and its ISO appearance days."""
    tokens = {tag_token(tag_id) for tag_id in tag_ids}
    if has_code:
        tokens.add(CODE)
    for day in days:
        tokens.update(day_tokens(dt.date.fromisoformat(day)))
    return " ".join(sorted(tokens))


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def date_range_tokens(start: dt.date, end: dt.date) -> list[str]:
    """The fewest day/month/year tokens covering [start, end] exactly (at most ~90 for any range)."""
    tokens, day = [], start
    while day <= end:
        if day.month == 1 and day.day == 1 and dt.date(day.year, 12, 31) <= end:
            tokens.append(f"y{day:%Y}")
            day = dt.date(day.year + 1, 1, 1)
        elif day.day == 1 and _month_end(day) <= end:
            tokens.append(f"m{day:%Y%m}")
            day = _month_end(day) + dt.timedelta(days=1)
        else:
            tokens.append(f"d{day:%Y%m%d}")
            day += dt.timedelta(days=1)
    return tokens
