-- Failed logins from an IP range in the last 30 days: user.login events of tenant 'acme'
-- (placeholder) that failed or were denied, from an address in 10.0.0.0/8 (placeholder; IPv4 or
-- IPv6 CIDR), oldest first. TRY_CAST: a value that is no address (an encrypted source_ip) is
-- skipped instead of failing the query.
SELECT occurred_at, id, actor_id, source_ip, outcome, error_code, user_agent
FROM auditum.events
WHERE "date" >= date_format((current_timestamp AT TIME ZONE 'UTC') - INTERVAL '31' DAY, '%Y-%m-%d')
  AND tenant_id = 'acme'
  AND action = 'user.login'
  AND outcome IN ('failure', 'denied')
  AND contains('10.0.0.0/8', TRY_CAST(source_ip AS IPADDRESS))
  AND occurred_at >= current_timestamp - INTERVAL '30' DAY
ORDER BY occurred_at, seq
