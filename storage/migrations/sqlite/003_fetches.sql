-- The fetch log: what the daily fetch job got for each (source, day, kind of file), so admins can
-- see why a digest is late and the scheduler can tell "no digest today" from "still trying".
-- One row per (source, day, kind), updated on every attempt. Days are 'YYYY-MM-DD'; times UTC ISO.

CREATE TABLE fetches (
    source           TEXT NOT NULL,                 -- the configured source's name, e.g. 'timlrx'
    day              TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('markdown', 'json', 'folder')),
    status           TEXT NOT NULL CHECK (status IN ('ingested', 'missing', 'failed', 'waiting')),
    detail           TEXT NOT NULL DEFAULT '',      -- what the last attempt found, in words
    attempts         INTEGER NOT NULL CHECK (attempts >= 1),
    first_attempt_at TEXT NOT NULL,
    last_attempt_at  TEXT NOT NULL,
    PRIMARY KEY (source, day, kind)
) WITHOUT ROWID;
CREATE INDEX fetches_by_day ON fetches (day);
CREATE INDEX fetches_by_last_attempt ON fetches (last_attempt_at);
