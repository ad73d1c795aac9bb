"""Turning what a person types into a safe FTS5 MATCH expression.

FTS5's query language treats `"`, `*`, `(`, `:`, `^`, `-`, `NEAR`, `AND`…
as syntax, so raw user text either crashes the query or means something the
user did not intend. Here every word or phrase becomes a quoted FTS5 string
(inside which nothing is syntax), and only the few operators people use in
web searches are honoured:

    cats dogs        both words (AND)
    "exact phrase"   the words next to each other (an unclosed quote is closed)
    transform*       words starting with "transform"
    -dogs, NOT dogs  leave out papers with "dogs"
    cats OR dogs     either word; OR binds tighter than the implied AND,
                     so `llm agents OR robots` = llm AND (agents OR robots)

Everything else — NEAR, parentheses, `title:`, `^`, `+`, lone punctuation —
is plain text. Pure Python, no SQL: the store runs the result.

The same syntax compiles to an FTS5 MATCH expression (SQLite, `to_fts_query`) or to the text of
a PostgreSQL tsquery (`to_tsquery_text`, read with `to_tsquery('paperbot_search', …)`, migration
postgres/001), where every word is a quoted lexeme (inside which nothing is syntax) that
PostgreSQL folds and stems as it did the papers' text: `"a b"` is `'a' <-> 'b'`, `gen*` is
`'gen':*`, `-x` is `!'x'`, OR is `|` and the implied AND is `&`.

Cost limits, so one person's search cannot stall everyone's (issue #12): a
prefix needs at least MIN_PREFIX letters, because the index only keeps lists
for prefixes of 3 to 8 characters (migration 008) and a shorter one merges the
list of every word it starts; and a search holds at most MAX_TERMS words,
counting every word of a phrase. What still costs too much is stopped by the
store's time budget (`QueryTooBroad`, see storage/db.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_TERMS = 32
MIN_PREFIX = 3  # the shortest prefix the index holds (migration 008: prefix = '3 4 5 6 7 8')
# A word as FTS5's unicode61 tokenizer sees it: a run of letters and digits.
_WORD = re.compile(r"[^\W_]+")

_TOKEN = re.compile(r'(?P<neg>-*)"(?P<phrase>[^"]*)(?:"|$)(?P<star>\*?)|(?P<word>[^\s"]+)')

# Word endings the porter stemmer strips (see migration 001's tokenizer). A prefix that ends
# part-way into one of them ("generat*") would miss the stems in the index ("gener"), so the
# prefix is also searched with that partial ending cut off.
_PORTER_SUFFIXES = (
    "ational tional enci anci izer bli alli entli eli ousli ization ation ator alism iveness "
    "fulness ousness aliti iviti biliti logi icate ative alize iciti ical ful ness al ance ence "
    "er ic able ible ant ement ment ent ion ou ism ate iti ous ive ize ing ed es ies s e y li"
).split()
_MIN_STEM = 4


class QueryError(ValueError):
    """A search that cannot be run; the message is meant for the person who typed it."""


class QueryTooBroad(QueryError):
    """A search (or any library read) that ran out of its time budget and was stopped by SQLite."""

    DEFAULT = "That search is too broad to answer quickly; add a word, or use longer prefixes."

    def __init__(self, message: str = DEFAULT) -> None:
        super().__init__(message)


@dataclass
class _Term:
    text: str
    negated: bool = False
    prefix: bool = False

    def searchable(self) -> bool:
        return any(char.isalnum() for char in self.text)

    def words(self) -> int:
        """How many index words the term stands for (a phrase: each of its words)."""
        return max(1, len(_WORD.findall(self.text)))

    def check_prefix(self) -> None:
        """A prefix shorter than the index's shortest would merge the lists of every word it starts."""
        if not self.prefix:
            return
        last = _WORD.findall(self.text)[-1]
        if len(last) < MIN_PREFIX:
            raise QueryError(
                f"“{last}*” is too short a prefix: give at least {MIN_PREFIX} letters before the *, "
                "or search for the whole word."
            )

    def to_fts(self) -> str:
        quoted = '"' + self.text.replace('"', '""') + '"'
        if not self.prefix:
            return quoted
        shorter = _stem_safe_prefix(self.text)
        return f'({quoted}* OR "{shorter}"*)' if shorter else f"{quoted}*"

    def to_tsquery(self) -> str:
        """The term as tsquery text: its words as a phrase of quoted lexemes, the last one a prefix for `word*`."""
        pieces = [_lexeme(piece) for piece in self.text.split() if any(char.isalnum() for char in piece)]
        if self.prefix:
            shorter = _stem_safe_prefix(self.text)
            pieces[-1] = f"({pieces[-1]}:* | {_lexeme(shorter)}:*)" if shorter else f"{pieces[-1]}:*"
        return "(" + " <-> ".join(pieces) + ")"


def _lexeme(text: str) -> str:
    """A quoted tsquery lexeme: nothing inside is syntax; PostgreSQL parses, folds and stems it."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _stem_safe_prefix(prefix: str) -> str | None:
    """The prefix with a partial porter suffix cut off (generat -> gener), or None if none applies."""
    word = prefix.lower()
    if not (word.isascii() and word.isalpha()):
        return None
    for cut in range(len(word) - _MIN_STEM, 0, -1):
        tail = word[-cut:]
        if any(suffix.startswith(tail) for suffix in _PORTER_SUFFIXES):
            return word[:-cut]
    return None


def _clean(user_text: str) -> str:
    """Control characters and lone surrogates become spaces: they cannot be bound or searched."""
    return "".join(" " if unicodedata.category(char) in ("Cc", "Cs") else char for char in user_text)


def _lex(user_text: str) -> list[_Term | str]:
    """Terms and the operator words OR / AND / NOT, in order."""
    items: list[_Term | str] = []
    for match in _TOKEN.finditer(_clean(user_text)):
        if match.group("word") is None:
            negated = bool(match.group("neg"))
            items.append(_Term(match.group("phrase"), negated=negated, prefix=bool(match.group("star"))))
            continue
        word = match.group("word")
        if word in ("OR", "AND", "NOT"):
            items.append(word)
            continue
        body = word.lstrip("-")
        negated = bool(body) and body != word
        prefix = body.endswith("*")
        items.append(_Term(body.rstrip("*"), negated=negated, prefix=prefix))
    return items


def _group_terms(items: list[_Term | str]) -> tuple[list[list[_Term]], list[_Term]]:
    """Positive terms grouped by OR (groups are ANDed), and the terms to leave out."""
    groups: list[list[_Term]] = []
    excluded: list[_Term] = []
    joining = negating = False
    for item in items:
        if isinstance(item, str):
            joining = item == "OR" and bool(groups)
            negating = item == "NOT"
            continue
        if not item.searchable():
            continue
        if item.negated or negating:
            excluded.append(item)
        elif joining:
            groups[-1].append(item)
        else:
            groups.append([item])
        joining = negating = False
    return groups, excluded


def _checked_terms(user_text: str) -> tuple[list[list[_Term]], list[_Term]]:
    """The query's groups and excluded terms, or QueryError if it is too big, too broad or empty."""
    groups, excluded = _group_terms(_lex(user_text))
    terms = [term for group in groups for term in group] + excluded
    if sum(term.words() for term in terms) > MAX_TERMS:
        raise QueryError(f"Your search has too many words; use at most {MAX_TERMS} (each word of a phrase counts).")
    for term in terms:
        term.check_prefix()
    if not groups:
        if excluded:
            raise QueryError("Your search only says which words to leave out; add a word to look for.")
        raise QueryError("Your search has no words to look for.")
    return groups, excluded


def to_fts_query(user_text: str) -> str:
    """A safe FTS5 MATCH expression for `user_text`, or QueryError if it has nothing to look for."""
    groups, excluded = _checked_terms(user_text)
    wanted = " AND ".join(
        group[0].to_fts() if len(group) == 1 else "(" + " OR ".join(term.to_fts() for term in group) + ")"
        for group in groups
    )
    if not excluded:
        return wanted
    return f"({wanted}) NOT ({' OR '.join(term.to_fts() for term in excluded)})"


def to_tsquery_text(user_text: str, *, wanted_only: bool = False) -> str:
    """The tsquery text (PostgreSQL) for `user_text`, or QueryError as `to_fts_query`.

    `wanted_only`: without the words to leave out (search's title matches leave them out
    anywhere, with the whole query).
    """
    groups, excluded = _checked_terms(user_text)
    wanted = " & ".join(
        group[0].to_tsquery() if len(group) == 1 else "(" + " | ".join(t.to_tsquery() for t in group) + ")"
        for group in groups
    )
    if not excluded or wanted_only:
        return wanted
    return f"({wanted}) & !({' | '.join(term.to_tsquery() for term in excluded)})"
