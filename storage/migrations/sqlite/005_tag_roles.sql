-- Per server, a tag may be mapped to a role: channel digests then mention that role
-- when the day has papers with the tag. Tags are kept by their normalized identity.
CREATE TABLE tag_roles (
    guild_id INTEGER NOT NULL,
    tag_norm TEXT NOT NULL,
    tag_name TEXT NOT NULL,     -- display form, for /digest status
    role_id  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, tag_norm)
) WITHOUT ROWID;
