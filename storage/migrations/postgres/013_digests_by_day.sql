-- Search filters by date clamp the range to the days the library has (`min(day)`, `max(day)`);
-- digests are unique by (source, day), so without an index of their own on day that read scans
-- every digest: ~10 ms at a million papers, on every search with a date filter.
CREATE INDEX digests_by_day ON digests (day);
