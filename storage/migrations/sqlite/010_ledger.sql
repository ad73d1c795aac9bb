-- One delivery ledger for every message Paperbot sends on its own: channel digests (thread style
-- and forum posts included), empty-day notes, weekly roundups and subscriber DMs. Before this,
-- three ledgers (deliveries + delivery_messages, dm_deliveries + dm_messages, roundups) did the
-- same job with three vocabularies and had drifted apart.
--
-- An `outbox` row is one planned item, keyed by (kind, target, period): a channel's digest for a
-- day, a channel's roundup for a week (period = the roundup's own local day), a user's DM for a
-- day. Its messages are rendered and stored before the first is sent; each has a nonce, and once
-- Discord accepted it, its message id. Item status: 'planned' -> 'done' (every message accepted)
-- or 'skipped' (with the reason: nothing to post, Discord rejected it, the target refused it).
-- `tried_at` on a message: a send was attempted, so a later run looks in the channel's history
-- for it (by the invisible marker every ledgered message carries) before sending it again,
-- reading from `look_after`: the newest message recorded in that channel when it was first tried
-- (a later message, say the next day's digest, must not hide it).
--
-- Channel items cascade from digest_channels and DM items from subscribers, as before, so
-- `/digest remove` and `/subscriptions clear` still delete what belongs to them. What a channel
-- already got is also kept in `channel_history`, which does NOT cascade: setting a channel up
-- again after `/digest remove` never re-posts a day (or a week's roundup) it already got.
--
-- Old rows: every row of the three old ledgers moves over unchanged in meaning (pending ->
-- planned, delivered / a roundup with a message id -> done, skipped -> skipped), keeping its
-- payloads, nonces ('pb…', 'pd…', 'pbr…') and message ids; channel items also seed
-- channel_history. New items get 'po<id>.<n>' nonces, which no old nonce can equal. The old
-- tables are then dropped.
-- Also (issue #12): subscribers remember when Paperbot found they had left every server their
-- subscriptions were made in; their DMs pause until they subscribe again from a server.

CREATE TABLE outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so nonces never repeat
    kind              TEXT NOT NULL CHECK (kind IN ('digest', 'roundup', 'dm')),
    target_id         INTEGER NOT NULL,                   -- the channel (digest, roundup) or user (dm)
    channel_id        INTEGER REFERENCES digest_channels (channel_id) ON DELETE CASCADE,
    user_id           INTEGER REFERENCES subscribers (user_id) ON DELETE CASCADE,
    period            TEXT NOT NULL,                      -- 'YYYY-MM-DD': the day, or the roundup's day
    late              INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
    status            TEXT NOT NULL CHECK (status IN ('planned', 'done', 'skipped')),
    reason            TEXT,                               -- why it was skipped
    thread_id         INTEGER,                            -- thread style and forums, once the thread exists
    post_tags         TEXT,                               -- forums: JSON list of the day's tags, most frequent first
    post_requested_at TEXT,                               -- forums: the post was requested (maybe created)
    planned_at        TEXT NOT NULL,
    finished_at       TEXT,
    CHECK (target_id = coalesce(channel_id, user_id)),
    CHECK ((kind = 'dm') = (user_id IS NOT NULL AND channel_id IS NULL)),
    UNIQUE (kind, target_id, period)
);
CREATE INDEX outbox_open ON outbox (period, id) WHERE status = 'planned';
CREATE INDEX outbox_by_channel ON outbox (channel_id) WHERE channel_id IS NOT NULL;
CREATE INDEX outbox_by_user ON outbox (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE outbox_messages (
    item_id    INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    payload    TEXT NOT NULL,                             -- JSON from bot.render.payload_to_dict
    nonce      TEXT NOT NULL UNIQUE CHECK (length(nonce) BETWEEN 1 AND 25),
    in_thread  INTEGER NOT NULL DEFAULT 0 CHECK (in_thread IN (0, 1)),
    tried_at   TEXT,                                      -- first send attempt
    look_after INTEGER,                                   -- the newest message id in its channel then
    message_id INTEGER,                                   -- set once Discord accepted the message
    sent_at    TEXT,
    PRIMARY KEY (item_id, position)
) WITHOUT ROWID;

-- What each channel id already got (done or skipped), kept when the channel row is deleted.
CREATE TABLE channel_history (
    channel_id INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('digest', 'roundup')),
    period     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('done', 'skipped')),
    PRIMARY KEY (channel_id, kind, period)
) WITHOUT ROWID;

-- Old ids keep their order within each kind; the kinds are laid end to end so no two collide.
INSERT INTO outbox (id, kind, target_id, channel_id, period, late, status, reason, thread_id, post_tags,
                    post_requested_at, planned_at, finished_at)
SELECT id, 'digest', channel_id, channel_id, day, late,
       CASE status WHEN 'pending' THEN 'planned' WHEN 'delivered' THEN 'done' ELSE 'skipped' END,
       reason, thread_id, post_tags, post_requested_at, planned_at, finished_at
FROM deliveries;
INSERT INTO outbox_messages (item_id, position, payload, nonce, in_thread, tried_at, message_id, sent_at)
SELECT delivery_id, position, payload, nonce, in_thread, sent_at, message_id, sent_at FROM delivery_messages;

INSERT INTO outbox (id, kind, target_id, user_id, period, status, reason, planned_at, finished_at)
SELECT id + (SELECT coalesce(max(id), 0) FROM outbox), 'dm', user_id, user_id, day,
       CASE status WHEN 'pending' THEN 'planned' WHEN 'delivered' THEN 'done' ELSE 'skipped' END,
       reason, planned_at, finished_at
FROM dm_deliveries ORDER BY id;
INSERT INTO outbox_messages (item_id, position, payload, nonce, in_thread, tried_at, message_id, sent_at)
SELECT o.id, m.position, m.payload, m.nonce, 0, m.sent_at, m.message_id, m.sent_at
FROM dm_messages m JOIN dm_deliveries d ON d.id = m.delivery_id
JOIN outbox o ON o.kind = 'dm' AND o.target_id = d.user_id AND o.period = d.day;

INSERT INTO outbox (id, kind, target_id, channel_id, period, status, reason, planned_at, finished_at)
SELECT id + (SELECT coalesce(max(id), 0) FROM outbox), 'roundup', channel_id, channel_id, week_end,
       CASE WHEN message_id IS NOT NULL THEN 'done' WHEN skipped_reason IS NOT NULL THEN 'skipped' ELSE 'planned' END,
       skipped_reason, planned_at, sent_at
FROM roundups ORDER BY id;
INSERT INTO outbox_messages (item_id, position, payload, nonce, in_thread, tried_at, message_id, sent_at)
SELECT o.id, 0, r.payload, 'pbr' || r.id, 0, r.sent_at, r.message_id, r.sent_at
FROM roundups r JOIN outbox o ON o.kind = 'roundup' AND o.target_id = r.channel_id AND o.period = r.week_end;

INSERT INTO channel_history (channel_id, kind, period, status)
SELECT target_id, kind, period, status FROM outbox WHERE kind IN ('digest', 'roundup') AND status != 'planned';

DROP TABLE delivery_messages;
DROP TABLE deliveries;
DROP TABLE dm_messages;
DROP TABLE dm_deliveries;
DROP TABLE roundups;

ALTER TABLE subscribers ADD COLUMN left_servers_at TEXT;  -- not in any server of their subscriptions
