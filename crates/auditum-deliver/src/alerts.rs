//! Alert rules (DESIGN §11): sliding-window counts per group (and always per tenant) over
//! `occurred_at`, a threshold and a cooldown, evaluated on durable events in seq order. A firing
//! is appended as an `auditum.alert` event in the same tenant, so every alert is in the
//! tamper-evident record; sinks deliver it from there.
//!
//! Memory is bounded: a group keeps at most `threshold` timestamps, and a rule at most
//! `max_groups` groups (past it, the group whose newest event was counted longest ago is
//! forgotten, and counted if still within its window or cooldown; `groups`). State survives a
//! restart by replaying the last window (and cooldown) from the log up to the durable cursor without
//! recording again what fired before it; a firing's event id is derived from the rule and the
//! seq that fired it, so one recorded just before a crash (the cursor not yet moved) is stored
//! once.

use crate::config::{AlertRule, GroupBy, action_matches};
use crate::cursor::Cursor;
use crate::groups::{Forgot, GroupKeys, Groups, NEVER};
use auditum_engine::follow::{FollowedRow, Follower, Step, closed, log_stopping};
use auditum_engine::log::Log;
use auditum_engine::metrics::{METRICS, RuleLabel};
use auditum_engine::read::ScanContext;
use auditum_engine::scan::Predicate;
use auditum_format::event::{EventRecord, Seq};
use auditum_format::time::now_micros;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

pub const ALERT_ACTION: &str = "auditum.alert";

/// An alert to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub rule: String,
    pub tenant_id: String,
    pub group_by: GroupBy,
    pub group: String,
    pub count: u32,
    pub threshold: u32,
    pub window_seconds: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Which rules may count an event, by its action: one map lookup per event, not a test per rule.
#[derive(Debug, Default)]
struct RulesByAction {
    /// Rules listing only exact actions, under each of them (rule indexes, ascending).
    exact: HashMap<String, Vec<usize>, foldhash::quality::RandomState>,
    /// Rules with a prefix (`user.*`) or no action list: tested on every event.
    others: Vec<usize>,
}

impl RulesByAction {
    fn new(rules: &[AlertRule]) -> RulesByAction {
        let mut by_action = RulesByAction::default();
        for (index, rule) in rules.iter().enumerate() {
            if rule.actions.is_empty() || rule.actions.iter().any(|action| action.ends_with(".*")) {
                by_action.others.push(index);
                continue;
            }
            for action in &rule.actions {
                let indexes = by_action.exact.entry(action.clone()).or_default();
                if indexes.last() != Some(&index) {
                    indexes.push(index);
                }
            }
        }
        by_action
    }

    /// The rules whose actions match `action`, in rule order.
    fn candidates(&self, rules: &[AlertRule], action: &str) -> SmallVec<[usize; 8]> {
        let exact = self.exact.get(action).map(Vec::as_slice).unwrap_or_default();
        let mut candidates: SmallVec<[usize; 8]> = exact.iter().copied().collect();
        let before = candidates.len();
        candidates.extend(self.others.iter().copied().filter(|&index| action_matches(&rules[index].actions, action)));
        if before > 0 && candidates.len() > before {
            candidates.sort_unstable();
        }
        candidates
    }
}

pub struct Evaluator {
    rules: Vec<AlertRule>,
    by_action: RulesByAction,
    /// Per rule: its tracked groups (fewer for a high threshold, so timestamps stay bounded).
    groups: Vec<Groups>,
    group_keys: GroupKeys,
    /// Per rule: `auditum_alert_groups_evicted` (held, not looked up per eviction: at its cap a
    /// rule evicts a group per new group).
    evicted: Vec<prometheus_client::metrics::counter::Counter>,
}

/// Timestamps one rule keeps at most, over all its groups (16 bytes each).
const MAX_TIMESTAMPS_PER_RULE: usize = 4_000_000;

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl Evaluator {
    pub fn new(rules: Vec<AlertRule>, max_groups: usize) -> Evaluator {
        let groups =
            rules.iter().map(|rule| Groups::new(max_groups.min(MAX_TIMESTAMPS_PER_RULE / (rule.threshold.max(1) as usize)))).collect();
        let by_action = RulesByAction::new(&rules);
        let evicted =
            rules.iter().map(|rule| METRICS.alert_groups_evicted.get_or_create(&RuleLabel { rule: rule.name.clone() }).clone()).collect();
        Evaluator { rules, by_action, groups, group_keys: GroupKeys::new(), evicted }
    }

    /// Widest window plus cooldown: how far back a restart replays.
    pub fn horizon(&self) -> Duration {
        self.rules.iter().map(|rule| rule.window.saturating_add(rule.cooldown())).max().unwrap_or_default()
    }

    /// Counts one durable event; returns the alerts it fires.
    pub fn observe(&mut self, record: &EventRecord) -> Vec<Firing> {
        let mut firings = Vec::new();
        if record.action == ALERT_ACTION {
            return firings;
        }
        for index in self.by_action.candidates(&self.rules, &record.action) {
            let rule = &self.rules[index];
            if rule.tenant != "*" && rule.tenant != record.tenant_id {
                continue;
            }
            if rule.outcome.as_ref().is_some_and(|outcome| *outcome != record.outcome) {
                continue;
            }
            // Events without the grouping field are not one group: they are not counted.
            let group = match rule.group_by {
                GroupBy::ActorId => Some(record.actor_id.as_str()),
                GroupBy::SourceIp => record.source_ip.as_deref(),
                GroupBy::TargetId => record.target_id.as_deref(),
                GroupBy::SessionId => record.session_id.as_deref(),
                GroupBy::TenantId => Some(record.tenant_id.as_str()),
            };
            let Some(group) = group.filter(|group| !group.is_empty()) else { continue };
            let key = self.group_keys.key(&record.tenant_id, group);
            // A group forgotten with its newest event this far back had expired: no eviction.
            let horizon = record.occurred_at.saturating_sub(micros(rule.window.saturating_add(rule.cooldown())));
            let (state, forgot) = self.groups[index].entry(key, record.occurred_at, horizon);
            if forgot == Forgot::Live {
                self.evicted[index].inc();
            }
            let point = (record.occurred_at, record.seq.0);
            let position = state.times.partition_point(|time| *time < point);
            state.times.insert(position, point);
            let newest = state.newest().unwrap_or(record.occurred_at);
            let window = micros(rule.window);
            // Out of the window, or beyond the threshold's count: the oldest go, in one move.
            let out_of_window = state.times.partition_point(|time| time.0 <= newest.saturating_sub(window));
            let beyond_threshold = state.times.len().saturating_sub(rule.threshold as usize);
            let stale = out_of_window.max(beyond_threshold);
            if stale > 0 {
                state.times.drain(..stale);
            }
            let count = state.times.len() as u32;
            let cooled = state.last_fired == NEVER || newest.saturating_sub(state.last_fired) >= micros(rule.cooldown());
            if count >= rule.threshold && cooled {
                state.last_fired = newest;
                firings.push(Firing {
                    rule: rule.name.clone(),
                    tenant_id: record.tenant_id.clone(),
                    group_by: rule.group_by,
                    group: group.to_string(),
                    count,
                    threshold: rule.threshold,
                    window_seconds: rule.window.as_secs(),
                    first_seq: state.times.iter().map(|time| time.1).min().unwrap_or(record.seq.0),
                    last_seq: record.seq.0,
                });
            }
        }
        firings
    }
}

impl Firing {
    /// The `auditum.alert` event (DESIGN §11). Its id is derived from the rule and the firing
    /// seq, so recording the same firing twice (a replay after a restart) stores it once.
    pub fn record(&self, log: &str) -> EventRecord {
        let metadata = serde_json::json!({
            "rule": self.rule,
            "window_seconds": self.window_seconds,
            "threshold": self.threshold,
            "count": self.count,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        });
        EventRecord {
            seq: Seq(0),
            id: format!("auditum-alert-{log}-{}-{}", self.rule, self.last_seq),
            tenant_id: self.tenant_id.clone(),
            occurred_at: now_micros(),
            received_at: 0,
            action: ALERT_ACTION.to_string(),
            actor_id: self.rule.clone(),
            actor_type: Some("system".to_string()),
            actor_name: None,
            target_type: Some(self.group_by.as_str().to_string()),
            target_id: Some(self.group.clone()).filter(|group| !group.is_empty()),
            target_name: None,
            outcome: "success".to_string(),
            error_code: None,
            reason: None,
            request_id: None,
            correlation_id: None,
            session_id: None,
            source_ip: None,
            user_agent: None,
            service: Some("auditum".to_string()),
            before: None,
            after: None,
            metadata: Some(auditum_format::json::canonical(&metadata)),
        }
    }
}

/// The rules of one log, following it from a durable cursor.
pub struct AlertWorker {
    pub evaluator: Evaluator,
    pub log: Log,
    pub context: ScanContext,
    pub cursor: Cursor,
    pub closing: watch::Receiver<bool>,
}

impl AlertWorker {
    fn stopping(&self) -> bool {
        *self.closing.borrow() || self.log.watch_stop().borrow().is_some()
    }

    /// Where a restart replays from so windows and cooldowns are what they were: the batches
    /// received within the horizon before the cursor's own batch (the downtime does not count).
    fn replay_from(&self, stored: u64) -> u64 {
        let entries = self.log.ledger_snapshot().entries;
        let ledger_end = entries.last().map(|entry| entry.end_seq().0).unwrap_or(0);
        let anchor =
            entries.iter().rev().find(|entry| entry.first_seq.0 < stored).map(|entry| entry.max_received_at).unwrap_or_else(now_micros);
        let horizon = anchor.saturating_sub(micros(self.evaluator.horizon()));
        let recent = entries.iter().find(|entry| entry.max_received_at >= horizon).map(|entry| entry.first_seq.0);
        recent.unwrap_or(ledger_end).min(stored)
    }

    /// Waits until the log's ledger is loaded (a log started while its store did not answer).
    async fn ready(&mut self) -> bool {
        while self.log.require_store().is_err() {
            tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = closed(&mut self.closing) => return false }
        }
        true
    }

    pub async fn run(mut self) {
        let log_name = self.log.name().to_string();
        if !self.ready().await {
            return;
        }
        let stored = match self.cursor.load() {
            Ok(Some(next)) => next,
            Ok(None) => *self.log.watch_durable().borrow(),
            Err(error) => {
                tracing::error!(log = %log_name, %error, "cannot read the alert cursor; alert rules are not evaluated");
                return;
            }
        };
        let start = self.replay_from(stored);
        tracing::info!(log = %log_name, next_seq = stored, replay_from = start, "alert rules started");
        let mut follower =
            Follower::new(self.log.clone(), self.context.clone(), String::new(), Predicate::match_all(), start).without_leaf_hashes();
        let mut durable = self.log.watch_durable();
        let mut stopping = self.log.watch_stop();
        let mut written = stored;
        let mut written_at = tokio::time::Instant::now();
        let mut failures = 0u32;
        loop {
            if self.stopping() {
                return;
            }
            durable.mark_unchanged();
            let caught_up = match follower.step().await {
                Ok(Step::Moved(rows)) => {
                    let Some(firings) = self.observe_off_the_runtime(rows).await else { return };
                    for firing in firings {
                        // Replayed to rebuild the windows: what fired before the cursor was
                        // recorded then (however old, whatever the idempotency window).
                        if firing.last_seq < stored {
                            continue;
                        }
                        if !self.record(&firing).await {
                            return;
                        }
                        // Recorded: a restart must not record it again.
                        if let Err(error) = self.cursor.store_async(firing.last_seq + 1).await {
                            tracing::error!(log = %log_name, %error, "cannot write the alert cursor");
                        }
                        written = written.max(firing.last_seq + 1);
                    }
                    false
                }
                Ok(Step::CaughtUp) => true,
                // Replaying only to rebuild counts, an archived batch is skipped (its counts are
                // lost, said once); past the cursor it is waited for.
                Err(auditum_engine::Error::Archived(archived)) if follower.next_seq() < stored => {
                    tracing::warn!(log = %log_name, %archived, "a batch of the alert replay is archived: skipped");
                    follower.skip_batch();
                    continue;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(log = %log_name, %error, "cannot read the log for alert rules; retrying");
                    let delay = Duration::from_millis(200).saturating_mul(1 << failures.min(7));
                    tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = closed(&mut self.closing) => return }
                    continue;
                }
            };
            failures = 0;
            // An fsync per group commit would cost the write path; once a second is enough (a
            // restart replays the window anyway, and firings store the cursor themselves).
            let next = follower.next_seq();
            if next > written && written_at.elapsed() >= Duration::from_secs(1) {
                match self.cursor.store_async(next).await {
                    Ok(()) => {
                        written = next;
                        written_at = tokio::time::Instant::now();
                    }
                    Err(error) => tracing::error!(log = %log_name, %error, "cannot write the alert cursor"),
                }
            }
            if caught_up {
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = closed(&mut self.closing) => {}
                    _ = log_stopping(&mut stopping) => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    /// Counts a step's events on the delivery thread (`low_priority`): thousands of events are
    /// milliseconds of CPU that would otherwise hold a runtime worker, and the Appends queued on
    /// it. None when the runtime is shutting down.
    async fn observe_off_the_runtime(&mut self, rows: Vec<FollowedRow>) -> Option<Vec<Firing>> {
        let mut evaluator = std::mem::replace(&mut self.evaluator, Evaluator::new(Vec::new(), 0));
        let observed = crate::low_priority::run(move || {
            let firings: Vec<Firing> = rows.iter().flat_map(|row| evaluator.observe(&row.record)).collect();
            (evaluator, firings)
        })
        .await;
        let (evaluator, firings) = observed?;
        self.evaluator = evaluator;
        Some(firings)
    }

    /// Appends the alert event until it is durable; false when the server stops first.
    async fn record(&mut self, firing: &Firing) -> bool {
        let record = firing.record(self.log.name());
        let mut delay = Duration::from_millis(100);
        loop {
            match self.log.append(vec![record.clone()]).await {
                Ok(appended) => {
                    let new = appended.first().is_some_and(|appended| !appended.duplicate);
                    if new {
                        METRICS.alerts_fired.get_or_create(&RuleLabel { rule: firing.rule.clone() }).inc();
                        tracing::info!(log = %self.log.name(), rule = %firing.rule, tenant = %firing.tenant_id, group = %firing.group, count = firing.count, last_seq = firing.last_seq, "alert fired");
                    }
                    return true;
                }
                Err(error) => {
                    tracing::warn!(log = %self.log.name(), rule = %firing.rule, %error, "cannot record an alert; retrying");
                    tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = closed(&mut self.closing) => return false }
                    if self.stopping() {
                        return false;
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::rule;

    const MINUTE: i64 = 60_000_000;

    fn login(seq: u64, at: i64, actor: &str, outcome: &str) -> EventRecord {
        EventRecord {
            seq: Seq(seq),
            tenant_id: "acme".into(),
            occurred_at: at,
            action: "user.login".into(),
            actor_id: actor.into(),
            outcome: outcome.into(),
            ..EventRecord::default()
        }
    }

    fn fired(events: &[EventRecord]) -> Vec<Firing> {
        let mut evaluator = Evaluator::new(vec![rule()], 1000);
        events.iter().flat_map(|event| evaluator.observe(event)).collect()
    }

    #[test]
    fn five_failures_in_the_window_fire_once_four_or_spread_do_not() {
        let five: Vec<EventRecord> = (0..6).map(|i| login(i, i as i64 * MINUTE / 2, "mallory", "failure")).collect();
        let firings = fired(&five);
        assert_eq!(firings.len(), 1, "the sixth is within the cooldown: {firings:?}");
        assert_eq!((firings[0].count, firings[0].first_seq, firings[0].last_seq, firings[0].group.as_str()), (5, 0, 4, "mallory"));
        assert!(fired(&five[..4]).is_empty());
        let spread: Vec<EventRecord> = (0..5).map(|i| login(i, i as i64 * 2 * MINUTE, "mallory", "failure")).collect();
        assert!(fired(&spread).is_empty(), "8 minutes apart end to end, wider than 5");
        let other_actors: Vec<EventRecord> = (0..5).map(|i| login(i, i as i64, &format!("u{i}"), "failure")).collect();
        assert!(fired(&other_actors).is_empty());
        let successes: Vec<EventRecord> = (0..5).map(|i| login(i, i as i64, "mallory", "success")).collect();
        assert!(fired(&successes).is_empty());
        // Out of order within the window still counts.
        let shuffled: Vec<EventRecord> = [3, 0, 4, 1, 2].iter().map(|&i| login(i, i as i64 * MINUTE / 2, "mallory", "failure")).collect();
        assert_eq!(fired(&shuffled).len(), 1);
    }

    /// The rules' meaning, written plainly: for each rule and (tenant, group), every counted
    /// event kept; at each event, the last `threshold` of those within the window of the newest.
    fn brute_force(rules: &[AlertRule], events: &[EventRecord]) -> Vec<Firing> {
        // (rule, tenant, group) → every counted (occurred_at, seq), and when it last fired.
        type Seen = HashMap<(usize, String, String), (Vec<(i64, u64)>, Option<i64>)>;
        let mut seen = Seen::new();
        let mut firings = Vec::new();
        for event in events.iter().filter(|event| event.action != ALERT_ACTION) {
            for (index, rule) in rules.iter().enumerate() {
                let action_ok = rule.actions.is_empty()
                    || rule.actions.iter().any(|wanted| match wanted.strip_suffix(".*") {
                        Some(prefix) => event.action.starts_with(&format!("{prefix}.")),
                        None => *wanted == event.action,
                    });
                let tenant_ok = rule.tenant == "*" || rule.tenant == event.tenant_id;
                let outcome_ok = rule.outcome.as_ref().is_none_or(|outcome| *outcome == event.outcome);
                let group = match rule.group_by {
                    GroupBy::ActorId => Some(event.actor_id.clone()),
                    GroupBy::SourceIp => event.source_ip.clone(),
                    GroupBy::TargetId => event.target_id.clone(),
                    GroupBy::SessionId => event.session_id.clone(),
                    GroupBy::TenantId => Some(event.tenant_id.clone()),
                };
                let Some(group) = group.filter(|group| !group.is_empty()) else { continue };
                if !(action_ok && tenant_ok && outcome_ok) {
                    continue;
                }
                let (points, last_fired) = seen.entry((index, event.tenant_id.clone(), group.clone())).or_default();
                points.push((event.occurred_at, event.seq.0));
                points.sort();
                let newest = points.iter().map(|point| point.0).max().unwrap_or(i64::MIN);
                let window = rule.window.as_micros() as i64;
                let within: Vec<(i64, u64)> = points.iter().copied().filter(|point| point.0 > newest - window).collect();
                let kept = &within[within.len().saturating_sub(rule.threshold as usize)..];
                let cooled = last_fired.is_none_or(|fired| newest - fired >= rule.cooldown().as_micros() as i64);
                if kept.len() as u32 >= rule.threshold && cooled {
                    *last_fired = Some(newest);
                    firings.push(Firing {
                        rule: rule.name.clone(),
                        tenant_id: event.tenant_id.clone(),
                        group_by: rule.group_by,
                        group,
                        count: kept.len() as u32,
                        threshold: rule.threshold,
                        window_seconds: rule.window.as_secs(),
                        first_seq: kept.iter().map(|point| point.1).min().unwrap_or(event.seq.0),
                        last_seq: event.seq.0,
                    });
                }
            }
        }
        firings
    }

    #[test]
    fn random_rules_and_events_fire_exactly_what_the_brute_force_count_fires() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let actions = ["user.login", "user.logout", "doc.read", "doc.share", "admin.grant", ALERT_ACTION];
        let action_lists: [&[&str]; 6] =
            [&["user.login"], &["user.*"], &[], &["doc.read", "user.login"], &["doc.*", "admin.grant"], &["doc.read", "doc.read"]];
        let groupings = [GroupBy::ActorId, GroupBy::SourceIp, GroupBy::TargetId, GroupBy::SessionId, GroupBy::TenantId];
        let mut total = 0;
        for round in 0..200 {
            let rules: Vec<AlertRule> = (0..rng.gen_range(1..6))
                .map(|index| AlertRule {
                    name: format!("rule-{index}"),
                    tenant: ["*", "acme", "globex"][rng.gen_range(0..3)].into(),
                    actions: action_lists[rng.gen_range(0..action_lists.len())].iter().map(|action| action.to_string()).collect(),
                    outcome: [None, Some("failure"), Some("denied")][rng.gen_range(0..3)].map(String::from),
                    group_by: groupings[rng.gen_range(0..groupings.len())],
                    window: Duration::from_secs(rng.gen_range(1..120)),
                    threshold: rng.gen_range(1..6),
                    cooldown: rng.gen_bool(0.5).then(|| Duration::from_secs(rng.gen_range(0..200))),
                    sinks: Vec::new(),
                })
                .collect();
            let mut at = 0i64;
            let events: Vec<EventRecord> = (0..rng.gen_range(0..400))
                .map(|seq| {
                    // Mostly forward in time, sometimes back (clients' clocks differ); whole seconds,
                    // so windows and cooldowns often end exactly on an event.
                    at += rng.gen_range(-5..10) * 1_000_000;
                    let optional = |rng: &mut rand::rngs::StdRng, values: &[&str]| {
                        rng.gen_bool(0.8).then(|| values[rng.gen_range(0..values.len())].to_string())
                    };
                    EventRecord {
                        seq: Seq(seq),
                        tenant_id: ["acme", "globex"][rng.gen_range(0..2)].into(),
                        occurred_at: at,
                        action: actions[rng.gen_range(0..actions.len())].into(),
                        actor_id: ["u1", "u2", "u3", ""][rng.gen_range(0..4)].into(),
                        outcome: ["success", "failure", "denied"][rng.gen_range(0..3)].into(),
                        source_ip: optional(&mut rng, &["10.0.0.1", "10.0.0.2", ""]),
                        target_id: optional(&mut rng, &["doc-1", "doc-2"]),
                        session_id: optional(&mut rng, &["s1", "s2", "s3"]),
                        ..EventRecord::default()
                    }
                })
                .collect();
            let mut evaluator = Evaluator::new(rules.clone(), 1_000_000);
            let fired: Vec<Firing> = events.iter().flat_map(|event| evaluator.observe(event)).collect();
            assert_eq!(fired, brute_force(&rules, &events), "round {round}: rules {rules:?}");
            total += fired.len();
        }
        assert!(total > 1_000, "the rounds fire often enough to test something: {total}");
    }

    #[test]
    fn a_rule_tracks_at_most_its_cap_of_groups() {
        let mut evaluator = Evaluator::new(vec![rule()], 3);
        for i in 0..10 {
            evaluator.observe(&login(i, i as i64, &format!("u{i}"), "failure"));
        }
        assert_eq!(evaluator.groups[0].len(), 3);
    }

    /// At its cap a rule forgets the groups counted least recently, not one still counting: an
    /// attacker among a stream of one-off actors is still tracked at the threshold.
    #[test]
    fn a_rule_at_its_cap_keeps_the_group_that_keeps_counting() {
        let mut evaluator = Evaluator::new(vec![rule()], 3);
        let mut firings = Vec::new();
        let mut seq = 0;
        for attempt in 0..5 {
            firings.extend(evaluator.observe(&login(seq, seq as i64, "mallory", "failure")));
            seq += 1;
            for fresh in 0..2 {
                firings.extend(evaluator.observe(&login(seq, seq as i64, &format!("one-off-{attempt}-{fresh}"), "failure")));
                seq += 1;
            }
        }
        assert_eq!(evaluator.groups[0].len(), 3);
        assert_eq!(firings.len(), 1, "{firings:?}");
        assert_eq!((firings[0].group.as_str(), firings[0].count, firings[0].first_seq), ("mallory", 5, 0));
    }
}
