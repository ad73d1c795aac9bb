-- PostgreSQL's 014 makes sorted names compare bytewise, as SQLite's TEXT always does: nothing to
-- change here; the number is kept so both backends' migrations count alike.
SELECT 1;
