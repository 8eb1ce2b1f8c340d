//! Admin operations (DESIGN §12), scope `admin`: legal holds and restores. Each is
//! authenticated like any call and recorded as a meta-audit event once it has run, with what it
//! did (`auditum.legal_hold.set`, `auditum.legal_hold.cleared`, `auditum.legal_hold.list`,
//! `auditum.restore`); a refused attempt is recorded too.

use crate::access::{Access, Call, MetaNote, object};
use crate::archive::{self, RestoreSummary};
use crate::auth::Denied;
use crate::error::{Error, Result};
use crate::log::Log;
use crate::log::holds::{HoldCleared, HoldRecord, range_covers};
use crate::router::Logs;
use auditum_format::ledger::LedgerEntry;
use auditum_format::paths;
use auditum_format::rules;
use auditum_format::time::{now_micros, rfc3339_micros};
use auditum_store::{self as store, RestoreTier};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// Legal-hold calls to the store at once.
const CONCURRENT_HOLD_CALLS: usize = 16;
/// A hold's or restore's reason, at most.
pub const MAX_REASON_BYTES: usize = 1000;
/// Restored copies last 1 to 365 days here (S3 allows more; a year is plenty for an audit).
pub const MAX_RESTORE_DAYS: u32 = 365;

/// A log, optionally one tenant, and an `occurred_at` range [since, until).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeScope {
    pub log: String,
    pub tenant_id: Option<String>,
    pub since: i64,
    pub until: i64,
}

impl RangeScope {
    fn describe(&self) -> String {
        let tenant = self.tenant_id.as_ref().map(|tenant| format!(" for tenant {tenant}")).unwrap_or_default();
        format!("{tenant} over [{}, {})", rfc3339_micros(self.since), rfc3339_micros(self.until))
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        object(serde_json::json!({
            "log": self.log,
            "tenant_id": self.tenant_id,
            "since": rfc3339_micros(self.since),
            "until": rfc3339_micros(self.until),
        }))
    }
}

/// What `hold set` or `hold clear` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldChange {
    pub hold_ids: Vec<String>,
    /// Batch objects whose legal hold was set (or released).
    pub batch_objects: u64,
    /// Their ledger entries, likewise.
    pub ledger_entries: u64,
    /// `clear`: batches in the range that stay held by another active hold.
    pub still_held: u64,
    /// `set`: a hold with this scope was already active (its objects were held again).
    pub already_active: bool,
}

/// One active hold and the batches it covers now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldListing {
    pub record: HoldRecord,
    pub batches: u64,
}

#[derive(Clone)]
pub struct Admin {
    logs: Arc<Logs>,
    access: Arc<Access>,
}

impl Admin {
    pub fn new(logs: Arc<Logs>, access: Arc<Access>) -> Admin {
        Admin { logs, access }
    }

    /// Checks the request, the caller's tenant binding and the log; a refusal is recorded.
    async fn admit(&self, call: &Call, action: &'static str, scope: &RangeScope) -> Result<&Log> {
        if scope.since >= scope.until {
            return Err(Error::bad_request("until", "must be after since"));
        }
        if let Some(tenant) = &scope.tenant_id
            && !rules::is_valid_tenant_id(tenant)
        {
            return Err(Error::bad_request("tenant_id", format!("{} is not a valid tenant id", rules::echo(tenant))));
        }
        let log = self.logs.by_name(&scope.log).ok_or_else(|| Error::NoSuchLog { name: scope.log.clone() })?;
        let permitted = match (call.caller.tenant(), &scope.tenant_id) {
            (Some(own), None) => Err(Denied::PermissionDenied(format!(
                "tenant_id: api key {:?} is bound to tenant {own:?} and must name it (a hold on the whole log reaches other tenants)",
                call.caller.key_id()
            ))),
            (_, Some(tenant)) => call.caller.require_tenant("tenant_id", tenant).and_then(|()| self.access.require_log(call, log)),
            (None, None) => Ok(()),
        };
        if let Err(denied) = permitted {
            return Err(self.access.deny(call, denied, self.note(call, action, scope, scope.details())).await);
        }
        log.require_store()?;
        Ok(log)
    }

    fn note(&self, call: &Call, action: &'static str, scope: &RangeScope, details: serde_json::Map<String, serde_json::Value>) -> MetaNote {
        let tenant = scope.tenant_id.clone().unwrap_or_else(|| self.access.log_wide_tenant(call));
        MetaNote { action, tenant, target_type: "log", target_id: scope.log.clone(), details }
    }

    /// Sets a legal hold: recorded first (so batches sealed from now on in the range are put
    /// held), then Object Lock legal hold ON for every batch object and ledger entry in range.
    pub async fn set_hold(&self, call: &Call, scope: RangeScope, reason: String) -> Result<HoldChange> {
        check_reason(&reason)?;
        let log = self.admit(call, "auditum.legal_hold.set", &scope).await?;
        let _changing = log.hold_changes().await;
        let existing = log.active_holds().into_iter().find(|hold| hold.same_scope(scope.tenant_id.as_deref(), scope.since, scope.until));
        let already_active = existing.is_some();
        let record = match existing {
            Some(record) => record,
            None => {
                let record = HoldRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    log: log.name().to_string(),
                    tenant_id: scope.tenant_id.clone(),
                    since: scope.since,
                    until: scope.until,
                    reason: reason.clone(),
                    set_at: now_micros(),
                    set_by: call.caller.key_id().to_string(),
                };
                put_record(log, &paths::hold_key(log.name(), &record.id), &record).await?;
                log.add_hold(record.clone());
                record
            }
        };
        let covered = covered_entries(log, |entry| record.covers_entry(entry));
        set_legal_holds(log, &covered, true).await?;
        let change = HoldChange {
            hold_ids: vec![record.id.clone()],
            batch_objects: covered.len() as u64,
            ledger_entries: covered.len() as u64,
            still_held: 0,
            already_active,
        };
        let mut details = scope.details();
        details.insert("hold_id".into(), record.id.clone().into());
        details.insert("reason".into(), reason.into());
        details.insert("batch_objects".into(), change.batch_objects.into());
        details.insert("already_active".into(), already_active.into());
        self.access.record(call, self.note(call, "auditum.legal_hold.set", &scope, details)).await?;
        tracing::info!(parent: &call.span(), log = %log.name(), hold_id = %record.id, batch_objects = change.batch_objects, "legal hold set");
        Ok(change)
    }

    /// Clears the active holds with exactly this scope: releases the batch objects and entries
    /// no other active hold covers, then records the clearing.
    pub async fn clear_hold(&self, call: &Call, scope: RangeScope, reason: String) -> Result<HoldChange> {
        check_reason(&reason)?;
        let log = self.admit(call, "auditum.legal_hold.cleared", &scope).await?;
        let _changing = log.hold_changes().await;
        let active = log.active_holds();
        let (clearing, staying): (Vec<HoldRecord>, Vec<HoldRecord>) =
            active.into_iter().partition(|hold| hold.same_scope(scope.tenant_id.as_deref(), scope.since, scope.until));
        if clearing.is_empty() {
            let active = staying
                .iter()
                .filter(|hold| call.caller.tenant().is_none() || hold.tenant_id.as_deref() == call.caller.tenant())
                .map(|hold| {
                    let scope =
                        RangeScope { log: hold.log.clone(), tenant_id: hold.tenant_id.clone(), since: hold.since, until: hold.until };
                    scope.describe().trim_start().to_string()
                })
                .collect();
            return Err(Error::NoSuchHold { log: log.name().to_string(), scope: scope.describe().trim_start().to_string(), active });
        }
        let in_range = covered_entries(log, |entry| clearing.iter().any(|hold| hold.covers_entry(entry)));
        let (kept, released): (Vec<Arc<LedgerEntry>>, Vec<Arc<LedgerEntry>>) =
            in_range.into_iter().partition(|entry| staying.iter().any(|hold| hold.covers_entry(entry)));
        // Released before the clearing is recorded: if this fails half way, the hold is still
        // active and clearing again finishes the job.
        set_legal_holds(log, &released, false).await?;
        let ids: Vec<String> = clearing.iter().map(|hold| hold.id.clone()).collect();
        for id in &ids {
            let cleared = HoldCleared {
                id: id.clone(),
                cleared_at: now_micros(),
                cleared_by: call.caller.key_id().to_string(),
                reason: reason.clone(),
            };
            put_record(log, &paths::hold_cleared_key(log.name(), id), &cleared).await?;
        }
        log.remove_holds(&ids);
        let change = HoldChange {
            hold_ids: ids.clone(),
            batch_objects: released.len() as u64,
            ledger_entries: released.len() as u64,
            still_held: kept.len() as u64,
            already_active: false,
        };
        let mut details = scope.details();
        details.insert("hold_ids".into(), ids.into());
        details.insert("reason".into(), reason.into());
        details.insert("batch_objects".into(), change.batch_objects.into());
        details.insert("still_held".into(), change.still_held.into());
        self.access.record(call, self.note(call, "auditum.legal_hold.cleared", &scope, details)).await?;
        tracing::info!(parent: &call.span(), log = %log.name(), released = change.batch_objects, still_held = change.still_held, "legal hold cleared");
        Ok(change)
    }

    /// Active holds of one log (or of every log the caller may see when `log` is empty).
    pub async fn list_holds(&self, call: &Call, log_name: &str) -> Result<Vec<HoldListing>> {
        let logs: Vec<&Log> = if log_name.is_empty() {
            self.logs.all().filter(|log| self.access.require_log(call, log).is_ok()).collect()
        } else {
            let log = self.logs.by_name(log_name).ok_or_else(|| Error::NoSuchLog { name: log_name.to_string() })?;
            if let Err(denied) = self.access.require_log(call, log) {
                let note = MetaNote {
                    action: "auditum.legal_hold.list",
                    tenant: self.access.log_wide_tenant(call),
                    target_type: "log",
                    target_id: log_name.to_string(),
                    details: serde_json::Map::new(),
                };
                return Err(self.access.deny(call, denied, note).await);
            }
            vec![log]
        };
        let mut listings = Vec::new();
        for log in logs {
            for record in log.active_holds() {
                if call.caller.tenant().is_some() && record.tenant_id.as_deref() != call.caller.tenant() {
                    continue;
                }
                let batches = covered_entries(log, |entry| record.covers_entry(entry)).len() as u64;
                listings.push(HoldListing { record, batches });
            }
        }
        let note = MetaNote {
            action: "auditum.legal_hold.list",
            tenant: self.access.log_wide_tenant(call),
            target_type: "log",
            target_id: log_name.to_string(),
            details: object(serde_json::json!({ "log": log_name, "active_holds": listings.len() })),
        };
        self.access.record(call, note).await?;
        Ok(listings)
    }

    /// Requests restores of the archived batches in range, readable for `days`.
    pub async fn restore(&self, call: &Call, scope: RangeScope, days: u32, tier: RestoreTier) -> Result<RestoreSummary> {
        if !(1..=MAX_RESTORE_DAYS).contains(&days) {
            return Err(Error::bad_request("days", format!("must be between 1 and {MAX_RESTORE_DAYS}")));
        }
        let log = self.admit(call, "auditum.restore", &scope).await?;
        let in_range = covered_entries(log, |entry| {
            range_covers(
                scope.tenant_id.as_deref(),
                scope.since,
                scope.until,
                entry.min_occurred_at,
                entry.max_occurred_at,
                entry.tenants.as_deref(),
            )
        });
        let summary = archive::restore(log.store(), &in_range, days, tier)
            .await
            .map_err(|source| Error::Store { log: log.name().to_string(), source })?;
        let mut details = scope.details();
        details.insert("days".into(), days.into());
        details.insert("tier".into(), format!("{tier:?}").to_lowercase().into());
        details.insert("batches".into(), (in_range.len() as u64).into());
        details.insert("restores_started".into(), (summary.started.len() as u64).into());
        details.insert("in_progress".into(), summary.in_progress.into());
        details.insert("already_restored".into(), summary.already_restored.into());
        self.access.record(call, self.note(call, "auditum.restore", &scope, details)).await?;
        tracing::info!(parent: &call.span(), log = %log.name(), started = summary.started.len(), "restores requested");
        Ok(summary)
    }
}

fn check_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.len() > MAX_REASON_BYTES {
        return Err(Error::bad_request("reason", format!("must be 1 to {MAX_REASON_BYTES} bytes (say why, e.g. the case number)")));
    }
    Ok(())
}

/// Committed entries the predicate selects.
fn covered_entries(log: &Log, selects: impl Fn(&LedgerEntry) -> bool) -> Vec<Arc<LedgerEntry>> {
    log.ledger_snapshot().entries.into_iter().filter(|entry| selects(entry)).collect()
}

/// A hold record: create-only, locked like every immutable object of the log.
async fn put_record(log: &Log, key: &str, record: &impl serde::Serialize) -> Result<()> {
    let body = serde_json::to_vec(record).map_err(|error| Error::Incomplete(format!("hold record: {error}")))?;
    let options = store::RetentionPolicy::put_options(log.retention());
    store::put_immutable(log.store().as_ref(), key, body.into(), &options)
        .await
        .map_err(|source| Error::Store { log: log.name().to_string(), source })?;
    Ok(())
}

/// Legal hold on (or off) for each entry's batch object version and its ledger entry.
async fn set_legal_holds(log: &Log, entries: &[Arc<LedgerEntry>], on: bool) -> Result<()> {
    let store = log.store().clone();
    // Collected first: a lazy iterator's closure held across the await is not Send-general.
    let mut calls: Vec<(String, Option<String>)> = Vec::with_capacity(entries.len() * 2);
    for entry in entries {
        calls.push((entry.object.clone(), entry.version.clone()));
        calls.push((paths::ledger_entry_key(log.name(), entry.index), None));
    }
    futures::stream::iter(calls)
        .map(|(key, version)| {
            let store = store.clone();
            async move { store.set_legal_hold(&key, version.as_deref(), on).await }
        })
        .buffer_unordered(CONCURRENT_HOLD_CALLS)
        .try_collect::<Vec<()>>()
        .await
        .map_err(|source| Error::Store { log: log.name().to_string(), source })?;
    Ok(())
}
