-- Prefix indexes for the full-text index, so `generat*` reads one prepared list of papers instead
-- of merging the lists of every word starting with "gener" (at a million papers: 50-250 ms each
-- time the query runs, ~1 ms with the index). Lengths 3 to 8 cover what search_query makes of
-- typical prefixes (it also searches the stem: generat* -> gener*); a longer prefix still works,
-- unindexed. Costs: the index grows about 4x and ingest writes each word's prefixes too.
--
-- papers_fts is rebuilt exactly as in 001 (same columns, external content, tokenizer); the
-- triggers on papers name it and need no change.

DROP TABLE papers_fts;

CREATE VIRTUAL TABLE papers_fts USING fts5 (
    title, authors, summary, tags, facets,
    content = 'paper_search_text',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2',
    prefix = '3 4 5 6 7 8'
);

INSERT INTO papers_fts (rowid, title, authors, summary, tags, facets)
SELECT id, title, authors, summary, tags, facets FROM paper_search_text;
