-- Placeholder so this branch's migrations are numbered without a gap: number 011 belongs to the
-- votes-per-server change (011_votes_per_server.sql). DELETE THIS FILE when merging that branch.
SELECT 1;
