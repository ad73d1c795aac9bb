-- Text that is sorted (tag names, sources, kinds) sorts bytewise (COLLATE "C") as on SQLite,
-- whatever the database's locale: an English-locale database would otherwise order "a" and "B"
-- differently from SQLite. Libraries made before this migration get it here; the columns' indexes
-- are rebuilt with the new collation.
ALTER TABLE digests ALTER COLUMN source TYPE TEXT COLLATE "C";
ALTER TABLE appearances ALTER COLUMN source TYPE TEXT COLLATE "C";
ALTER TABLE tags ALTER COLUMN norm TYPE TEXT COLLATE "C", ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE fetches ALTER COLUMN source TYPE TEXT COLLATE "C", ALTER COLUMN kind TYPE TEXT COLLATE "C";
ALTER TABLE subscriptions ALTER COLUMN kind TYPE TEXT COLLATE "C", ALTER COLUMN norm TYPE TEXT COLLATE "C";
ALTER TABLE tag_roles ALTER COLUMN tag_name TYPE TEXT COLLATE "C";
