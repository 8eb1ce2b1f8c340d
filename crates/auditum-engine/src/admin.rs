//! Admin operations (DESIGN §12), scope `admin`: legal holds and restores. Each is
//! authenticated like any call and recorded as a meta-audit event once it has run, with what it
//! did (`auditum.legal_hold.set`, `auditum.legal_hold.cleared`, `auditum.legal_hold.list`,
//! `auditum.restore`); a refused or failed attempt is recorded too (refusals in the caller's
//! tenant).

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
use std::time::Duration;

/// Legal-hold calls to the store at once.
const CONCURRENT_HOLD_CALLS: usize = 16;
/// Tries of one legal-hold call when the store is throttling or briefly unreachable.
const HOLD_CALL_TRIES: u32 = 4;
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
        let tenant = self.tenant_id.as_ref().map(|tenant| format!("for tenant {tenant} ")).unwrap_or_default();
        format!("{tenant}over [{}, {})", rfc3339_micros(self.since), rfc3339_micros(self.until))
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        object(serde_json::json!({
            "log": self.log,
            "tenant_id": self.tenant_id,
            "since": rfc3339_micros(self.since),
            "until": rfc3339_micros(self.until),
        }))
    }

    fn covers(&self, entry: &LedgerEntry) -> bool {
        range_covers(
            self.tenant_id.as_deref(),
            self.since,
            self.until,
            entry.min_occurred_at,
            entry.max_occurred_at,
            entry.tenants.as_deref(),
        )
    }
}

/// What `hold set` or `hold clear` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldChange {
    pub hold_ids: Vec<String>,
    /// Batch objects whose legal hold was set (or released), each with its ledger entry.
    pub batch_objects: u64,
    /// Batch versions in range that no longer exist (expired after their retention).
    pub gone: u64,
    /// `clear`: batches in the range that stay held by another active hold the caller may see.
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
        log.require_writer(action)?;
        let permitted = match (call.caller.tenant(), &scope.tenant_id) {
            (Some(own), None) => Err(Denied::PermissionDenied(format!(
                "tenant_id: api key {:?} is bound to tenant {own:?} and must name it (a whole log holds other tenants' events)",
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

    /// Legal hold is S3 Object Lock: a log without retention writes unlocked objects (or a file
    /// store), and a batch put with legal hold on a bucket without Object Lock would be refused,
    /// stopping its seal. Refused here, before anything is written.
    fn require_object_lock(log: &Log) -> Result<()> {
        if log.retention().is_some() {
            return Ok(());
        }
        Err(Error::FailedPrecondition(format!(
            "log {}: legal hold needs Object Lock, and the log has no retention: set retention_mode and retention_days for it, on an S3 bucket created with Object Lock",
            log.name()
        )))
    }

    fn note(&self, call: &Call, action: &'static str, scope: &RangeScope, details: serde_json::Map<String, serde_json::Value>) -> MetaNote {
        let tenant = scope.tenant_id.clone().unwrap_or_else(|| self.access.log_wide_tenant(call));
        MetaNote { action, tenant, target_type: "log", target_id: scope.log.clone(), details }
    }

    /// Records a call that failed after it was admitted; the failure to record is only logged,
    /// so the caller sees the original error.
    async fn record_failure(&self, call: &Call, note: MetaNote, error: &Error) {
        let code = match error {
            Error::NoSuchHold { .. } => "NotFound",
            Error::Store { source, .. } if source.is_transient() => "Unavailable",
            _ => "Internal",
        };
        if let Err(recording) = self.access.record_failure(call, note, code, &error.to_string()).await {
            tracing::warn!(parent: &call.span(), error = %recording, "cannot record the failed admin call");
        }
    }

    /// Sets a legal hold: recorded first (so batches sealed from now on in the range are put
    /// held), then Object Lock legal hold ON for every batch object and ledger entry in range.
    /// Setting the scope of an active hold holds its objects again (a repair after a failure).
    pub async fn set_hold(&self, call: &Call, scope: RangeScope, reason: String) -> Result<HoldChange> {
        check_reason(&reason)?;
        let log = self.admit(call, "auditum.legal_hold.set", &scope).await?;
        Self::require_object_lock(log)?;
        let mut details = scope.details();
        details.insert("reason".into(), reason.clone().into());
        let result = self.apply_set(call, log, &scope, reason).await;
        match result {
            Ok(change) => {
                details.insert("hold_id".into(), change.hold_ids.first().cloned().unwrap_or_default().into());
                details.insert("batch_objects".into(), change.batch_objects.into());
                details.insert("gone".into(), change.gone.into());
                details.insert("already_active".into(), change.already_active.into());
                self.access.record(call, self.note(call, "auditum.legal_hold.set", &scope, details)).await?;
                tracing::info!(parent: &call.span(), log = %log.name(), batch_objects = change.batch_objects, "legal hold set");
                Ok(change)
            }
            Err(error) => {
                self.record_failure(call, self.note(call, "auditum.legal_hold.set", &scope, details), &error).await;
                Err(error)
            }
        }
    }

    async fn apply_set(&self, call: &Call, log: &Log, scope: &RangeScope, reason: String) -> Result<HoldChange> {
        let _changing = log.hold_changes().await;
        let (record, covered, already_active) = {
            // A seal in flight commits first; every later one sees the hold and puts its batch held.
            let _sealing = log.pause_sealing().await;
            let existing =
                log.active_holds().into_iter().find(|hold| hold.same_scope(scope.tenant_id.as_deref(), scope.since, scope.until));
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
                        reason,
                        set_at: now_micros(),
                        set_by: call.caller.key_id().to_string(),
                        set_by_tenant: call.caller.tenant().map(str::to_string),
                    };
                    put_record(log, &paths::hold_key(log.name(), &record.id), &record).await?;
                    log.add_hold(record.clone());
                    record
                }
            };
            (record.clone(), covered_entries(log, |entry| record.covers_entry(entry)), already_active)
        };
        let applied = set_legal_holds(log, &covered, true).await?;
        Ok(HoldChange { hold_ids: vec![record.id], batch_objects: applied.changed, gone: applied.gone, still_held: 0, already_active })
    }

    /// Clears the active holds with exactly this scope: releases the batch objects and entries
    /// no other active hold covers, then records the clearing. A key bound to a tenant clears
    /// only holds its tenant's keys set.
    pub async fn clear_hold(&self, call: &Call, scope: RangeScope, reason: String) -> Result<HoldChange> {
        check_reason(&reason)?;
        let log = self.admit(call, "auditum.legal_hold.cleared", &scope).await?;
        let mut details = scope.details();
        details.insert("reason".into(), reason.clone().into());
        match self.apply_clear(call, log, &scope, reason).await {
            Ok(change) => {
                details.insert("hold_ids".into(), change.hold_ids.clone().into());
                details.insert("batch_objects".into(), change.batch_objects.into());
                details.insert("gone".into(), change.gone.into());
                details.insert("still_held".into(), change.still_held.into());
                self.access.record(call, self.note(call, "auditum.legal_hold.cleared", &scope, details)).await?;
                tracing::info!(parent: &call.span(), log = %log.name(), released = change.batch_objects, still_held = change.still_held, "legal hold cleared");
                Ok(change)
            }
            Err(Error::Denied(denied)) => {
                Err(self.access.deny(call, denied, self.note(call, "auditum.legal_hold.cleared", &scope, details)).await)
            }
            Err(error) => {
                self.record_failure(call, self.note(call, "auditum.legal_hold.cleared", &scope, details), &error).await;
                Err(error)
            }
        }
    }

    async fn apply_clear(&self, call: &Call, log: &Log, scope: &RangeScope, reason: String) -> Result<HoldChange> {
        let _changing = log.hold_changes().await;
        // Held for the whole clear: no batch is sealed held while objects are being released.
        let _sealing = log.pause_sealing().await;
        let own_tenant = call.caller.tenant();
        let visible = |hold: &HoldRecord| own_tenant.is_none() || hold.tenant_id.as_deref() == own_tenant;
        let (clearing, staying): (Vec<HoldRecord>, Vec<HoldRecord>) =
            log.active_holds().into_iter().partition(|hold| hold.same_scope(scope.tenant_id.as_deref(), scope.since, scope.until));
        if clearing.is_empty() {
            let active = staying
                .iter()
                .filter(|hold| visible(hold))
                .map(|hold| RangeScope { log: hold.log.clone(), tenant_id: hold.tenant_id.clone(), since: hold.since, until: hold.until })
                .map(|scope| scope.describe())
                .collect();
            return Err(Error::NoSuchHold { log: log.name().to_string(), scope: scope.describe(), active });
        }
        if let Some(own) = own_tenant
            && let Some(foreign) = clearing.iter().find(|hold| hold.set_by_tenant.as_deref() != Some(own))
        {
            return Err(Error::Denied(Denied::PermissionDenied(format!(
                "hold {}: set by key {:?}, which is not bound to tenant {own:?}: only a platform key may clear it",
                foreign.id, foreign.set_by
            ))));
        }
        let in_range = covered_entries(log, |entry| clearing.iter().any(|hold| hold.covers_entry(entry)));
        let (kept, released): (Vec<Arc<LedgerEntry>>, Vec<Arc<LedgerEntry>>) =
            in_range.into_iter().partition(|entry| staying.iter().any(|hold| hold.covers_entry(entry)));
        // Released before the clearing is recorded: if a step fails, what was released is held
        // again and the hold stays active, so clearing again finishes the job.
        let released_now = match set_legal_holds(log, &released, false).await {
            Ok(applied) => applied,
            Err(error) => {
                if let Err(restoring) = set_legal_holds(log, &released, true).await {
                    tracing::error!(log = %log.name(), error = %restoring, "a failed clear could not hold its objects again: run `auditum hold set` with the same scope");
                }
                return Err(error);
            }
        };
        let ids: Vec<String> = clearing.iter().map(|hold| hold.id.clone()).collect();
        for id in &ids {
            let cleared = HoldCleared {
                id: id.clone(),
                cleared_at: now_micros(),
                cleared_by: call.caller.key_id().to_string(),
                reason: reason.clone(),
            };
            if let Err(error) = put_record(log, &paths::hold_cleared_key(log.name(), id), &cleared).await {
                let _ = set_legal_holds(log, &released, true).await;
                return Err(error);
            }
        }
        log.remove_holds(&ids);
        // A tenant's key learns only of the holds it may see.
        let still_held = kept.iter().filter(|entry| staying.iter().any(|hold| visible(hold) && hold.covers_entry(entry))).count() as u64;
        Ok(HoldChange { hold_ids: ids, batch_objects: released_now.changed, gone: released_now.gone, still_held, already_active: false })
    }

    /// Active holds of one log (or of every log the caller may see when `log` is empty); a key
    /// bound to a tenant sees only its tenant's holds.
    pub async fn list_holds(&self, call: &Call, log_name: &str) -> Result<Vec<HoldListing>> {
        let note = |details: serde_json::Value| MetaNote {
            action: "auditum.legal_hold.list",
            tenant: self.access.log_wide_tenant(call),
            target_type: "log",
            target_id: if log_name.is_empty() { "*".to_string() } else { log_name.to_string() },
            details: object(details),
        };
        // A read-only node knows no holds (they are the writer's): it says so rather than "none".
        if let Some(read_only) = self.logs.all().find(|log| log.is_read_only()) {
            read_only.require_writer("auditum.legal_hold.list")?;
        }
        let logs: Vec<&Log> = if log_name.is_empty() {
            self.logs.all().filter(|log| self.access.require_log(call, log).is_ok()).collect()
        } else {
            let log = self.logs.by_name(log_name).ok_or_else(|| Error::NoSuchLog { name: log_name.to_string() })?;
            log.require_writer("auditum.legal_hold.list")?;
            if let Err(denied) = self.access.require_log(call, log) {
                return Err(self.access.deny(call, denied, note(serde_json::json!({ "log": log_name }))).await);
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
        self.access.record(call, note(serde_json::json!({ "log": log_name, "active_holds": listings.len() }))).await?;
        Ok(listings)
    }

    /// Holds every object the active holds cover again: at start, so a set or clear that
    /// stopped half way (a crash, an outage) ends with everything held that should be.
    pub async fn reapply_holds(&self) {
        for log in self.logs.all() {
            if log.require_store().is_err() {
                continue;
            }
            let _changing = log.hold_changes().await;
            for hold in log.active_holds() {
                let covered = covered_entries(log, |entry| hold.covers_entry(entry));
                match set_legal_holds(log, &covered, true).await {
                    Ok(applied) => {
                        tracing::info!(log = %log.name(), hold_id = %hold.id, batch_objects = applied.changed, "legal hold in force")
                    }
                    Err(error) => {
                        tracing::error!(log = %log.name(), hold_id = %hold.id, %error, "cannot hold every object of an active legal hold; run `auditum hold set` with its scope")
                    }
                }
            }
        }
    }

    /// Requests restores of the archived batches in range, readable for `days`.
    pub async fn restore(&self, call: &Call, scope: RangeScope, days: u32, tier: RestoreTier) -> Result<RestoreSummary> {
        if !(1..=MAX_RESTORE_DAYS).contains(&days) {
            return Err(Error::bad_request("days", format!("must be between 1 and {MAX_RESTORE_DAYS}")));
        }
        let log = self.admit(call, "auditum.restore", &scope).await?;
        let in_range = covered_entries(log, |entry| scope.covers(entry));
        let mut details = scope.details();
        details.insert("days".into(), days.into());
        details.insert("tier".into(), format!("{tier:?}").to_lowercase().into());
        details.insert("batches".into(), (in_range.len() as u64).into());
        let summary = match archive::restore(log.store(), &in_range, days, tier).await {
            Ok(summary) => summary,
            Err(source) => {
                let error = Error::Store { log: log.name().to_string(), source };
                self.record_failure(call, self.note(call, "auditum.restore", &scope, details), &error).await;
                return Err(error);
            }
        };
        details.insert("restores_started".into(), (summary.started.len() as u64).into());
        details.insert("in_progress".into(), summary.in_progress.into());
        details.insert("already_restored".into(), summary.already_restored.into());
        details.insert("gone".into(), summary.gone.into());
        self.access.record(call, self.note(call, "auditum.restore", &scope, details)).await?;
        tracing::info!(parent: &call.span(), log = %log.name(), started = summary.started.len(), "restores requested");
        Ok(summary)
    }
}

pub(crate) fn check_reason(reason: &str) -> Result<()> {
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

/// What a round of legal-hold calls did.
#[derive(Debug, Clone, Copy, Default)]
struct HoldsApplied {
    /// Batches whose object (and entry) now have the asked status.
    changed: u64,
    /// Batch versions that no longer exist (expired after their retention): nothing to hold.
    gone: u64,
}

/// Legal hold on (or off) for each entry's batch object version and its ledger entry; transient
/// store errors are retried.
async fn set_legal_holds(log: &Log, entries: &[Arc<LedgerEntry>], on: bool) -> Result<HoldsApplied> {
    let store = log.store().clone();
    let name = log.name().to_string();
    let outcomes: Vec<bool> = futures::stream::iter(entries.iter().cloned())
        .map(|entry| {
            let store = store.clone();
            let entry_key = paths::ledger_entry_key(&name, entry.index);
            async move {
                match set_one(store.as_ref(), &entry.object, entry.version.as_deref(), on).await {
                    Ok(()) => {}
                    Err(store::Error::NotFound { .. }) => return Ok(false),
                    Err(error) => return Err(error),
                }
                set_one(store.as_ref(), &entry_key, None, on).await?;
                Ok(true)
            }
        })
        .buffer_unordered(CONCURRENT_HOLD_CALLS)
        .try_collect()
        .await
        .map_err(|source| Error::Store { log: log.name().to_string(), source })?;
    let changed = outcomes.iter().filter(|changed| **changed).count() as u64;
    Ok(HoldsApplied { changed, gone: outcomes.len() as u64 - changed })
}

async fn set_one(store: &dyn store::ObjectStore, key: &str, version: Option<&str>, on: bool) -> store::Result<()> {
    let mut delay = Duration::from_millis(200);
    let mut tries = 1;
    loop {
        match store.set_legal_hold(key, version, on).await {
            Err(error) if error.is_transient() && tries < HOLD_CALL_TRIES => {
                tracing::warn!(key, %error, retry_in_ms = delay.as_millis() as u64, "legal hold call failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 3;
                tries += 1;
            }
            other => return other,
        }
    }
}
