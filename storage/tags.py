"""Tags: one identity per spelling variant, counted, looked up and suggested.

A tag's identity keeps only its letters and digits, casefolded: "Computer
Vision", "computer  vision" and "COMPUTER VISION" are one tag, and so are
"Multi-Modal" and "Multimodal", "Text-to-Video" and "Text to Video". The
library keeps the display form it saw first. Lookups (`resolve_tag`,
`tag_id`), autocomplete (`suggest_tags`) and "did you mean" (`closest_tags`)
all compare identities, and search filters use the tag's id, so every way of
writing a tag reaches the same papers. `tags.paper_count` is kept by
ingest so listing and autocomplete never have to count paper_tags rows.
Normalizing is cached: digests repeat the same few hundred tags endlessly.
"""

from __future__ import annotations

import difflib
import functools
import unicodedata

import aiosqlite

from storage.db import dialect
from storage.models import TagCount


@functools.lru_cache(maxsize=8192)
def display_tag(text: str) -> str:
    """How a tag is shown: the text as given, with runs of whitespace made single spaces."""
    return " ".join(text.split())


@functools.lru_cache(maxsize=8192)
def fold_tag(text: str) -> str:
    """Letters, digits and combining marks of NFKC-casefolded `text`; "" if it has none."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(char for char in folded if unicodedata.category(char)[0] in "LNM")


@functools.lru_cache(maxsize=8192)
def normalize_tag(text: str) -> str:
    """A tag's identity: NFKC, casefolded, letters and digits only (see fold_tag) — so variants meet.

    A tag with no letter or digit at all ("+", "—") keeps its casefolded symbols
    rather than becoming the empty identity every such tag would share.
    """
    return fold_tag(text) or display_tag(unicodedata.normalize("NFKC", text).casefold())


async def tag_counts(conn: aiosqlite.Connection) -> list[TagCount]:
    """Every tag in use, most used first (ties alphabetical)."""
    sql = "SELECT name, paper_count FROM tags WHERE paper_count > 0 ORDER BY paper_count DESC, norm"
    async with conn.execute(sql) as cursor:
        return [TagCount(name=row[0], count=row[1]) for row in await cursor.fetchall()]


async def suggest_tags(conn: aiosqlite.Connection, text: str, limit: int = 25) -> list[TagCount]:
    """Tags containing `text` (ignoring case, spaces and punctuation), most used first: for autocomplete.

    "multi modal", "multi-mod" and "MULTIMODAL" all find "Multi-Modal". Text with
    no letter or digit suggests every tag. A scan of the small tags table with
    instr() (strpos() on PostgreSQL) — no LIKE wildcards to escape, and a few thousand tags take well
    under a millisecond.
    """
    contains = "strpos(norm, ?) > 0" if dialect(conn) == "postgresql" else "instr(norm, ?) > 0"
    sql = f"""SELECT name, paper_count FROM tags
              WHERE paper_count > 0 AND {contains}
              ORDER BY paper_count DESC, norm LIMIT ?"""
    async with conn.execute(sql, (fold_tag(text), max(0, limit))) as cursor:
        return [TagCount(name=row[0], count=row[1]) for row in await cursor.fetchall()]


async def resolve_tag(conn: aiosqlite.Connection, text: str) -> str | None:
    """The display name of the tag `text` names (any case, spacing or punctuation), or None if unknown."""
    sql = "SELECT name FROM tags WHERE norm = ? AND paper_count > 0"
    async with conn.execute(sql, (normalize_tag(text),)) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def closest_tags(conn: aiosqlite.Connection, text: str, n: int = 3) -> list[str]:
    """Display names of up to `n` tags spelled like `text`, for "did you mean …?"."""
    async with conn.execute("SELECT norm, name FROM tags WHERE paper_count > 0") as cursor:
        names = {row[0]: row[1] for row in await cursor.fetchall()}
    matches = difflib.get_close_matches(normalize_tag(text), list(names), n=n, cutoff=0.6)
    return [names[norm] for norm in matches]


async def tag_id(conn: aiosqlite.Connection, text: str) -> int | None:
    """The id of the tag `text` names, for filters; None if no such tag exists."""
    async with conn.execute("SELECT id FROM tags WHERE norm = ?", (normalize_tag(text),)) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None
