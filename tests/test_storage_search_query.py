"""to_fts_query / to_tsquery_text: user text in, safe FTS5 MATCH expression or PostgreSQL tsquery out
(pure Python, checked against real FTS5 and, where it answers, real PostgreSQL with the library's
text search configuration)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datetime as dt

from storage.facets import date_range_tokens, day_tokens
from storage import db
from storage.search_query import MAX_TERMS, QueryError, to_fts_query, to_tsquery_text
from storage.postgres import with_schema
from tests.services import service_url

DOCS = [
    (1, "cats and dogs"),
    (2, "cats alone"),
    (3, "dogs alone"),
    (4, "the exact phrase here"),
    (5, "phrase exact reversed"),
    (6, "generation of images"),
    (7, "transformer models"),
    (8, "title x is not a column filter"),
    (9, "near the river"),
]


class Fts5Docs:
    """An in-memory FTS5 table with the library's tokenizer, to prove expressions parse and mean what we say."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute("CREATE VIRTUAL TABLE docs USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2')")
        self.conn.executemany("INSERT INTO docs (rowid, body) VALUES (?, ?)", DOCS)

    def matches(self, user_text: str) -> set[int]:
        rows = self.conn.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (to_fts_query(user_text),))
        return {row[0] for row in rows}

    def close(self) -> None:
        self.conn.close()


class PostgresDocs:
    """The same documents as tsvectors of the library's configuration (migration postgres/001), in a schema of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        self.library = self.run(db.connect(with_schema(service_url("postgres"), self.schema)))
        self.run(self.library.execute("CREATE TABLE docs (id BIGINT PRIMARY KEY, body TSVECTOR NOT NULL)"))
        self.run(self.library.executemany(
            "INSERT INTO docs (id, body) VALUES (?, to_tsvector('paperbot_search', ?))", DOCS
        ))

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    async def _matches(self, expression: str) -> set[int]:
        rows = await self.library.execute("SELECT id FROM docs WHERE body @@ to_tsquery('paperbot_search', ?)", [expression])
        return {row[0] for row in await rows.fetchall()}

    def matches(self, user_text: str) -> set[int]:
        return self.run(self._matches(to_tsquery_text(user_text)))

    def close(self) -> None:
        self.run(self.library.execute(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.run(self.library.close())
        self.loop.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fts(request: pytest.FixtureRequest):
    """The documents on each backend: every query below must parse and mean the same on both."""
    docs = Fts5Docs() if request.param == "sqlite" else PostgresDocs()
    yield docs
    docs.close()


def matches(fts, user_text: str) -> set[int]:
    return fts.matches(user_text)


def test_bare_words_are_anded(fts):
    assert to_fts_query("cats dogs") == '"cats" AND "dogs"'
    assert matches(fts, "cats dogs") == {1}


def test_quoted_phrase_is_kept_as_phrase(fts):
    assert to_fts_query('"exact phrase"') == '"exact phrase"'
    assert matches(fts, '"exact phrase"') == {4}


def test_unbalanced_quote_is_closed(fts):
    assert to_fts_query('"exact phrase') == '"exact phrase"'
    assert matches(fts, 'cats "alone') == {2}


def test_prefix_star(fts):
    assert matches(fts, "transf*") == {7}
    assert to_fts_query("transf*").startswith('("transf"*')


def test_prefix_reaching_past_a_stem_still_matches(fts):
    """porter indexes 'generation' as 'gener'; 'generat*' must still find it."""
    assert matches(fts, "generat*") == {6}


def test_minus_and_not_exclude(fts):
    assert matches(fts, "cats -dogs") == {2}
    assert matches(fts, "cats NOT dogs") == {2}


def test_or_binds_tighter_than_the_implied_and(fts):
    assert matches(fts, "cats OR dogs") == {1, 2, 3}
    assert matches(fts, "alone cats OR dogs") == {2, 3}


def test_explicit_and_is_accepted(fts):
    assert matches(fts, "cats AND dogs") == {1}


def test_plural_finds_singular_through_porter(fts):
    assert matches(fts, "model") == {7}
    assert matches(fts, "transformers") == {7}


@pytest.mark.parametrize(
    "text",
    ['NEAR(cats dogs)', "(cats", "cats)", "title:x", "^cats", "cats + dogs", "col:cats", "cats AND", "OR cats",
     "cats OR", "cats NOT", "* cats", 'cats"', 'cats "', "cats -", "--cats dogs", "{body}: cats"],
)
def test_syntax_characters_are_plain_text(fts, text):
    matches(fts, text)  # parses; what it finds is checked below for a few


def test_column_filter_and_near_are_plain_words(fts):
    assert matches(fts, "title:x") == {8}
    assert matches(fts, "NEAR river") == {9}


@pytest.mark.parametrize("text", ["", "   ", "!!!", "()", '"', '""', "*", "-", "- -", "^ : +", "NOT", "OR AND NOT"])
def test_nothing_searchable_is_a_query_error(text):
    with pytest.raises(QueryError, match="no words to look for"):
        to_fts_query(text)


def test_only_exclusions_is_a_query_error():
    with pytest.raises(QueryError, match="leave out"):
        to_fts_query("-cats -dogs")


def test_too_many_terms_is_a_query_error():
    with pytest.raises(QueryError, match="too many words"):
        to_fts_query(" ".join(f"w{i}" for i in range(MAX_TERMS + 1)))


def test_control_characters_and_surrogates_are_dropped(fts):
    assert matches(fts, "cats\x00dogs") == {1}
    assert matches(fts, "cats \ud800") == {1, 2}


def test_query_error_is_a_value_error():
    assert issubclass(QueryError, ValueError)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_gives_a_valid_expression_or_query_error(fts, text):
    try:
        matches(fts, text)
    except QueryError:
        return


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(['"', "*", "(", ")", "-", "NEAR", "AND", "OR", "NOT", "title:", "^", ":", "+",
                                 "cats", "dogs", " ", "é", "x"]), max_size=20).map("".join))
def test_syntax_soup_gives_a_valid_expression_or_query_error(fts, text):
    try:
        matches(fts, text)
    except QueryError:
        return


# --- date filters as facet tokens (storage.facets, pure Python) -----------------------------------


def covered_days(tokens: list[str], start: dt.date, end: dt.date) -> set[dt.date]:
    """The days in a window around [start, end] whose own facet tokens meet `tokens`."""
    window = [start - dt.timedelta(days=40) + dt.timedelta(days=i) for i in range((end - start).days + 81)]
    return {day for day in window if set(day_tokens(day)) & set(tokens)}


@given(st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)), st.integers(0, 900))
def test_date_range_tokens_cover_exactly_the_range(start, length):
    end = start + dt.timedelta(days=length)
    tokens = date_range_tokens(start, end)
    assert covered_days(tokens, start, end) == {start + dt.timedelta(days=i) for i in range(length + 1)}
    assert len(tokens) <= 31 + 11 + 11 + 31 + (length // 365) + 1


def test_date_range_tokens_use_whole_months_and_years():
    assert date_range_tokens(dt.date(2024, 1, 1), dt.date(2025, 2, 2)) == [
        "zzzy2024", "zzzm202501", "zzzd20250201", "zzzd20250202"
    ]
    assert date_range_tokens(dt.date(2024, 2, 28), dt.date(2024, 3, 31)) == ["zzzd20240228", "zzzd20240229", "zzzm202403"]
    assert date_range_tokens(dt.date(2024, 5, 2), dt.date(2024, 5, 1)) == []


# -- cost limits (issue #12) --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a*", "ab*", "a* b* c* d* e* f*", "cats -ab*", '"large ab"*', "x* OR cats", "é*"])
def test_prefixes_shorter_than_the_index_are_refused(text):
    with pytest.raises(QueryError, match="too short a prefix"):
        to_fts_query(text)


@pytest.mark.parametrize("text", ["abc*", "transf*", '"large lan"*', "cats -dog*"])
def test_prefixes_the_index_holds_are_accepted(text):
    assert "*" in to_fts_query(text)


def test_every_word_of_a_phrase_counts_towards_the_cap():
    with pytest.raises(QueryError, match="too many words"):
        to_fts_query('"' + " ".join(["a"] * 100) + '"')
    with pytest.raises(QueryError, match="too many words"):
        to_fts_query('"' + " ".join(["a"] * (MAX_TERMS - 1)) + '" cats dogs')
    assert to_fts_query('"' + " ".join(["a"] * (MAX_TERMS - 1)) + '" cats')


def test_too_broad_is_a_query_error_with_advice():
    from storage.search_query import QueryTooBroad

    assert issubclass(QueryTooBroad, QueryError)
    assert "add a word" in str(QueryTooBroad())
