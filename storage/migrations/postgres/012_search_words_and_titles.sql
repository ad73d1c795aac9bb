-- SQLite's 012 adds the library's vocabulary (for "Did you mean …?", storage/vocabulary.py) and
-- a title-only index; so does this one.
--
-- The vocabulary: every word of every title and tag, as written (lower case, no diacritics, not
-- stemmed: the `paperbot_words` configuration of 001), with how many papers hold it, kept in step
-- by a trigger. Words sort bytewise (COLLATE "C") so the words starting with a letter are one range.

CREATE TABLE search_words (
    word   TEXT COLLATE "C" PRIMARY KEY,
    papers BIGINT NOT NULL
);

CREATE FUNCTION paperbot_words(title TEXT, tags TEXT) RETURNS SETOF TEXT
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT lexeme FROM unnest(to_tsvector('paperbot_words', title || ' ' || tags))
$$;

CREATE FUNCTION papers_search_words() RETURNS TRIGGER
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND new.title IS NOT DISTINCT FROM old.title AND new.tag_text IS NOT DISTINCT FROM old.tag_text THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE search_words SET papers = papers - 1 WHERE word IN (SELECT paperbot_words(old.title, old.tag_text));
        DELETE FROM search_words WHERE papers <= 0 AND word IN (SELECT paperbot_words(old.title, old.tag_text));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO search_words (word, papers) SELECT paperbot_words(new.title, new.tag_text), 1
        ON CONFLICT (word) DO UPDATE SET papers = search_words.papers + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER papers_search_words AFTER INSERT OR DELETE OR UPDATE OF title, tag_text ON papers
FOR EACH ROW EXECUTE FUNCTION papers_search_words();

INSERT INTO search_words (word, papers)
SELECT word, count(*) FROM papers, paperbot_words(papers.title, papers.tag_text) AS word GROUP BY word;

-- Titles alone, for search's title matches (storage/search.py): a small tsvector of the title
-- (same configuration as the search vector, so a word means the same in both) with its own GIN
-- index. The search vector's weight A says the same, but reading it means decompressing the
-- whole paper's vector (~2 KB, out of line) for every paper the walk passes.

ALTER TABLE papers ADD COLUMN title_vector TSVECTOR NOT NULL DEFAULT '';

CREATE FUNCTION papers_title_index() RETURNS TRIGGER
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' OR new.title IS DISTINCT FROM old.title THEN
        new.title_vector := to_tsvector('paperbot_search', new.title);
    END IF;
    RETURN new;
END
$$;

CREATE TRIGGER papers_title_index BEFORE INSERT OR UPDATE OF title ON papers
FOR EACH ROW EXECUTE FUNCTION papers_title_index();

UPDATE papers SET title_vector = to_tsvector('paperbot_search', title);
CREATE INDEX papers_title_search ON papers USING gin (title_vector);
