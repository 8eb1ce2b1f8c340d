//! What a log loads at start besides its WAL: the ledger (checked with the verifier's chain
//! rules) and the ids of recently sealed batches, for idempotency across restarts.

use super::idempotency::{IdempotencyIndex, idempotency_key};
use super::{Error, Result};
use auditum_batch as batch;
use auditum_format::ledger::LedgerEntry;
use auditum_format::merkle::Hash;
use auditum_format::time::now_micros;
use auditum_store::ObjectStore;
use std::sync::Arc;
use std::time::Duration;

/// Reads every ledger entry and checks the chain with the verifier's rules (indexes dense from
/// 0, `prev` links, seqs contiguous). A broken chain refuses to start: writing on top of it
/// would bury the evidence.
pub async fn load_ledger(store: &dyn ObjectStore, log: &str) -> Result<(Vec<Arc<LedgerEntry>>, Vec<Hash>)> {
    let mut report = auditum_verify::Report::default();
    let (entries, hashes) =
        auditum_verify::read_ledger(store, log, &mut report).await.map_err(|source| Error::Store { log: log.to_string(), source })?;
    if let Some(problem) = report.problems.into_iter().next() {
        return Err(Error::Ledger { log: log.to_string(), key: problem.object, reason: format!("{}: {}", problem.kind, problem.detail) });
    }
    Ok((entries.into_iter().map(Arc::new).collect(), hashes))
}

/// Loads ids of batches sealed within the idempotency window, so a client retrying after a
/// restart still gets its original seq.
pub(super) async fn preload_recent_ids(
    store: &dyn ObjectStore,
    log: &str,
    entries: &[Arc<LedgerEntry>],
    ids: &mut IdempotencyIndex,
    window: Duration,
) -> Result<()> {
    let horizon = now_micros().saturating_sub(window.as_micros().min(i64::MAX as u128) as i64);
    for entry in entries.iter().filter(|entry| entry.sealed_at >= horizon) {
        let body =
            store.get(&entry.object, entry.version.as_deref()).await.map_err(|source| Error::Store { log: log.to_string(), source })?;
        let mut rows = tokio::task::spawn_blocking(move || batch::read_idempotency_columns(body))
            .await
            .map_err(|error| Error::Task { log: log.to_string(), reason: error.to_string() })?
            .map_err(|error| Error::Archive { log: log.to_string(), reason: format!("{}: {error}", entry.object) })?;
        rows.sort_by_key(|row| row.seq);
        for row in rows {
            ids.insert(idempotency_key(&row.tenant_id, &row.id), row.seq, row.received_at);
        }
    }
    for entry in entries {
        ids.on_committed(entry.end_seq(), entry.sealed_at);
    }
    ids.expire(now_micros());
    Ok(())
}
