-- As migrations/sqlite/009_roundup_skips.sql.
ALTER TABLE roundups ADD COLUMN skipped_reason TEXT;
