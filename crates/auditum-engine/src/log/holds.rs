//! Legal holds of a log (DESIGN §12; docs/FORMAT.md, Legal holds): each hold is an immutable
//! record under `{log}/holds/`, and clearing it writes a second record beside it, so the set of
//! active holds survives restarts and is itself evidence. The sealer puts every batch (and its
//! ledger entry) that falls in an active hold's range with legal hold ON from the start.

use super::{Error, Result};
use auditum_format::ledger::LedgerEntry;
use auditum_format::paths;
use auditum_store::ObjectStore;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One legal hold as it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub id: String,
    pub log: String,
    /// Only batches holding this tenant's events; None holds every batch in the range.
    pub tenant_id: Option<String>,
    /// `occurred_at` range [since, until), µs since the epoch.
    pub since: i64,
    pub until: i64,
    pub reason: String,
    pub set_at: i64,
    /// The API key that set it.
    pub set_by: String,
    /// The tenant that key is bound to; None for a platform key. A tenant's key may clear only
    /// the holds its own tenant's keys set, never one an operator set on its data.
    #[serde(default)]
    pub set_by_tenant: Option<String>,
}

/// The record that a hold was cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCleared {
    pub id: String,
    pub cleared_at: i64,
    pub cleared_by: String,
    pub reason: String,
}

impl HoldRecord {
    /// Whether a batch with these bounds and tenants falls under the hold: its `occurred_at`
    /// range overlaps, and it may hold the tenant (a batch with over 1000 tenants lists none).
    pub fn covers(&self, min_occurred_at: i64, max_occurred_at: i64, tenants: Option<&[String]>) -> bool {
        range_covers(self.tenant_id.as_deref(), self.since, self.until, min_occurred_at, max_occurred_at, tenants)
    }

    pub fn covers_entry(&self, entry: &LedgerEntry) -> bool {
        self.covers(entry.min_occurred_at, entry.max_occurred_at, entry.tenants.as_deref())
    }

    /// Same log, tenant and range: what `hold clear` names.
    pub fn same_scope(&self, tenant_id: Option<&str>, since: i64, until: i64) -> bool {
        self.tenant_id.as_deref() == tenant_id && self.since == since && self.until == until
    }
}

/// Whether a batch's `occurred_at` bounds overlap [since, until) and it may hold `tenant`'s events
/// (a batch with over 1000 tenants lists none, so it may).
pub fn range_covers(
    tenant: Option<&str>,
    since: i64,
    until: i64,
    min_occurred_at: i64,
    max_occurred_at: i64,
    tenants: Option<&[String]>,
) -> bool {
    let overlaps = min_occurred_at < until && max_occurred_at >= since;
    let has_tenant = match (tenant, tenants) {
        (Some(tenant), Some(tenants)) => tenants.iter().any(|listed| listed == tenant),
        _ => true,
    };
    overlaps && has_tenant
}

/// The log's active holds: every hold record without a cleared record, oldest first.
pub async fn load_active(store: &dyn ObjectStore, log: &str) -> Result<Vec<HoldRecord>> {
    let store_error = |source| Error::Store { log: log.to_string(), source };
    let listed = store.list(&paths::holds_prefix(log)).await.map_err(store_error)?;
    let cleared: HashSet<&str> =
        listed.iter().filter_map(|meta| paths::hold_from_key(log, &meta.key)).filter(|(_, cleared)| *cleared).map(|(id, _)| id).collect();
    let mut active = Vec::new();
    for meta in &listed {
        let Some((id, false)) = paths::hold_from_key(log, &meta.key) else { continue };
        if cleared.contains(id) {
            continue;
        }
        let body = store.get(&meta.key, None).await.map_err(store_error)?;
        let record: HoldRecord = serde_json::from_slice(&body)
            .map_err(|error| Error::Archive { log: log.to_string(), reason: format!("hold record {} is invalid: {error}", meta.key) })?;
        active.push(record);
    }
    active.sort_by_key(|record| record.set_at);
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(tenant: Option<&str>) -> HoldRecord {
        HoldRecord {
            id: "h".into(),
            log: "default".into(),
            tenant_id: tenant.map(str::to_string),
            since: 100,
            until: 200,
            reason: "case 1".into(),
            set_at: 0,
            set_by: "admin".into(),
            set_by_tenant: None,
        }
    }

    #[test]
    fn a_hold_covers_overlapping_batches_of_its_tenant() {
        let acme = vec!["acme".to_string()];
        let globex = vec!["globex".to_string()];
        assert!(hold(None).covers(50, 100, Some(&globex)), "touching since");
        assert!(!hold(None).covers(50, 99, None), "ends before since");
        assert!(!hold(None).covers(200, 300, None), "until is exclusive");
        assert!(hold(Some("acme")).covers(150, 160, Some(&acme)));
        assert!(!hold(Some("acme")).covers(150, 160, Some(&globex)));
        assert!(hold(Some("acme")).covers(150, 160, None), "a batch too large to list its tenants may hold acme");
    }
}
