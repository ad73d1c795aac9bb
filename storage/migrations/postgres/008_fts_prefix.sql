-- SQLite's 008 adds FTS5 prefix indexes so `generat*` is one list read. PostgreSQL's GIN index
-- over the search vector (001) answers prefix queries (`'generat':*`) from the index as it is:
-- nothing to add. The version exists so both backends number the same schema alike.
SELECT 1;
