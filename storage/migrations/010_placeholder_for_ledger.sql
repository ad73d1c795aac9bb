-- Placeholder so this branch's migrations are numbered without a gap: number 010 belongs to the
-- delivery-ledger change (010_ledger.sql). DELETE THIS FILE when merging that branch.
SELECT 1;
