//! What a log loads at start besides its WAL: the ledger (checked with the verifier's chain
//! rules) and the ids of recently sealed batches, for idempotency across restarts.

use super::idempotency::{IdempotencyIndex, idempotency_key};
use super::{Error, Result};
use auditum_batch as batch;
use auditum_format::event::Seq;
use auditum_format::ledger::LedgerEntry;
use auditum_format::merkle::Hash;
use auditum_format::time::now_micros;
use auditum_store::{ObjectStore, ReadyCheck};
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

/// What the store knows of a log at start: its ledger, checked, and the ids of batches sealed
/// within the idempotency window (so a client retrying after a restart gets its original seq).
pub(super) struct StoreState {
    pub entries: Vec<Arc<LedgerEntry>>,
    pub entry_hashes: Vec<Hash>,
    /// (key, seq, received_at) of recently sealed events, in seq order.
    pub recent_ids: Vec<(u128, Seq, i64)>,
    /// Active legal holds.
    pub holds: Vec<super::holds::HoldRecord>,
}

impl StoreState {
    pub fn ledger_next(&self) -> Seq {
        self.entries.last().map(|entry| entry.end_seq()).unwrap_or_default()
    }

    /// Feeds the ids and the commit times into an index.
    pub fn apply_to(&self, ids: &mut IdempotencyIndex) {
        for &(key, seq, received_at) in &self.recent_ids {
            if ids.get(key).is_none() {
                ids.insert(key, seq, received_at);
            }
        }
        for entry in &self.entries {
            ids.on_committed(entry.end_seq(), entry.sealed_at);
        }
        ids.expire(now_micros());
    }
}

/// Reads the store's view of a log: bucket checks, the ledger, recent ids. Every call is
/// bounded by the store's timeouts, so an unreachable store is an error within seconds.
pub(super) async fn read_store_state(store: &dyn ObjectStore, ready: &ReadyCheck, window: Duration) -> Result<StoreState> {
    let log = ready.keys.log.as_str();
    store.check_ready(ready).await.map_err(|source| Error::Store { log: log.to_string(), source })?;
    let (entries, entry_hashes) = load_ledger(store, log).await?;
    let recent_ids = recent_ids(store, log, &entries, window).await?;
    let holds = super::holds::load_active(store, log).await?;
    Ok(StoreState { entries, entry_hashes, recent_ids, holds })
}

/// What the log asks of its store at start: Object Lock when it has retention, and no lifecycle
/// rule that deletes its batches early or archives its ledger.
pub(super) fn ready_check(settings: &super::LogSettings) -> ReadyCheck {
    let log = &settings.name;
    ReadyCheck {
        keys: super::log_keys(log),
        object_lock_required: settings.retention.is_some(),
        retention_days: settings.retention.map(|retention| retention.days),
    }
}

async fn recent_ids(store: &dyn ObjectStore, log: &str, entries: &[Arc<LedgerEntry>], window: Duration) -> Result<Vec<(u128, Seq, i64)>> {
    let mut out = Vec::new();
    let horizon = now_micros().saturating_sub(window.as_micros().min(i64::MAX as u128) as i64);
    for entry in entries.iter().filter(|entry| entry.sealed_at >= horizon) {
        let body = match store.get(&entry.object, entry.version.as_deref()).await {
            Ok(body) => body,
            // A batch written in an archive class: its ids cannot be read back; a retry of one
            // of its events within the window is then stored again rather than refused.
            Err(auditum_store::Error::Archived { .. }) => {
                tracing::warn!(log, object = %entry.object, "a recently sealed batch is archived: its event ids are not loaded for idempotency");
                continue;
            }
            Err(source) => return Err(Error::Store { log: log.to_string(), source }),
        };
        let mut rows = tokio::task::spawn_blocking(move || batch::read_idempotency_columns(body))
            .await
            .map_err(|error| Error::Task { log: log.to_string(), reason: error.to_string() })?
            .map_err(|error| Error::Archive { log: log.to_string(), reason: format!("{}: {error}", entry.object) })?;
        rows.sort_by_key(|row| row.seq);
        out.extend(rows.into_iter().map(|row| (idempotency_key(&row.tenant_id, &row.id), row.seq, row.received_at)));
    }
    Ok(out)
}

/// Completes a start made while the store did not answer: retries the store until it answers,
/// then checks its ledger against the WAL this process took over, adopts the ledger, the recent
/// ids and the checkpoints, and opens the log for reads and seals.
pub(super) async fn complete_pending_start(log: super::Log, replay_first: Option<Seq>, wal_end: Seq) {
    use super::{LogStatus, lock};
    let settings = &log.inner.settings;
    let mut stop = log.inner.stop.subscribe();
    let mut delay = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        let state = match read_store_state(settings.store.as_ref(), &ready_check(settings), settings.idempotency_window).await {
            Ok(state) => state,
            Err(Error::Store { source, .. }) if source.is_transient() => {
                tracing::warn!(log = %log.name(), %source, retry_in_s = delay.as_secs(), "the store still does not answer");
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(error) => return fail(&log, error.to_string()),
        };
        let ledger_next = state.ledger_next();
        // The WAL must hold every seq from the ledger's end on (segments are deleted only once
        // committed), and the ledger must not know seqs this process has been assigning.
        if let Some(first) = replay_first
            && first > ledger_next
        {
            return fail(
                &log,
                format!("the wal starts at seq {first} but the ledger ends at {ledger_next}: acknowledged events are missing"),
            );
        }
        if ledger_next > wal_end {
            let reason = format!(
                "the ledger already holds seqs up to {ledger_next}, beyond this wal's end {wal_end}: another process wrote this log"
            );
            let _ = log.fence(reason);
            return;
        }
        {
            let mut shared = lock(&log.inner.shared);
            shared.entries = state.entries.clone();
            shared.entry_hashes = state.entry_hashes.clone();
            *log.inner.holds.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = state.holds.clone();
            while shared.open.front().is_some_and(|record| record.seq < ledger_next) {
                if let Some(record) = shared.open.pop_front() {
                    shared.open_bytes -= record.encoded_len_hint();
                }
            }
            shared.unsealed_by_tenant.forget_below(ledger_next);
        }
        let _ = log.inner.commands.send(super::writer::WalCommand::Preload(Box::new(state))).await;
        log.inner.committed.send_replace(ledger_next);
        // Checkpoints missing after a crash are written now; a store that drops again is retried.
        while let Err(error) = log.repair_checkpoints().await {
            match &error {
                Error::Store { source, .. } if source.is_transient() => {
                    tracing::warn!(log = %log.name(), %error, "cannot repair checkpoints yet");
                    tokio::time::sleep(delay).await;
                }
                _ => return fail(&log, error.to_string()),
            }
        }
        {
            let mut shared = lock(&log.inner.shared);
            if matches!(shared.status, LogStatus::Pending(_)) {
                shared.status = LogStatus::Serving;
            }
        }
        tracing::info!(log = %log.name(), ledger_entries = log.ledger_snapshot().entries.len(), "the store answers: the ledger checks out, reads and seals resume");
        log.inner.seal_wakeup.notify_one();
        return;
    }
}

fn fail(log: &super::Log, reason: String) {
    tracing::error!(log = %log.name(), %reason, "the log cannot complete its start");
    super::lock(&log.inner.shared).status = super::LogStatus::Failed(reason);
}
