-- Forum channels: a digest channel may be a forum, where each day is one post (a thread whose
-- first message is the day's header) with one message per paper, carrying the forum's tags
-- that match the day's papers.
-- The style CHECK of digest_channels cannot be widened without rebuilding the table, and
-- dropping it would cascade to the ledger (foreign keys are enforced), so a forum is a flag:
-- its row keeps style 'thread' (the same plan: a header, then one message per paper) and
-- forum = 1. storage.channels presents such a row as style 'forum'.
ALTER TABLE digest_channels ADD COLUMN forum INTEGER NOT NULL DEFAULT 0 CHECK (forum IN (0, 1));
-- The admin allowed Paperbot to create forum tags for the papers' tags (Manage Channels).
ALTER TABLE digest_channels ADD COLUMN create_forum_tags INTEGER NOT NULL DEFAULT 0
    CHECK (create_forum_tags IN (0, 1));

-- A forum delivery's plan also holds the day's tags, most frequent first (JSON list of display
-- names), and when the post was first requested: a post requested but not recorded (a crash
-- in between) is looked up among the forum's active posts before another one is created.
-- The post's thread id goes to thread_id; its first message's id to delivery_messages position 0.
ALTER TABLE deliveries ADD COLUMN post_tags TEXT;
ALTER TABLE deliveries ADD COLUMN post_requested_at TEXT;
