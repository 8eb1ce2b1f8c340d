-- Who changed a setting in the last 90 days: the successful settings.* actions and actions on a
-- target of type 'setting' in tenant 'acme' (placeholder), with the actor and the values before
-- and after, oldest first. Add AND target_id = '...' for one setting. {batches} is the log's
-- batches/ directory.
SELECT occurred_at, id, action, actor_type, actor_id, actor_name, target_id, "before", "after"
FROM read_parquet('{batches}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)
WHERE "date" >= strftime((now() AT TIME ZONE 'UTC') - INTERVAL 91 DAY, '%Y-%m-%d')
  AND tenant_id = 'acme'
  AND (action LIKE 'settings.%' OR target_type = 'setting')
  AND outcome = 'success'
  AND occurred_at >= now() - INTERVAL 90 DAY
ORDER BY occurred_at, seq
