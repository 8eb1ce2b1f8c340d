-- Failed logins from an IP range in the last 30 days: user.login events of tenant 'acme'
-- (placeholder) that failed or were denied, from an address in 10.0.0.0/8, oldest first.
-- {batches} is the log's batches/ directory. Portable SQL, no inet extension: the IPv4 address as
-- a number, between the range's first and last address (10 * 2^24 = 167772160 through
-- 11 * 2^24 - 1 = 184549375). IPv6 addresses (IPv4-mapped ones too) and encrypted values never
-- match; Athena's contains('10.0.0.0/8', TRY_CAST(source_ip AS IPADDRESS)) is the same test for
-- IPv4 and also takes IPv6 ranges.
SELECT occurred_at, id, actor_id, source_ip, outcome, error_code, user_agent
FROM read_parquet('{batches}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)
WHERE "date" >= strftime((now() AT TIME ZONE 'UTC') - INTERVAL 31 DAY, '%Y-%m-%d')
  AND tenant_id = 'acme'
  AND action = 'user.login'
  AND outcome IN ('failure', 'denied')
  AND TRY_CAST(split_part(source_ip, '.', 1) AS BIGINT) * 16777216
    + TRY_CAST(split_part(source_ip, '.', 2) AS BIGINT) * 65536
    + TRY_CAST(split_part(source_ip, '.', 3) AS BIGINT) * 256
    + TRY_CAST(split_part(source_ip, '.', 4) AS BIGINT) BETWEEN 167772160 AND 184549375
  AND occurred_at >= now() - INTERVAL 30 DAY
ORDER BY occurred_at, seq
