//! Bucket lifecycle rules for a log (DESIGN §12): what `auditum lifecycle plan|apply` writes,
//! and the startup check that refuses a bucket whose rules would delete a batch before its
//! retention ends, or archive what the server must read at startup.
//!
//! Rules are scoped to one log's batch prefix; the ledger, checkpoints and hold records are never
//! transitioned nor expired (the WAL is local and never in the bucket).

use crate::StorageClass;
use aws_sdk_s3::types::{
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, Transition,
    TransitionStorageClass,
};
use chrono::{DateTime, Utc};

/// A log's key prefixes, relative to its store (built by `auditum_format::paths`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogKeys {
    pub log: String,
    /// Where its batches are: the only objects lifecycle rules may move or expire.
    pub batches: String,
    /// What the server reads at startup and the verifier needs forever: ledger, checkpoints, holds.
    pub kept_forever: Vec<String>,
}

/// A log's lifecycle settings, resolved against its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePlan {
    pub keys: LogKeys,
    /// The store's key prefix inside the bucket, empty or ending with '/'.
    pub store_prefix: String,
    /// Batches move to `class` this many days after they were written.
    pub archive: Option<(u32, StorageClass)>,
    /// Batches get a delete marker this many days after they were written, and their version is
    /// removed a day later; never before the log's retention ends (the config checks it).
    pub expire_after_days: Option<u32>,
}

impl LifecyclePlan {
    /// A rule's id names the exact key prefix it covers (`auditum:prod/default/batches/:archive`):
    /// unique per store prefix and log even in a shared bucket, and what `apply` replaces.
    pub fn rule_id(&self, kind: &str) -> String {
        format!("auditum:{}:{kind}", self.batches_prefix())
    }

    fn rule_ids(&self) -> [String; 2] {
        [self.rule_id("archive"), self.rule_id("expire")]
    }

    pub fn batches_prefix(&self) -> String {
        format!("{}{}", self.store_prefix, self.keys.batches)
    }

    /// The rules, as the S3 API takes them.
    pub fn rules(&self) -> Vec<LifecycleRule> {
        let filter = || LifecycleRuleFilter::builder().prefix(self.batches_prefix()).build();
        let mut rules = Vec::new();
        if let Some((days, class)) = self.archive {
            let transition = Transition::builder().days(days as i32).storage_class(TransitionStorageClass::from(class.as_str())).build();
            rules.push(
                LifecycleRule::builder()
                    .id(self.rule_id("archive"))
                    .status(ExpirationStatus::Enabled)
                    .filter(filter())
                    .transitions(transition)
                    .build(),
            );
        }
        if let Some(days) = self.expire_after_days {
            let days = i32::try_from(days).unwrap_or(i32::MAX);
            rules.push(
                LifecycleRule::builder()
                    .id(self.rule_id("expire"))
                    .status(ExpirationStatus::Enabled)
                    .filter(filter())
                    .expiration(LifecycleExpiration::builder().days(days).build())
                    // The delete marker leaves the locked version noncurrent: remove it a day later
                    // (Object Lock still keeps it until its retain-until).
                    .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
                    .build(),
            );
        }
        // Building fails only without a status, which every rule here has.
        rules.into_iter().filter_map(Result::ok).collect()
    }

    /// The rules as `aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration` takes them.
    pub fn to_json(&self) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self.rules().iter().map(rule_json).collect();
        serde_json::json!({ "Rules": rules })
    }
}

/// One rule in S3 API JSON.
// The rule-level `Prefix` is deprecated but still what older tools (and CloudFormation's
// `Prefix`) may have written: it is read wherever a filter prefix is.
#[allow(deprecated)]
pub fn rule_json(rule: &LifecycleRule) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(id) = rule.id() {
        out.insert("ID".into(), id.into());
    }
    out.insert("Status".into(), rule.status().as_str().into());
    if let Some(prefix) = rule.filter().and_then(LifecycleRuleFilter::prefix).or(rule.prefix()) {
        out.insert("Filter".into(), serde_json::json!({ "Prefix": prefix }));
    }
    if !rule.transitions().is_empty() {
        let transitions: Vec<serde_json::Value> = rule
            .transitions()
            .iter()
            .map(|transition| {
                serde_json::json!({
                    "Days": transition.days(),
                    "StorageClass": transition.storage_class().map(TransitionStorageClass::as_str),
                })
            })
            .collect();
        out.insert("Transitions".into(), transitions.into());
    }
    if let Some(days) = rule.expiration().and_then(LifecycleExpiration::days) {
        out.insert("Expiration".into(), serde_json::json!({ "Days": days }));
    }
    if let Some(days) = rule.noncurrent_version_expiration().and_then(NoncurrentVersionExpiration::noncurrent_days) {
        out.insert("NoncurrentVersionExpiration".into(), serde_json::json!({ "NoncurrentDays": days }));
    }
    serde_json::Value::Object(out)
}

/// The key prefix a rule applies to: "" for every object, None when its filter cannot match an
/// auditum object (auditum never tags objects).
#[allow(deprecated)]
fn rule_prefix(rule: &LifecycleRule) -> Option<String> {
    match rule.filter() {
        Some(filter) => {
            if filter.tag().is_some() {
                return None;
            }
            if let Some(and) = filter.and() {
                if !and.tags().is_empty() {
                    return None;
                }
                return Some(and.prefix().unwrap_or_default().to_string());
            }
            Some(filter.prefix().or(rule.prefix()).unwrap_or_default().to_string())
        }
        None => Some(rule.prefix().unwrap_or_default().to_string()),
    }
}

/// Whether a rule on `rule_prefix` can touch some key under (or equal to) `keys`.
fn overlaps(rule_prefix: &str, keys: &str) -> bool {
    keys.starts_with(rule_prefix) || rule_prefix.starts_with(keys)
}

fn describe(rule: &LifecycleRule) -> String {
    match rule.id() {
        Some(id) if !id.is_empty() => format!("lifecycle rule {id:?}"),
        _ => "a lifecycle rule without an id".to_string(),
    }
}

/// What the bucket's rules would do wrong to a log: each problem is a sentence naming the rule.
pub fn problems(
    rules: &[LifecycleRule],
    store_prefix: &str,
    keys: &LogKeys,
    retention_days: Option<u32>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let log = &keys.log;
    let batches = format!("{store_prefix}{}", keys.batches);
    let kept: Vec<String> = keys.kept_forever.iter().map(|keys| format!("{store_prefix}{keys}")).collect();
    let mut found = Vec::new();
    for rule in rules.iter().filter(|rule| rule.status() == &ExpirationStatus::Enabled) {
        let Some(prefix) = rule_prefix(rule) else { continue };
        let expiration = rule.expiration().filter(|expiration| expiration.days().is_some() || expiration.date().is_some());
        if overlaps(&prefix, &batches)
            && let (Some(expiration), Some(retention_days)) = (expiration, retention_days)
        {
            if let Some(days) = expiration.days()
                && i64::from(days) < i64::from(retention_days)
            {
                found.push(format!(
                    "{} expires objects under {prefix:?} after {days} days, but log {log} keeps its batches for {retention_days} days (retention_days): the rule would delete batches before their retention ends",
                    describe(rule)
                ));
            }
            if let Some(date) = expiration.date() {
                let retained_until = now + chrono::Duration::days(i64::from(retention_days));
                if date.secs() < retained_until.timestamp() {
                    found.push(format!(
                        "{} expires objects under {prefix:?} on {date}, before a batch written now ends its {retention_days}-day retention",
                        describe(rule)
                    ));
                }
            }
        }
        for keys in kept.iter().filter(|keys| overlaps(&prefix, keys)) {
            if expiration.is_some() {
                found.push(format!(
                    "{} expires objects under {prefix:?}, which holds {keys:?}: log {log}'s ledger, checkpoints and hold records must be kept forever (scope the rule to {batches:?})",
                    describe(rule)
                ));
            }
            let archived: Vec<&str> = rule
                .transitions()
                .iter()
                .filter_map(|transition| transition.storage_class())
                .map(TransitionStorageClass::as_str)
                .filter(|class| class.parse::<StorageClass>().is_ok_and(StorageClass::needs_restore))
                .collect();
            if let Some(class) = archived.first() {
                found.push(format!(
                    "{} moves objects under {prefix:?}, which holds {keys:?}, to {class}: the server reads log {log}'s ledger and checkpoints at startup and cannot read archived objects (scope the rule to {batches:?})",
                    describe(rule)
                ));
            }
        }
    }
    found.dedup();
    found
}

/// The bucket's rules with this log's replaced by `plan`'s: every other rule is kept as it is.
pub fn merged(existing: &[LifecycleRule], plan: &LifecyclePlan) -> Vec<LifecycleRule> {
    let ours = plan.rule_ids();
    let mut rules: Vec<LifecycleRule> =
        existing.iter().filter(|rule| !rule.id().is_some_and(|id| ours.iter().any(|own| own == id))).cloned().collect();
    rules.extend(plan.rules());
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(log: &str) -> LogKeys {
        LogKeys {
            log: log.into(),
            batches: format!("{log}/batches/"),
            kept_forever: vec![
                format!("{log}/ledger/"),
                format!("{log}/checkpoints/"),
                format!("{log}/checkpoint"),
                format!("{log}/holds/"),
            ],
        }
    }

    fn expire_all(days: i32, prefix: &str) -> LifecycleRule {
        LifecycleRule::builder()
            .id("cleanup")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .expiration(LifecycleExpiration::builder().days(days).build())
            .build()
            .unwrap()
    }

    #[test]
    fn a_seven_year_log_archives_to_deep_archive_and_expires_after_retention() {
        let plan = LifecyclePlan {
            keys: keys("compliance"),
            store_prefix: "prod/".into(),
            archive: Some((90, StorageClass::DeepArchive)),
            expire_after_days: Some(2557),
        };
        let json = plan.to_json();
        assert_eq!(
            json,
            serde_json::json!({"Rules": [
                {"ID": "auditum:prod/compliance/batches/:archive", "Status": "Enabled", "Filter": {"Prefix": "prod/compliance/batches/"},
                 "Transitions": [{"Days": 90, "StorageClass": "DEEP_ARCHIVE"}]},
                {"ID": "auditum:prod/compliance/batches/:expire", "Status": "Enabled", "Filter": {"Prefix": "prod/compliance/batches/"},
                 "Expiration": {"Days": 2557}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            ]})
        );
        assert!(problems(&plan.rules(), "prod/", &keys("compliance"), Some(2555), Utc::now()).is_empty());
    }

    #[test]
    fn rules_that_delete_early_or_archive_the_ledger_are_problems() {
        let now = Utc::now();
        let early = problems(&[expire_all(30, "")], "", &keys("default"), Some(365), now);
        assert!(early.iter().any(|problem| problem.contains("after 30 days") && problem.contains("365 days")), "{early:?}");
        assert!(early.iter().any(|problem| problem.contains("default/ledger/")), "bucket-wide expiry reaches the ledger: {early:?}");
        // Another log's prefix, or a tag filter, never touches this log.
        assert!(problems(&[expire_all(30, "other/")], "", &keys("default"), Some(365), now).is_empty());
        // Scoped to the batches and after retention: fine.
        assert!(problems(&[expire_all(400, "default/batches/")], "", &keys("default"), Some(365), now).is_empty());
        let glacier_everything = LifecycleRule::builder()
            .id("cold")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .transitions(Transition::builder().days(30).storage_class(TransitionStorageClass::Glacier).build())
            .build()
            .unwrap();
        let cold = problems(&[glacier_everything], "", &keys("default"), None, now);
        assert!(cold.iter().any(|problem| problem.contains("GLACIER") && problem.contains("startup")), "{cold:?}");
    }

    #[test]
    fn merging_replaces_only_this_logs_rules() {
        let plan = LifecyclePlan {
            keys: keys("default"),
            store_prefix: String::new(),
            archive: Some((30, StorageClass::GlacierIr)),
            expire_after_days: None,
        };
        let stale = LifecycleRule::builder().id("auditum:default/batches/:expire").status(ExpirationStatus::Enabled).build().unwrap();
        // Another log whose name starts the same, and the same log under another store prefix.
        let neighbour =
            LifecycleRule::builder().id("auditum:default-eu/batches/:archive").status(ExpirationStatus::Enabled).build().unwrap();
        let staging =
            LifecycleRule::builder().id("auditum:staging/default/batches/:archive").status(ExpirationStatus::Enabled).build().unwrap();
        let other = expire_all(400, "logs/");
        let merged = merged(&[stale, other.clone(), neighbour, staging], &plan);
        let ids: Vec<&str> = merged.iter().filter_map(LifecycleRule::id).collect();
        assert_eq!(
            ids,
            [
                "cleanup",
                "auditum:default-eu/batches/:archive",
                "auditum:staging/default/batches/:archive",
                "auditum:default/batches/:archive"
            ]
        );
        assert_eq!(merged[0], other);
    }
}
