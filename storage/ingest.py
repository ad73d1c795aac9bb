"""Ingesting one digest into the library: one transaction, idempotent, batched.

The digest is compared with what the library holds in a handful of reads,
then everything that changed is written with one executemany per table.
Rows that did not change are not written at all.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiosqlite

from storage._rows import fetch_all, id_list, to_json
from storage.facets import paper_facets
from storage.models import Digest, IngestResult, Paper
from storage.tags import display_tag, normalize_tag

CONTENT_FIELDS = ("title", "url", "authors", "summary", "github_urls", "huggingface_urls", "extra")
EMPTY_VALUES = {"", "[]", "{}"}


async def ingest_digest(
    conn: aiosqlite.Connection, digest: Digest, *, source: str, origin: str, sha256: str
) -> IngestResult:
    """Store one day's digest from `source` and report what it changed.

    Counting: `new` = arXiv ids the library did not have; `updated` = known
    papers whose stored content (title, url, authors, summary, links, extra or
    their tag set as `get_paper` shows it) changed; `unchanged` = the rest. A
    known paper seen on a new day or from a new source is `unchanged` unless
    it brought new content; its appearance is recorded all the same.

    Merging: a digest at least as recent as the paper's last appearance
    overwrites its fields and this source's tags; an older one (a back-fill)
    only fills what is empty; an empty value never erases a known one.

    Re-ingesting a (source, date) replaces that digest: papers no longer in it
    lose that appearance (and this source's tags once the source lists them
    nowhere); the papers themselves stay. The same digest twice changes nothing.
    Duplicate arXiv ids within a digest: the first listing counts.

    Runs as one IMMEDIATE transaction, rolled back on any error.
    """
    if digest.date is None:
        raise ValueError(
            f"The digest from {origin!r} has no date, so its papers cannot be filed under a day; "
            "nothing was stored."
        )
    papers = _first_listings(digest.papers)
    job = _DigestIngest(conn, day=digest.date.isoformat(), source=source, now=_utc_now())
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await job.save_digest_row(origin, sha256, len(papers), len(digest.problems))
        result = await job.ingest_papers(papers)
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
            await conn.execute("ROLLBACK")
        raise
    return result


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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
        "github_urls": to_json(paper.github_urls),
        "huggingface_urls": to_json(paper.huggingface_urls),
        "extra": to_json(paper.extra),
    }


def merge_content(stored: dict[str, str], incoming: dict[str, str], *, fresh: bool) -> dict[str, str]:
    """Fresh digests win, older ones only fill gaps, and empty values never erase."""
    return {
        name: incoming[name]
        if incoming[name] not in EMPTY_VALUES and (fresh or stored[name] in EMPTY_VALUES)
        else stored[name]
        for name in CONTENT_FIELDS
    }


@dataclass
class _StoredPaper:
    id: int
    content: dict[str, str]
    facet_text: str
    first_day: str | None
    last_day: str | None
    days: set[str] = field(default_factory=set)
    tags_by_source: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def tag_union(self) -> set[int]:
        return set().union(*self.tags_by_source.values())


@dataclass
class _Writes:
    """Rows to write, collected so each table gets one executemany."""

    new_papers: list[tuple] = field(default_factory=list)
    changed_papers: list[tuple] = field(default_factory=list)
    tags_added: list[tuple] = field(default_factory=list)
    tags_removed: list[tuple] = field(default_factory=list)
    appearances: list[tuple] = field(default_factory=list)
    tag_count_deltas: Counter = field(default_factory=Counter)


class _DigestIngest:
    def __init__(self, conn: aiosqlite.Connection, *, day: str, source: str, now: str) -> None:
        self.conn, self.day, self.source, self.now = conn, day, source, now
        self.tag_names: dict[int, tuple[str, str]] = {}  # id -> (norm, display name)

    async def save_digest_row(self, origin: str, sha256: str, paper_count: int, problem_count: int) -> None:
        """Upsert the digest's own row; an identical re-ingest writes nothing (ingested_at keeps the first time)."""
        await self.conn.execute(
            """INSERT INTO digests (source, day, origin, sha256, ingested_at, paper_count, problem_count)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (source, day) DO UPDATE SET
                   origin = excluded.origin, sha256 = excluded.sha256, ingested_at = excluded.ingested_at,
                   paper_count = excluded.paper_count, problem_count = excluded.problem_count
               WHERE origin IS NOT excluded.origin OR sha256 IS NOT excluded.sha256
                  OR paper_count IS NOT excluded.paper_count OR problem_count IS NOT excluded.problem_count""",
            (self.source, self.day, origin, sha256, self.now, paper_count, problem_count),
        )

    async def ingest_papers(self, papers: list[Paper]) -> IngestResult:
        stored = await self.load_stored([paper.arxiv_id for paper in papers])
        paper_tags = [_tag_norms(paper) for paper in papers]
        tag_ids = await self.resolve_tags(paper_tags, stored)
        next_id = await self.next_paper_id()
        writes, result = _Writes(), IngestResult()
        for position, (paper, norms) in enumerate(zip(papers, paper_tags)):
            incoming_tags = [tag_ids[norm] for norm in norms]
            existing = stored.get(paper.arxiv_id)
            if existing is None:
                self.plan_new_paper(writes, next_id, paper, incoming_tags)
                paper_id, next_id = next_id, next_id + 1
                result.new += 1
            else:
                paper_id = existing.id
                if self.plan_known_paper(writes, existing, paper, incoming_tags):
                    result.updated += 1
                else:
                    result.unchanged += 1
            writes.appearances.append((paper_id, self.day, self.source, position))
        await self.write(writes)
        await self.withdraw_missing_appearances([row[0] for row in writes.appearances])
        return result

    async def load_stored(self, arxiv_ids: list[str]) -> dict[str, _StoredPaper]:
        rows = await fetch_all(
            self.conn,
            """SELECT id, arxiv_id, title, url, authors, summary, github_urls, huggingface_urls, extra,
                      facet_text, first_day, last_day
               FROM papers WHERE arxiv_id IN (SELECT value FROM json_each(?))""",
            (id_list(arxiv_ids),),
        )
        stored = {row[1]: _StoredPaper(row[0], dict(zip(CONTENT_FIELDS, row[2:9])), *row[9:12]) for row in rows}
        by_id = {paper.id: paper for paper in stored.values()}
        for paper_id, tag, source in await fetch_all(
            self.conn,
            "SELECT paper_id, tag_id, source FROM paper_tags WHERE paper_id IN (SELECT value FROM json_each(?))",
            (id_list(by_id),),
        ):
            by_id[paper_id].tags_by_source[source].add(tag)
        for paper_id, day in await fetch_all(
            self.conn,
            "SELECT paper_id, day FROM appearances WHERE paper_id IN (SELECT value FROM json_each(?))",
            (id_list(by_id),),
        ):
            by_id[paper_id].days.add(day)
        return stored

    async def resolve_tags(self, paper_tags: list[dict[str, str]], stored: dict[str, _StoredPaper]) -> dict[str, int]:
        """Ids for the digest's tags, creating unknown ones; also loads names needed for tag_text."""
        wanted: dict[str, str] = {}
        for norms in paper_tags:
            for norm, name in norms.items():
                wanted.setdefault(norm, name)
        known_ids = set().union(*(paper.tag_union() for paper in stored.values()))
        for tag_id, norm, name in await fetch_all(
            self.conn,
            """SELECT id, norm, name FROM tags WHERE norm IN (SELECT value FROM json_each(?))
               OR id IN (SELECT value FROM json_each(?))""",
            (id_list(wanted), id_list(known_ids)),
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

    def plan_new_paper(self, writes: _Writes, paper_id: int, paper: Paper, tags: list[int]) -> None:
        content = _content_values(paper)
        facets = paper_facets(tags, bool(paper.github_urls), [self.day])
        writes.new_papers.append(
            (paper_id, paper.arxiv_id, *content.values(), self.tag_text(set(tags)), facets, self.day, self.day, self.now)
        )
        writes.tags_added += [(paper_id, tag, self.source) for tag in tags]
        writes.tag_count_deltas.update(tags)

    def plan_known_paper(self, writes: _Writes, stored: _StoredPaper, paper: Paper, tags: list[int]) -> bool:
        """Plan the writes for a known paper; True if its content changed."""
        fresh = stored.last_day is None or self.day >= stored.last_day
        content = merge_content(stored.content, _content_values(paper), fresh=fresh)
        before = stored.tag_union()
        mine = stored.tags_by_source.get(self.source, set())
        new_mine = set(tags) if tags and (fresh or not mine) else mine
        after = set().union(new_mine, *(t for s, t in stored.tags_by_source.items() if s != self.source))
        writes.tags_added += [(stored.id, tag, self.source) for tag in new_mine - mine]
        writes.tags_removed += [(stored.id, tag, self.source) for tag in mine - new_mine]
        writes.tag_count_deltas.update(after - before)
        writes.tag_count_deltas.subtract(before - after)
        changed = content != stored.content or after != before
        days = stored.days | {self.day}
        facets = paper_facets(after, content["github_urls"] != "[]", days)
        if changed or facets != stored.facet_text or (min(days), max(days)) != (stored.first_day, stored.last_day):
            writes.changed_papers.append(
                (*content.values(), self.tag_text(after), facets, min(days), max(days), changed, self.now, stored.id)
            )
        return changed

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
            "DELETE FROM paper_tags WHERE paper_id = ? AND tag_id = ? AND source = ?", writes.tags_removed
        )
        await conn.executemany("INSERT INTO paper_tags (paper_id, tag_id, source) VALUES (?, ?, ?)", writes.tags_added)
        await conn.executemany(
            "UPDATE tags SET paper_count = paper_count + ? WHERE id = ?",
            [(delta, tag) for tag, delta in writes.tag_count_deltas.items() if delta],
        )
        await conn.executemany(
            """INSERT INTO appearances (paper_id, day, source, position) VALUES (?, ?, ?, ?)
               ON CONFLICT DO UPDATE SET position = excluded.position WHERE position IS NOT excluded.position""",
            writes.appearances,
        )

    async def withdraw_missing_appearances(self, listed_ids: list[int]) -> None:
        """A corrected digest dropped some papers: remove those appearances, and this source's
        tags for papers the source now lists nowhere; then refresh what derives from them."""
        gone = [
            row[0]
            for row in await fetch_all(
                self.conn,
                """DELETE FROM appearances WHERE source = ? AND day = ?
                   AND paper_id NOT IN (SELECT value FROM json_each(?)) RETURNING paper_id""",
                (self.source, self.day, id_list(listed_ids)),
            )
        ]
        if not gone:
            return
        dropped_tags = await fetch_all(
            self.conn,
            """DELETE FROM paper_tags WHERE source = ? AND paper_id IN (SELECT value FROM json_each(?))
               AND NOT EXISTS (SELECT 1 FROM appearances a
                               WHERE a.paper_id = paper_tags.paper_id AND a.source = paper_tags.source)
               RETURNING tag_id""",
            (self.source, id_list(gone)),
        )
        await self.conn.execute(
            """UPDATE tags SET paper_count =
                   (SELECT count(DISTINCT paper_id) FROM paper_tags WHERE tag_id = tags.id)
               WHERE id IN (SELECT value FROM json_each(?))""",
            (id_list({row[0] for row in dropped_tags}),),
        )
        await self.refresh_derived_columns(gone)

    async def refresh_derived_columns(self, paper_ids: list[int]) -> None:
        """Recompute first/last day, tag text and facets of papers from their rows (rare path)."""
        ids = id_list(paper_ids)
        tags: dict[int, set[int]] = defaultdict(set)
        days: dict[int, set[str]] = defaultdict(set)
        for paper_id, tag_id, norm, name in await fetch_all(
            self.conn,
            """SELECT pt.paper_id, t.id, t.norm, t.name FROM paper_tags pt JOIN tags t ON t.id = pt.tag_id
               WHERE pt.paper_id IN (SELECT value FROM json_each(?))""",
            (ids,),
        ):
            tags[paper_id].add(tag_id)
            self.tag_names[tag_id] = (norm, name)
        for paper_id, day in await fetch_all(
            self.conn, "SELECT paper_id, day FROM appearances WHERE paper_id IN (SELECT value FROM json_each(?))", (ids,)
        ):
            days[paper_id].add(day)
        code = await fetch_all(
            self.conn, "SELECT id, github_urls <> '[]' FROM papers WHERE id IN (SELECT value FROM json_each(?))", (ids,)
        )
        await self.conn.executemany(
            "UPDATE papers SET first_day = ?, last_day = ?, tag_text = ?, facet_text = ? WHERE id = ?",
            [
                (
                    min(days[paper_id], default=None),
                    max(days[paper_id], default=None),
                    self.tag_text(tags[paper_id]),
                    paper_facets(tags[paper_id], bool(has_code), days[paper_id]),
                    paper_id,
                )
                for paper_id, has_code in code
            ],
        )


def _tag_norms(paper: Paper) -> dict[str, str]:
    """The paper's tags as {identity: display form}, first spelling wins, blanks dropped."""
    norms: dict[str, str] = {}
    for name in paper.tags:
        shown = display_tag(name)
        if shown:
            norms.setdefault(normalize_tag(shown), shown)
    return norms
