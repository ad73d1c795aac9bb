-- Tags mapped to roles per server: as migrations/sqlite/005_tag_roles.sql.
CREATE TABLE tag_roles (
    guild_id BIGINT NOT NULL,
    tag_norm TEXT NOT NULL,
    tag_name TEXT NOT NULL,
    role_id  BIGINT NOT NULL,
    PRIMARY KEY (guild_id, tag_norm)
);
