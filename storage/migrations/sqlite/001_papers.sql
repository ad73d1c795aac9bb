-- The library: one row per arXiv paper, every digest appearance, what each source said
-- where it differs from what is shown, normalized tags, and a full-text index over title,
-- authors, summary and tags (plus filter tokens).
-- Dates are ISO 'YYYY-MM-DD' text; lists and maps are compact JSON text.
-- How the shown row is merged from the sources' versions: see storage/ingest.py.

CREATE TABLE papers (
    id               INTEGER PRIMARY KEY,
    arxiv_id         TEXT NOT NULL UNIQUE,
    title            TEXT NOT NULL,
    url              TEXT NOT NULL,
    authors          TEXT NOT NULL DEFAULT '[]',   -- JSON list of names
    summary          TEXT NOT NULL DEFAULT '',
    github_urls      TEXT NOT NULL DEFAULT '[]',   -- JSON list; '[]' means no code
    huggingface_urls TEXT NOT NULL DEFAULT '[]',   -- JSON list
    extra            TEXT NOT NULL DEFAULT '{}',   -- JSON object: unknown digest columns
    tag_text         TEXT NOT NULL DEFAULT '',     -- display names of all tags, ', '-joined: feeds the FTS index
    facet_text       TEXT NOT NULL DEFAULT '',     -- filter tokens for the FTS index, see storage/facets.py
    first_day        TEXT,                         -- NULL once every appearance was withdrawn
    last_day         TEXT,
    updated_at       TEXT NOT NULL                 -- UTC ISO timestamp of the last content change
);
CREATE INDEX papers_by_last_day ON papers (last_day);

CREATE TABLE digests (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,                   -- the producer, e.g. 'timlrx'
    day           TEXT NOT NULL,
    origin        TEXT NOT NULL,                   -- path or URL the digest was read from
    sha256        TEXT NOT NULL,                   -- of the digest file's bytes
    ingested_at   TEXT NOT NULL,
    paper_count   INTEGER NOT NULL,
    problem_count INTEGER NOT NULL,
    UNIQUE (source, day)
);

-- Every time a source listed a paper on a day, in the digest's own order.
CREATE TABLE appearances (
    paper_id     INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    day          TEXT NOT NULL,
    source       TEXT NOT NULL,
    position     INTEGER NOT NULL,
    content_hash INTEGER NOT NULL,                 -- 64-bit hash of what the source said (fields, tag norms):
                                                   -- the same version again is recognised and writes nothing
    PRIMARY KEY (paper_id, day, source),
    FOREIGN KEY (source, day) REFERENCES digests (source, day) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX appearances_by_day ON appearances (day, source, position);

-- What a source said about a paper on a day, kept so the shown row can be merged again
-- when a version is corrected or withdrawn, but only where it differs from what is shown:
-- NULL = the papers row's value (for tag_ids: the source's set in paper_tags), and a
-- version equal to the shown one in every column has no row. In practice the rows hold
-- the other sources' summaries and link lists. A rowid table: summaries are ~1 KB.
CREATE TABLE paper_versions (
    paper_id         INTEGER NOT NULL,
    day              TEXT NOT NULL,
    source           TEXT NOT NULL,
    title            TEXT,
    url              TEXT,
    authors          TEXT,
    summary          TEXT,
    github_urls      TEXT,
    huggingface_urls TEXT,
    extra            TEXT,
    tag_ids          TEXT,                         -- JSON list of tag ids, ascending
    PRIMARY KEY (paper_id, day, source),
    FOREIGN KEY (paper_id, day, source) REFERENCES appearances (paper_id, day, source) ON DELETE CASCADE
);

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,
    norm        TEXT NOT NULL UNIQUE,              -- identity: NFKC, casefolded, letters and digits only
    name        TEXT NOT NULL,                     -- display form as first seen
    paper_count INTEGER NOT NULL DEFAULT 0         -- papers carrying the tag, kept by ingest
);

-- A paper's tags are the union over its sources; a source's set is that of its latest version with tags.
CREATE TABLE paper_tags (
    paper_id INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    tag_id   INTEGER NOT NULL REFERENCES tags (id),
    source   TEXT NOT NULL,
    PRIMARY KEY (paper_id, tag_id, source)
) WITHOUT ROWID;
CREATE INDEX paper_tags_by_tag ON paper_tags (tag_id, paper_id);

-- What the full-text index sees: authors as 'A, B' rather than JSON, so snippets read well.
CREATE VIEW paper_search_text AS
SELECT id,
       title,
       (SELECT group_concat(value, ', ') FROM json_each(papers.authors)) AS authors,
       summary,
       tag_text AS tags,
       facet_text AS facets
FROM papers;

-- External-content FTS5: the index holds no second copy of the text; snippet() reads the view.
-- porter: 'models' finds 'model'; remove_diacritics 2: 'aimee' finds 'Aimée'.
-- `facets` holds filter tokens (tag ids, has-code, appearance days/months/years) so search
-- filters are doclist intersections inside FTS5 rather than a row lookup per match.
CREATE VIRTUAL TABLE papers_fts USING fts5 (
    title, authors, summary, tags, facets,
    content = 'paper_search_text',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- The triggers index exactly what the view shows (same expressions), keeping the
-- external-content index consistent; 'delete' must be given the old indexed values.
CREATE TRIGGER papers_fts_after_insert AFTER INSERT ON papers BEGIN
    INSERT INTO papers_fts (rowid, title, authors, summary, tags, facets)
    VALUES (new.id, new.title,
            (SELECT group_concat(value, ', ') FROM json_each(new.authors)),
            new.summary, new.tag_text, new.facet_text);
END;

CREATE TRIGGER papers_fts_after_delete AFTER DELETE ON papers BEGIN
    INSERT INTO papers_fts (papers_fts, rowid, title, authors, summary, tags, facets)
    VALUES ('delete', old.id, old.title,
            (SELECT group_concat(value, ', ') FROM json_each(old.authors)),
            old.summary, old.tag_text, old.facet_text);
END;

-- Only text changes re-index: moving last_day or updated_at leaves the index alone.
CREATE TRIGGER papers_fts_after_update AFTER UPDATE OF title, authors, summary, tag_text, facet_text ON papers
WHEN old.title IS NOT new.title OR old.authors IS NOT new.authors
  OR old.summary IS NOT new.summary OR old.tag_text IS NOT new.tag_text
  OR old.facet_text IS NOT new.facet_text
BEGIN
    INSERT INTO papers_fts (papers_fts, rowid, title, authors, summary, tags, facets)
    VALUES ('delete', old.id, old.title,
            (SELECT group_concat(value, ', ') FROM json_each(old.authors)),
            old.summary, old.tag_text, old.facet_text);
    INSERT INTO papers_fts (rowid, title, authors, summary, tags, facets)
    VALUES (new.id, new.title,
            (SELECT group_concat(value, ', ') FROM json_each(new.authors)),
            new.summary, new.tag_text, new.facet_text);
END;
