-- A roundup Discord rejects as a message (a 4xx other than a lost channel, a timeout or a rate
-- limit) would fail the same way every time: it is skipped for its week, with the reason.
ALTER TABLE roundups ADD COLUMN skipped_reason TEXT;
