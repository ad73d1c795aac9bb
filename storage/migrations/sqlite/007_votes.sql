-- Votes and the weekly roundup. Members vote for posted papers with a button (one vote per member
-- per paper, taken back by clicking again); `/papers top` and the roundup rank papers by votes.
-- Ids are Discord snowflakes; times are UTC ISO text; days are 'YYYY-MM-DD'.

CREATE TABLE votes (
    paper_id INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL,
    voted_at TEXT NOT NULL,
    PRIMARY KEY (paper_id, user_id)
) WITHOUT ROWID;

-- A digest channel may also get a weekly roundup, on a local weekday and time in the channel's zone.
-- NULL weekday = no roundup. `roundup_since`: when it was turned on; no earlier roundup is owed.
ALTER TABLE digest_channels ADD COLUMN roundup_weekday INTEGER CHECK (roundup_weekday BETWEEN 0 AND 6); -- 0 = Monday
ALTER TABLE digest_channels ADD COLUMN roundup_time TEXT CHECK (roundup_time GLOB '[0-2][0-9]:[0-5][0-9]');
ALTER TABLE digest_channels ADD COLUMN roundup_since TEXT;

-- The roundup ledger, like `deliveries`: one row per (channel, week) ever planned, its single
-- message rendered and stored before it is sent, sent with a nonce derived from its id (Discord
-- drops a repeated send), and the message id recorded once Discord accepted it. `week_end`: the local day of the roundup; the week
-- is the seven days ending there. AUTOINCREMENT: ids (and so nonces) are never reused.
CREATE TABLE roundups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id INTEGER NOT NULL REFERENCES digest_channels (channel_id) ON DELETE CASCADE,
    week_end   TEXT NOT NULL,
    payload    TEXT NOT NULL,                         -- JSON from bot.render.payload_to_dict
    message_id INTEGER,
    planned_at TEXT NOT NULL,
    sent_at    TEXT,
    UNIQUE (channel_id, week_end)
);
