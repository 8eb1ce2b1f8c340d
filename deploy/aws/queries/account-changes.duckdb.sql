-- All changes to one account in the last 30 days: every event of tenant 'acme' whose target is
-- account 'acct-123' (placeholders: put your tenant id and account id), failed and denied
-- attempts included (outcome says which), oldest first. {batches} is the log's batches/ directory.
SELECT occurred_at, id, action, actor_type, actor_id, outcome, "before", "after", request_id
FROM read_parquet('{batches}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)
WHERE "date" >= strftime((now() AT TIME ZONE 'UTC') - INTERVAL 31 DAY, '%Y-%m-%d')
  AND tenant_id = 'acme'
  AND target_type = 'account'
  AND target_id = 'acct-123'
  AND occurred_at >= now() - INTERVAL 30 DAY
ORDER BY occurred_at, seq
