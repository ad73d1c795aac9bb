-- Forum channels: as migrations/sqlite/006_forum_channels.sql.
ALTER TABLE digest_channels ADD COLUMN forum INTEGER NOT NULL DEFAULT 0 CHECK (forum IN (0, 1));
ALTER TABLE digest_channels ADD COLUMN create_forum_tags INTEGER NOT NULL DEFAULT 0
    CHECK (create_forum_tags IN (0, 1));
ALTER TABLE deliveries ADD COLUMN post_tags TEXT;
ALTER TABLE deliveries ADD COLUMN post_requested_at TEXT;
