-- Votes belong to the server they were cast in: `/papers top` and the weekly roundup of a server
-- count only the votes cast there, so one server's members cannot rank papers in another's.
-- A member may vote for the same paper once per server. guild_id 0: a vote cast in a direct
-- message (it counts in no server).
--
-- What existing votes become: they were cast before votes carried a server. When every digest
-- channel is in one server (a bot serving one server, the usual case) that is where they were
-- cast, and they become that server's votes. Otherwise (several servers, or none) where each was
-- cast cannot be known, so they get guild_id 0: kept (and deleted by `/subscriptions clear`),
-- but counted in no server's ranking.
--
-- The primary key changes, so the table is rebuilt (nothing refers to it).

CREATE TABLE votes_per_server (
    paper_id INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    guild_id INTEGER NOT NULL,                        -- the server; 0 = a direct message
    user_id  INTEGER NOT NULL,
    voted_at TEXT NOT NULL,
    PRIMARY KEY (paper_id, guild_id, user_id)
) WITHOUT ROWID;

INSERT INTO votes_per_server (paper_id, guild_id, user_id, voted_at)
SELECT paper_id,
       (SELECT CASE WHEN count(DISTINCT guild_id) = 1 THEN max(guild_id) ELSE 0 END FROM digest_channels),
       user_id, voted_at
FROM votes;

DROP TABLE votes;
ALTER TABLE votes_per_server RENAME TO votes;

-- `/subscriptions clear` deletes a member's votes everywhere.
CREATE INDEX votes_by_user ON votes (user_id);
