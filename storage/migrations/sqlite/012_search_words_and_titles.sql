-- The library's own words, for "Did you mean …?" (storage/vocabulary.py): every word of every
-- title and tag, as written (lower case, no diacritics, not stemmed), with the papers holding it.
--
-- An FTS5 index with detail=none and columnsize=0 keeps only which papers hold a word (no
-- positions, columns or lengths): about 18 bytes a paper. Its fts5vocab table lists the words in order, so the words near a typo are
-- one range read. External content over a view, kept in step by triggers like papers_fts (001).

CREATE VIEW paper_vocabulary_text AS
SELECT id, title || ' ' || tag_text AS words FROM papers;

CREATE VIRTUAL TABLE search_words USING fts5 (
    words,
    content = 'paper_vocabulary_text',
    content_rowid = 'id',
    detail = none,
    columnsize = 0,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE VIRTUAL TABLE search_words_vocab USING fts5vocab (search_words, 'row');

CREATE TRIGGER search_words_after_insert AFTER INSERT ON papers BEGIN
    INSERT INTO search_words (rowid, words) VALUES (new.id, new.title || ' ' || new.tag_text);
END;

CREATE TRIGGER search_words_after_delete AFTER DELETE ON papers BEGIN
    INSERT INTO search_words (search_words, rowid, words) VALUES ('delete', old.id, old.title || ' ' || old.tag_text);
END;

CREATE TRIGGER search_words_after_update AFTER UPDATE OF title, tag_text ON papers
WHEN old.title IS NOT new.title OR old.tag_text IS NOT new.tag_text
BEGIN
    INSERT INTO search_words (search_words, rowid, words) VALUES ('delete', old.id, old.title || ' ' || old.tag_text);
    INSERT INTO search_words (rowid, words) VALUES (new.id, new.title || ' ' || new.tag_text);
END;

INSERT INTO search_words (search_words) VALUES ('rebuild');

-- Titles alone, for search's title matches (storage/search.py): every paper with all the query's
-- words in its title, newest first, from short posting lists with no positions to read
-- (detail=column: columns, no positions). The filter tokens sit in their own `facets` column, as in
-- papers_fts, so a filter matches only Paperbot's own tokens, never a title that spells one.
-- Same tokenizer as papers_fts, so a word means the same in both.

CREATE VIEW paper_title_text AS
SELECT id, title, facet_text AS facets FROM papers;

CREATE VIRTUAL TABLE papers_titles USING fts5 (
    title,
    facets,
    content = 'paper_title_text',
    content_rowid = 'id',
    detail = column,
    columnsize = 0,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER papers_titles_after_insert AFTER INSERT ON papers BEGIN
    INSERT INTO papers_titles (rowid, title, facets) VALUES (new.id, new.title, new.facet_text);
END;

CREATE TRIGGER papers_titles_after_delete AFTER DELETE ON papers BEGIN
    INSERT INTO papers_titles (papers_titles, rowid, title, facets) VALUES ('delete', old.id, old.title, old.facet_text);
END;

CREATE TRIGGER papers_titles_after_update AFTER UPDATE OF title, facet_text ON papers
WHEN old.title IS NOT new.title OR old.facet_text IS NOT new.facet_text
BEGIN
    INSERT INTO papers_titles (papers_titles, rowid, title, facets) VALUES ('delete', old.id, old.title, old.facet_text);
    INSERT INTO papers_titles (rowid, title, facets) VALUES (new.id, new.title, new.facet_text);
END;

INSERT INTO papers_titles (papers_titles) VALUES ('rebuild');
