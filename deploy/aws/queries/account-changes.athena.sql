-- All changes to one account in the last 30 days: every event of tenant 'acme' whose target is
-- account 'acct-123' (placeholders: put your tenant id and account id), failed and denied
-- attempts included (outcome says which), oldest first.
SELECT occurred_at, id, action, actor_type, actor_id, outcome, "before", "after", request_id
FROM auditum.events
WHERE "date" >= date_format((current_timestamp AT TIME ZONE 'UTC') - INTERVAL '31' DAY, '%Y-%m-%d')
  AND tenant_id = 'acme'
  AND target_type = 'account'
  AND target_id = 'acct-123'
  AND occurred_at >= current_timestamp - INTERVAL '30' DAY
ORDER BY occurred_at, seq
