-- Daily digest delivery: which channels asked for the digest, and a ledger of what was posted.
-- The ledger is what makes each day's digest appear exactly once per channel: a delivery's
-- messages are planned (rendered and stored) before the first one is sent, every accepted message
-- is recorded at once, and each carries a nonce Discord uses to drop a repeated send.
-- Ids are Discord snowflakes; times are UTC ISO text; days are 'YYYY-MM-DD'.

CREATE TABLE digest_channels (
    channel_id      INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    post_time       TEXT NOT NULL CHECK (post_time GLOB '[0-2][0-9]:[0-5][0-9]'),  -- local 'HH:MM'
    timezone        TEXT NOT NULL,                    -- IANA name, e.g. 'Europe/Paris'
    tags            TEXT NOT NULL DEFAULT '[]',       -- JSON list of tag names; [] = every paper
    style           TEXT NOT NULL DEFAULT 'compact' CHECK (style IN ('compact', 'thread')),
    empty_day_note  INTEGER NOT NULL DEFAULT 0 CHECK (empty_day_note IN (0, 1)),
    set_up_by       INTEGER,                          -- user id: told by DM if the channel breaks
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    broken_reason   TEXT,                             -- set on 403/404: deliveries stop until re-saved
    broken_notified INTEGER NOT NULL DEFAULT 0 CHECK (broken_notified IN (0, 1)),
    last_error      TEXT,                             -- the last transient failure, cleared on success
    last_error_at   TEXT
);
CREATE INDEX digest_channels_by_guild ON digest_channels (guild_id);

-- One row per (channel, day) ever handled. AUTOINCREMENT: ids (and so nonces) are never reused,
-- even after a channel's rows were deleted, so a new delivery cannot collide with an old nonce.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id  INTEGER NOT NULL REFERENCES digest_channels (channel_id) ON DELETE CASCADE,
    day         TEXT NOT NULL,
    late        INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'skipped')),
    reason      TEXT,                                 -- why it was skipped
    thread_id   INTEGER,                              -- 'thread' style, once the thread exists
    planned_at  TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (channel_id, day)
);
CREATE INDEX deliveries_pending ON deliveries (day, id) WHERE status = 'pending';

-- The planned messages of a delivery, in posting order, exactly as they will be sent.
CREATE TABLE delivery_messages (
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    payload     TEXT NOT NULL,                        -- JSON from bot.render.payload_to_dict
    nonce       TEXT NOT NULL UNIQUE CHECK (length(nonce) BETWEEN 1 AND 25),
    in_thread   INTEGER NOT NULL DEFAULT 0 CHECK (in_thread IN (0, 1)),
    message_id  INTEGER,                              -- set once Discord accepted the message
    sent_at     TEXT,
    PRIMARY KEY (delivery_id, position)
) WITHOUT ROWID;
