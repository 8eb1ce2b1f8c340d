-- Exports by employees in a quarter: actions containing 'export' by actors of type 'user' (people;
-- services, API keys and auditum's own auditum.export records are other types) in tenant 'acme'
-- (placeholder), every outcome, in Q4 2026 (occurred_at in [2026-10-01, 2027-01-01) UTC), oldest
-- first. Partitions from the day before the quarter: a client clock may run up to 5 minutes ahead.
-- {batches} is the log's batches/ directory.
SELECT occurred_at, id, action, actor_id, actor_name, target_type, target_id, outcome, metadata
FROM read_parquet('{batches}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)
WHERE "date" >= '2026-09-30'
  AND tenant_id = 'acme'
  AND action LIKE '%export%'
  AND actor_type = 'user'
  AND occurred_at >= TIMESTAMPTZ '2026-10-01 00:00:00+00'
  AND occurred_at < TIMESTAMPTZ '2027-01-01 00:00:00+00'
ORDER BY occurred_at, seq
