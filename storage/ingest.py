"""Ingesting one digest into the library: one transaction, idempotent, order-independent, batched.

Several sources publish the same paper, each in its own words. Every
appearance (a source listing a paper on a day) records a hash of what that
source said there, fields and tag identities, so a digest given before is
recognised paper by paper and writes nothing, whatever came in between.

What the library shows is a function of the set of versions its sources gave,
never of the order they arrived in:

* versions rank most recent day first; on one day the richer one (longest
  summary) first; then by source name, alphabetically;
* title, url, authors, summary and extra come from the best-ranked version
  whose value is not empty, so an empty cell never hides a known value;
* github_urls and huggingface_urls are the union over all versions, in rank
  order (the best version's own order first), each link once;
* each source contributes the tags of its most recent version that has any;
  a paper's tags are the union over its sources.

So that a corrected or withdrawn version can be replaced by the next best, the
versions are kept in `paper_versions`, but only where they differ from what is
shown: a NULL column equals the shown value (for tag_ids, the source's set in
paper_tags) and a version equal in every column has no row. A paper pays for
its sources' disagreements only, in practice the other sources' summaries.

The digest is compared with what the library holds in a handful of reads, then
everything that changed is written with one executemany per table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiosqlite

from storage.db import transaction
from storage._rows import any_of, fetch_all, to_json, utc_now_text
from storage.facets import paper_facets
from storage.models import Digest, IngestResult, Paper
from storage.tags import display_tag, normalize_tag

CONTENT_FIELDS = ("title", "url", "authors", "summary", "github_urls", "huggingface_urls", "extra")
BEST_VALUE_FIELDS = ("title", "url", "authors", "summary", "extra")  # from the best version that has one
LINK_FIELDS = ("github_urls", "huggingface_urls")  # the union over versions
VERSION_COLUMNS = (*CONTENT_FIELDS, "tag_ids")
EMPTY_VALUES = {"", "[]", "{}"}
NO_TAGS: frozenset[int] = frozenset()

Key = tuple[str, str]  # an appearance of a paper: (day, source)


async def ingest_digest(
    conn: aiosqlite.Connection, digest: Digest, *, source: str, origin: str, sha256: str
) -> IngestResult:
    """Store one day's digest from `source` and report what it changed.

    Counting: `new` = arXiv ids the library did not have; `updated` = known
    papers whose shown content (title, url, authors, summary, links, extra or
    their tag set as `get_paper` shows it) changed; `unchanged` = the rest. A
    known paper seen on a new day or from a new source is `unchanged` unless
    it changes what is shown; its appearance is recorded all the same.

    Merging: see the module docstring; the result depends on the versions the
    sources gave, not on the order they were ingested in.

    Re-ingesting a (source, date) replaces that digest: papers no longer in it
    lose that appearance and what the source said there; the papers themselves
    stay. A digest whose papers the source already gave just so changes nothing
    and writes nothing. Duplicate arXiv ids within a digest: the first listing counts.

    Runs as one IMMEDIATE transaction, rolled back on any error.
    """
    if digest.date is None:
        raise ValueError(
            f"The digest from {origin!r} has no date, so its papers cannot be filed under a day; "
            "nothing was stored."
        )
    papers = _first_listings(digest.papers)
    job = _DigestIngest(conn, day=digest.date.isoformat(), source=source, now=utc_now_text())
    async with transaction(conn):
        await job.save_digest_row(origin, sha256, len(papers), len(digest.problems))
        return await job.ingest_papers(papers)



YIELD_EVERY = 500  # papers between two turns of the event loop for everyone else


async def _let_others_run(count: int) -> None:
    """Every YIELD_EVERY papers, give the event loop back: a 95,000-paper digest is seconds of Python
    work, and members' commands (whose reads run on reader connections) must not wait for all of it."""
    if count and count % YIELD_EVERY == 0:
        await asyncio.sleep(0)


def _first_listings(papers: list[Paper]) -> list[Paper]:
    seen: dict[str, Paper] = {}
    for paper in papers:
        seen.setdefault(paper.arxiv_id, paper)
    return list(seen.values())


def _content_values(paper: Paper) -> dict[str, str]:
    """A paper's fields as stored text, for comparing with the row and writing it."""
    return {
        "title": paper.title,
        "url": paper.url,
        "authors": to_json(paper.authors),
        "summary": paper.summary,
        "github_urls": to_json(list(dict.fromkeys(paper.github_urls))),  # each link once, as in a union
        "huggingface_urls": to_json(list(dict.fromkeys(paper.huggingface_urls))),
        "extra": to_json(paper.extra),
    }


def version_hash(content: dict[str, str], tag_norms: Iterable[str]) -> int:
    """What a source said about a paper, as a signed 64-bit integer: its fields and tag identities."""
    text = "\x1f".join(content[name] for name in CONTENT_FIELDS) + "\x1e" + "\x1f".join(sorted(tag_norms))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


# --- the merge: a pure function of the versions ---------------------------------------------------


@dataclass
class Version:
    """What one source said about a paper on one day: stored field text and tag ids."""

    content: dict[str, str]
    tags: frozenset[int] = NO_TAGS


def ranked(versions: dict[Key, Version]) -> list[Key]:
    """Best first: most recent day, then longest summary, then source name (alphabetical)."""
    by_source = sorted(versions, key=lambda key: key[1])
    return sorted(by_source, key=lambda key: (key[0], len(versions[key].content["summary"])), reverse=True)


def shown_content(versions: dict[Key, Version]) -> dict[str, str]:
    """What the library shows for a paper with these (at least one) versions."""
    if len(versions) == 1:  # the common case, and its links hold each link once already
        return dict(next(iter(versions.values())).content)
    order = [versions[key].content for key in ranked(versions)]
    shown = {
        name: next((content[name] for content in order if content[name] not in EMPTY_VALUES), order[0][name])
        for name in BEST_VALUE_FIELDS
    }
    for name in LINK_FIELDS:
        lists = [content[name] for content in order if content[name] != "[]"]
        shown[name] = lists[0] if len(lists) == 1 else _link_union(lists)
    return {name: shown[name] for name in CONTENT_FIELDS}


def _link_union(json_lists: list[str]) -> str:
    return to_json(list(dict.fromkeys(link for text in json_lists for link in json.loads(text))))


def source_tags(versions: dict[Key, Version]) -> dict[str, frozenset[int]]:
    """Each source's tags: those of its most recent version that has any (sources without tags left out)."""
    tags: dict[str, frozenset[int]] = {}
    for day, source in sorted(versions, reverse=True):
        if not tags.get(source):
            tags[source] = versions[day, source].tags
    return {source: ids for source, ids in tags.items() if ids}


def encode_version(version: Version, shown: dict[str, str], tags: frozenset[int]) -> tuple | None:
    """A paper_versions row (VERSION_COLUMNS) relative to what is shown; None when nothing differs."""
    row = tuple(None if version.content[name] == shown[name] else version.content[name] for name in CONTENT_FIELDS)
    row += (None if version.tags == tags else to_json(sorted(version.tags)),)
    return None if all(value is None for value in row) else row


def decode_version(row: tuple | None, shown: dict[str, str], tags: frozenset[int]) -> Version:
    """The inverse of encode_version, given the same shown content and source tags."""
    if row is None:
        return Version(shown, tags)  # shared, never mutated
    content = {name: shown[name] if value is None else value for name, value in zip(CONTENT_FIELDS, row)}
    return Version(content, tags if row[-1] is None else frozenset(json.loads(row[-1])))


# --- planning and writing -------------------------------------------------------------------------


@dataclass
class _StoredPaper:
    id: int
    content: dict[str, str]
    facet_text: str
    first_day: str | None
    last_day: str | None
    appearances: dict[Key, tuple[int, int]] = field(default_factory=dict)  # -> (content hash, position)
    tags_by_source: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    version_rows: dict[Key, tuple] = field(default_factory=dict)  # loaded for papers being re-merged

    def tag_union(self) -> set[int]:
        return set().union(*self.tags_by_source.values())

    def versions(self) -> dict[Key, Version]:
        """Every version the paper's appearances hold, rebuilt from the rows and what is shown."""
        tags = {source: frozenset(ids) for source, ids in self.tags_by_source.items()}
        return {
            key: decode_version(self.version_rows.get(key), self.content, tags.get(key[1], NO_TAGS))
            for key in self.appearances
        }


@dataclass
class _Incoming:
    """One listing of the digest, ready to compare and merge."""

    paper: Paper
    position: int
    tag_norms: dict[str, str]  # identity -> display form
    content: dict[str, str]
    hash: int
    stored: _StoredPaper | None = None

    def is_news(self, key: Key) -> bool:
        """A known paper this source did not list on this day, or listed in other words."""
        return self.stored is not None and self.stored.appearances.get(key, (None,))[0] != self.hash


@dataclass
class _Writes:
    """Rows to write, collected so each table gets one executemany."""

    new_papers: list[tuple] = field(default_factory=list)
    changed_papers: list[tuple] = field(default_factory=list)
    appearances: list[tuple] = field(default_factory=list)
    appearances_removed: list[tuple] = field(default_factory=list)
    versions: list[tuple] = field(default_factory=list)
    versions_removed: list[tuple] = field(default_factory=list)
    tags_added: list[tuple] = field(default_factory=list)
    tags_removed: list[tuple] = field(default_factory=list)
    tag_count_deltas: Counter = field(default_factory=Counter)


class _DigestIngest:
    def __init__(self, conn: aiosqlite.Connection, *, day: str, source: str, now: str) -> None:
        self.conn, self.day, self.source, self.now = conn, day, source, now
        self.key: Key = (day, source)
        self.tag_names: dict[int, tuple[str, str]] = {}  # id -> (norm, display name)

    async def save_digest_row(self, origin: str, sha256: str, paper_count: int, problem_count: int) -> None:
        """Upsert the digest's own row; an identical re-ingest writes nothing (ingested_at keeps the first time)."""
        await self.conn.execute(
            """INSERT INTO digests (source, day, origin, sha256, ingested_at, paper_count, problem_count)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (source, day) DO UPDATE SET
                   origin = excluded.origin, sha256 = excluded.sha256, ingested_at = excluded.ingested_at,
                   paper_count = excluded.paper_count, problem_count = excluded.problem_count
               WHERE digests.origin IS DISTINCT FROM excluded.origin OR digests.sha256 IS DISTINCT FROM excluded.sha256
                  OR digests.paper_count IS DISTINCT FROM excluded.paper_count
                  OR digests.problem_count IS DISTINCT FROM excluded.problem_count""",
            (self.source, self.day, origin, sha256, self.now, paper_count, problem_count),
        )

    async def ingest_papers(self, papers: list[Paper]) -> IngestResult:
        listings = []
        for position, paper in enumerate(papers):
            await _let_others_run(position)
            norms, content = _tag_norms(paper), _content_values(paper)
            listings.append(_Incoming(paper, position, norms, content, version_hash(content, norms)))
        stored = await self.load_stored("arxiv_id", [paper.arxiv_id for paper in papers])
        for listing in listings:
            listing.stored = stored.get(listing.paper.arxiv_id)
        withdrawn = await self.load_withdrawn([paper.id for paper in stored.values()])
        # Only papers whose version here is new or different, or withdrawn, are merged again.
        merging = [listing.stored for listing in listings if listing.is_news(self.key)] + withdrawn
        await self.load_version_rows(merging)
        tag_ids = await self.resolve_tags(listings, merging)
        next_id = await self.next_paper_id()

        writes, result = _Writes(), IngestResult()
        for count, listing in enumerate(listings):
            await _let_others_run(count)
            known = listing.stored
            if known is None:
                self.plan_new_paper(writes, next_id, listing, tag_ids)
                next_id += 1
                result.new += 1
            elif listing.is_news(self.key):
                changed = self.plan_merge(writes, known, listing, tag_ids)
                result.updated += changed
                result.unchanged += not changed
            else:  # the source said just this before: at most its position in the digest moved
                if known.appearances[self.key][1] != listing.position:
                    writes.appearances.append((known.id, self.day, self.source, listing.position, listing.hash))
                result.unchanged += 1
        for known in withdrawn:
            self.plan_merge(writes, known, None, tag_ids)
        await self.write(writes)
        return result

    async def load_stored(self, column: str, values: list) -> dict[str, _StoredPaper]:
        """Papers (by arXiv id) whose `column` is one of `values`, with their appearances and tags."""
        wanted, param = any_of(self.conn, column, values)
        rows = await fetch_all(
            self.conn,
            f"""SELECT id, arxiv_id, title, url, authors, summary, github_urls, huggingface_urls, extra,
                       facet_text, first_day, last_day
                FROM papers WHERE {wanted}""",
            (param,),
        )
        stored = {row[1]: _StoredPaper(row[0], dict(zip(CONTENT_FIELDS, row[2:9])), *row[9:12]) for row in rows}
        by_id = {paper.id: paper for paper in stored.values()}
        listed, ids = any_of(self.conn, "paper_id", by_id)
        for paper_id, tag, source in await fetch_all(
            self.conn, f"SELECT paper_id, tag_id, source FROM paper_tags WHERE {listed}", (ids,)
        ):
            by_id[paper_id].tags_by_source[source].add(tag)
        for paper_id, day, source, content_hash, position in await fetch_all(
            self.conn,
            f"SELECT paper_id, day, source, content_hash, position FROM appearances WHERE {listed}",
            (ids,),
        ):
            by_id[paper_id].appearances[day, source] = (content_hash, position)
        return stored

    async def load_withdrawn(self, listed_ids: list[int]) -> list[_StoredPaper]:
        """Papers this (source, day) listed before but no longer does: a corrected digest dropped them."""
        listed, ids = any_of(self.conn, "paper_id", listed_ids)
        rows = await fetch_all(
            self.conn,
            f"SELECT paper_id FROM appearances WHERE day = ? AND source = ? AND NOT ({listed})",
            (self.day, self.source, ids),
        )
        if not rows:
            return []
        return list((await self.load_stored("id", [row[0] for row in rows])).values())

    async def load_version_rows(self, papers: list[_StoredPaper]) -> None:
        """What the sources said where it differs from what is shown, for the papers to merge again."""
        by_id = {paper.id: paper for paper in papers}
        listed, ids = any_of(self.conn, "paper_id", by_id)
        for row in await fetch_all(
            self.conn,
            f"SELECT paper_id, day, source, {', '.join(VERSION_COLUMNS)} FROM paper_versions WHERE {listed}",
            (ids,),
        ):
            by_id[row[0]].version_rows[row[1], row[2]] = tuple(row[3:])

    async def resolve_tags(self, listings: list[_Incoming], merging: list[_StoredPaper]) -> dict[str, int]:
        """Ids for the digest's tags, creating unknown ones; also loads the names tag_text needs."""
        wanted: dict[str, str] = {}
        for listing in listings:
            for norm, name in listing.tag_norms.items():
                wanted.setdefault(norm, name)
        known_ids: set[int] = set()
        for paper in merging:
            known_ids |= paper.tag_union()
            for row in paper.version_rows.values():
                if row[-1] is not None:
                    known_ids.update(json.loads(row[-1]))
        by_norm, norms = any_of(self.conn, "norm", wanted)
        by_id, ids = any_of(self.conn, "id", known_ids)
        for tag_id, norm, name in await fetch_all(
            self.conn, f"SELECT id, norm, name FROM tags WHERE {by_norm} OR {by_id}", (norms, ids)
        ):
            self.tag_names[tag_id] = (norm, name)
        ids = {norm: tag_id for tag_id, (norm, _) in self.tag_names.items()}
        missing = [norm for norm in wanted if norm not in ids]
        if missing:
            first = await self.scalar("SELECT coalesce(max(id), 0) + 1 FROM tags")
            created = [(first + offset, norm, wanted[norm]) for offset, norm in enumerate(missing)]
            await self.conn.executemany("INSERT INTO tags (id, norm, name) VALUES (?, ?, ?)", created)
            for tag_id, norm, name in created:
                self.tag_names[tag_id], ids[norm] = (norm, name), tag_id
        return ids

    async def next_paper_id(self) -> int:
        """Ids are handed out here (we hold the write lock), sparing a read-back after inserting."""
        return await self.scalar("SELECT coalesce(max(id), 0) + 1 FROM papers")

    async def scalar(self, sql: str) -> int:
        return (await fetch_all(self.conn, sql))[0][0]

    def tag_text(self, tag_ids: set[int]) -> str:
        """What the search index reads for a paper's tags: display names in a stable order."""
        return ", ".join(name for _, name in sorted(self.tag_names[tag_id] for tag_id in tag_ids))

    def plan_new_paper(self, writes: _Writes, paper_id: int, listing: _Incoming, tag_ids: dict[str, int]) -> None:
        """A paper's first version is what is shown, so it needs no paper_versions row."""
        tags = {tag_ids[norm] for norm in listing.tag_norms}
        content = listing.content
        facets = paper_facets(tags, content["github_urls"] != "[]", [self.day])
        writes.new_papers.append(
            (paper_id, listing.paper.arxiv_id, *content.values(), self.tag_text(tags), facets,
             self.day, self.day, self.now)
        )
        writes.appearances.append((paper_id, self.day, self.source, listing.position, listing.hash))
        writes.tags_added += [(paper_id, tag, self.source) for tag in tags]
        writes.tag_count_deltas.update(tags)

    def plan_merge(
        self, writes: _Writes, stored: _StoredPaper, listing: _Incoming | None, tag_ids: dict[str, int]
    ) -> bool:
        """Merge this digest's version of a known paper (None: the digest dropped it) with its others.

        Every version is rebuilt, the shown content and tags recomputed, and only the
        rows that differ from before are written. True if what is shown changed.
        """
        versions = stored.versions()
        if listing is None:
            del versions[self.key]
            writes.appearances_removed.append((stored.id, self.day, self.source))  # its version row cascades
        else:
            versions[self.key] = Version(listing.content, frozenset(tag_ids[norm] for norm in listing.tag_norms))
            writes.appearances.append((stored.id, self.day, self.source, listing.position, listing.hash))
        content = shown_content(versions) if versions else stored.content  # papers outlive their appearances
        tags = source_tags(versions)
        self.plan_tags(writes, stored, tags)
        for key, version in versions.items():
            row = encode_version(version, content, tags.get(key[1], NO_TAGS))
            if row != stored.version_rows.get(key):
                if row is None:
                    writes.versions_removed.append((stored.id, *key))
                else:
                    writes.versions.append((stored.id, *key, *row))
        before, after = stored.tag_union(), set().union(*tags.values())
        days = {day for day, _ in versions}
        first_day, last_day = (min(days), max(days)) if days else (None, None)
        facets = paper_facets(after, content["github_urls"] != "[]", days)
        changed = content != stored.content or after != before
        if changed or facets != stored.facet_text or (first_day, last_day) != (stored.first_day, stored.last_day):
            writes.changed_papers.append(
                (*content.values(), self.tag_text(after), facets, first_day, last_day, changed, self.now, stored.id)
            )
        return changed

    def plan_tags(self, writes: _Writes, stored: _StoredPaper, tags: dict[str, frozenset[int]]) -> None:
        for source in stored.tags_by_source.keys() | tags.keys():
            old, new = stored.tags_by_source.get(source, set()), tags.get(source, NO_TAGS)
            writes.tags_added += [(stored.id, tag, source) for tag in new - old]
            writes.tags_removed += [(stored.id, tag, source) for tag in old - new]
        before, after = stored.tag_union(), set().union(*tags.values())
        writes.tag_count_deltas.update(after - before)
        writes.tag_count_deltas.subtract(before - after)

    async def write(self, writes: _Writes) -> None:
        conn = self.conn
        await conn.executemany(
            """INSERT INTO papers (id, arxiv_id, title, url, authors, summary, github_urls, huggingface_urls,
                                   extra, tag_text, facet_text, first_day, last_day, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            writes.new_papers,
        )
        await conn.executemany(
            """UPDATE papers SET title = ?, url = ?, authors = ?, summary = ?, github_urls = ?,
                   huggingface_urls = ?, extra = ?, tag_text = ?, facet_text = ?, first_day = ?, last_day = ?,
                   updated_at = CASE WHEN ? THEN ? ELSE updated_at END
               WHERE id = ?""",
            writes.changed_papers,
        )
        await conn.executemany(
            "DELETE FROM appearances WHERE paper_id = ? AND day = ? AND source = ?", writes.appearances_removed
        )
        await conn.executemany(
            """INSERT INTO appearances (paper_id, day, source, position, content_hash) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (paper_id, day, source) DO UPDATE SET position = excluded.position, content_hash = excluded.content_hash""",
            writes.appearances,
        )
        await conn.executemany(
            "DELETE FROM paper_versions WHERE paper_id = ? AND day = ? AND source = ?", writes.versions_removed
        )
        await conn.executemany(
            f"""INSERT INTO paper_versions (paper_id, day, source, {', '.join(VERSION_COLUMNS)})
                VALUES (?, ?, ?, {', '.join('?' for _ in VERSION_COLUMNS)})
                ON CONFLICT (paper_id, day, source) DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in VERSION_COLUMNS)}""",
            writes.versions,
        )
        await conn.executemany(
            "DELETE FROM paper_tags WHERE paper_id = ? AND tag_id = ? AND source = ?", writes.tags_removed
        )
        await conn.executemany("INSERT INTO paper_tags (paper_id, tag_id, source) VALUES (?, ?, ?)", writes.tags_added)
        await conn.executemany(
            "UPDATE tags SET paper_count = paper_count + ? WHERE id = ?",
            [(delta, tag) for tag, delta in writes.tag_count_deltas.items() if delta],
        )


def _tag_norms(paper: Paper) -> dict[str, str]:
    """The paper's tags as {identity: display form}, first spelling wins, blanks dropped."""
    norms: dict[str, str] = {}
    for name in paper.tags:
        shown = display_tag(name)
        if shown:
            norms.setdefault(normalize_tag(shown), shown)
    return norms
