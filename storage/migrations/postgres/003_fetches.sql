-- The fetch log: as migrations/sqlite/003_fetches.sql.

CREATE TABLE fetches (
    source           TEXT NOT NULL,
    day              TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('markdown', 'json', 'folder')),
    status           TEXT NOT NULL CHECK (status IN ('ingested', 'missing', 'failed', 'waiting')),
    detail           TEXT NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL CHECK (attempts >= 1),
    first_attempt_at TEXT NOT NULL,
    last_attempt_at  TEXT NOT NULL,
    PRIMARY KEY (source, day, kind)
);
CREATE INDEX fetches_by_day ON fetches (day);
CREATE INDEX fetches_by_last_attempt ON fetches (last_attempt_at);
