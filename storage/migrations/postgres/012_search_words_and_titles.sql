-- SQLite's 012 adds the library's vocabulary (for "Did you mean …?") and a title-only index.
-- On PostgreSQL: see storage/search.py and storage/vocabulary.py for what they read.
SELECT 1;
