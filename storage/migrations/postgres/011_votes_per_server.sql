-- Votes belong to the server they were cast in: as migrations/sqlite/011_votes_per_server.sql.

CREATE TABLE votes_per_server (
    paper_id BIGINT NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    guild_id BIGINT NOT NULL,
    user_id  BIGINT NOT NULL,
    voted_at TEXT NOT NULL,
    PRIMARY KEY (paper_id, guild_id, user_id)
);

INSERT INTO votes_per_server (paper_id, guild_id, user_id, voted_at)
SELECT paper_id,
       (SELECT CASE WHEN count(DISTINCT guild_id) = 1 THEN max(guild_id) ELSE 0 END FROM digest_channels),
       user_id, voted_at
FROM votes;

DROP TABLE votes;
ALTER TABLE votes_per_server RENAME TO votes;
ALTER TABLE votes RENAME CONSTRAINT votes_per_server_pkey TO votes_pkey;

CREATE INDEX votes_by_user ON votes (user_id);
