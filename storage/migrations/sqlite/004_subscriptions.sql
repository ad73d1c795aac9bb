-- Personal subscriptions: members follow tags and keywords and get one direct message per day
-- listing that day's matching papers. A DM ledger (like deliveries / delivery_messages) makes
-- each (user, day) message set planned once and sent exactly once across crashes and restarts.
-- Deleting a subscriber row deletes every row about the user (ON DELETE CASCADE).
-- Ids are Discord snowflakes; times are UTC ISO text; days are 'YYYY-MM-DD'.

CREATE TABLE subscribers (
    user_id       INTEGER PRIMARY KEY,
    paused        INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    dm_closed_at  TEXT,                               -- Discord refused a DM (50007): no more sends until cleared
    created_at    TEXT NOT NULL
);

CREATE TABLE subscriptions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES subscribers (user_id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('tag', 'keyword')),
    value      TEXT NOT NULL,                         -- the tag's display name, or the keyword as typed
    norm       TEXT NOT NULL,                         -- identity: normalize_tag / casefolded single-spaced keyword
    guild_id   INTEGER,                               -- the server it was made in; NULL in a DM
    created_at TEXT NOT NULL,
    UNIQUE (user_id, kind, norm)
);
CREATE INDEX subscriptions_by_kind ON subscriptions (kind, norm);

-- One row per (user, day) ever handled. AUTOINCREMENT: ids (and so nonces) are never reused.
CREATE TABLE dm_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES subscribers (user_id) ON DELETE CASCADE,
    day         TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'skipped')),
    reason      TEXT,                                 -- why it was skipped
    planned_at  TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (user_id, day)
);
CREATE INDEX dm_deliveries_pending ON dm_deliveries (day, id) WHERE status = 'pending';

CREATE TABLE dm_messages (
    delivery_id INTEGER NOT NULL REFERENCES dm_deliveries (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    payload     TEXT NOT NULL,                        -- JSON from bot.render.payload_to_dict
    nonce       TEXT NOT NULL UNIQUE CHECK (length(nonce) BETWEEN 1 AND 25),
    message_id  INTEGER,                              -- set once Discord accepted the message
    sent_at     TEXT,
    PRIMARY KEY (delivery_id, position)
) WITHOUT ROWID;
