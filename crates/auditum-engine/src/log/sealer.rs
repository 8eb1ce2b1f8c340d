//! The sealer: cuts the open batch, encodes it as Parquet (on the blocking pool), puts the
//! batch object and then its ledger entry (the commit point), and publishes the checkpoint.

use super::writer::WalCommand;
use super::{Error, Log, LogStatus, Result, Shared, lock};
use crate::metrics::{self, METRICS};
use auditum_batch::{self as batch, BuiltBatch};
use auditum_format::event::EventRecord;
use auditum_format::ledger::{self, LedgerEntry, Retention};
use auditum_format::paths;
use auditum_format::time::now_micros;
use auditum_store::{self as store, PutOptions, RetentionPolicy};
use chrono::Utc;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// When a batch is full, and how much one batch takes at most.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchCaps {
    pub max_events: usize,
    pub max_bytes: usize,
}

/// Takes the front of `open` as one batch: up to `max_events` events and `max_bytes` bytes (a
/// single larger event still makes a batch). With `only_full`, nothing unless the open events
/// already fill a batch. `open_bytes` tracks the encoded size of what stays open.
pub(super) fn cut_batch(
    open: &mut VecDeque<Arc<EventRecord>>,
    open_bytes: &mut usize,
    caps: BatchCaps,
    only_full: bool,
) -> Option<Vec<Arc<EventRecord>>> {
    if open.is_empty() {
        return None;
    }
    let full = open.len() >= caps.max_events || *open_bytes >= caps.max_bytes;
    if only_full && !full {
        return None;
    }
    let mut records = Vec::new();
    let mut bytes = 0;
    while let Some(record) = open.front() {
        let size = record.encoded_len_hint();
        if !records.is_empty() && (records.len() >= caps.max_events || bytes + size > caps.max_bytes) {
            break;
        }
        bytes += size;
        if let Some(record) = open.pop_front() {
            records.push(record);
        }
    }
    *open_bytes -= bytes;
    Some(records)
}

impl Log {
    /// Cuts the front of the open batch, up to the caps; the batch being sealed, if any, first.
    pub(super) fn cut(&self, only_full: bool) -> Option<Arc<Vec<Arc<EventRecord>>>> {
        let settings = &self.inner.settings;
        let mut shared = lock(&self.inner.shared);
        if shared.sealing.is_some() {
            return shared.sealing.clone();
        }
        let Shared { open, open_bytes, .. } = &mut *shared;
        let caps = BatchCaps { max_events: settings.batch_max_events, max_bytes: settings.batch_max_bytes };
        let batch = Arc::new(cut_batch(open, open_bytes, caps, only_full)?);
        shared.sealing = Some(batch.clone());
        Some(batch)
    }

    /// Seals cut batches until nothing (or, with `only_full`, nothing full) is open.
    pub(super) async fn seal_pending(&self, only_full: bool) -> Result<()> {
        let _sealing = self.inner.seal_lock.lock().await;
        loop {
            // Until the store's ledger is known, there is no index to commit at.
            if matches!(self.status(), LogStatus::Pending(_)) {
                return Ok(());
            }
            // Acknowledged events are sealed even while a WAL failure refuses new appends
            // (they are durable, and sealing them frees WAL space); a fenced log seals nothing.
            if let Some(error) = self.status_error(&self.status())
                && !matches!(error, Error::ShuttingDown { .. } | Error::Failed { .. })
            {
                return Err(error);
            }
            let Some(records) = self.cut(only_full) else { return Ok(()) };
            self.seal_batch(records).await?;
        }
    }

    pub(super) fn fence(&self, reason: String) -> Error {
        tracing::error!(log = %self.name(), %reason, "log fenced: another writer owns it; this process stops writing it");
        lock(&self.inner.shared).status = LogStatus::Fenced(reason.clone());
        METRICS.log_fenced.get_or_create(&metrics::log_label(self.name())).set(1);
        self.inner.committed.send_modify(|_| {});
        Error::Fenced { log: self.name().to_string(), reason }
    }

    pub(super) async fn seal_batch(&self, records: Arc<Vec<Arc<EventRecord>>>) -> Result<()> {
        let log = self.name().to_string();
        let started = std::time::Instant::now();
        let sealed_at = Utc::now();
        let sealed_at_micros = sealed_at.timestamp_micros();
        let cpu_records = records.clone();
        let layout = self.inner.settings.batch_layout;
        let built: BuiltBatch = crate::background::run_on_own_thread("auditum-seal", move || batch::build_batch(&cpu_records, layout))
            .await
            .map_err(|reason| Error::Task { log: log.clone(), reason })?
            .map_err(|error| Error::Archive { log: log.clone(), reason: format!("cannot encode batch: {error}") })?;
        let store = self.inner.settings.store.clone();
        // A batch in an active legal hold's range is held from its first byte, and so is its entry.
        let held = self.held(built.min_occurred_at, built.max_occurred_at, built.tenants.as_deref());
        let put_options = PutOptions { legal_hold: held, storage_class: self.inner.settings.batch_storage_class, ..self.put_options() };
        let (index, prev) = {
            let shared = lock(&self.inner.shared);
            (shared.entries.len() as u64, shared.entry_hashes.last().copied().unwrap_or(ledger::GENESIS_PREV))
        };

        // The batch object: a fresh random attempt id per try, so an orphan of an earlier try
        // (crash between the two puts) never collides.
        let (object, version) = loop {
            let key = paths::batch_key(&log, index, rand::random(), sealed_at);
            let result =
                self.with_retries("put batch", || store::put_immutable(store.as_ref(), &key, built.bytes.clone(), &put_options)).await;
            match result {
                Ok(put) => break (key, put.version),
                Err(Error::Store { source: store::Error::AlreadyExists { .. }, .. }) => continue,
                Err(error) => return Err(error),
            }
        };

        let entry = LedgerEntry {
            log: log.clone(),
            index,
            prev,
            object,
            version,
            sha256: built.sha256,
            size: built.bytes.len() as u64,
            first_seq: built.first_seq,
            count: built.count,
            root: built.root,
            min_occurred_at: built.min_occurred_at,
            max_occurred_at: built.max_occurred_at,
            min_received_at: built.min_received_at,
            max_received_at: built.max_received_at,
            sealed_at: sealed_at_micros,
            // Version 2 from here on (an older version 1 ledger continues in version 2).
            retention: Retention::RetainUntil(put_options.retention.as_ref().map(|retention| retention.retain_until.timestamp_micros())),
            tenants: built.tenants.clone(),
        };
        let text = entry.to_json_text();
        let entry_key = paths::ledger_entry_key(&log, index);
        // The commit point: create-only, so a second writer's put of this index fails here.
        let entry_options = PutOptions { legal_hold: held, ..self.put_options() };
        self.put_owned_object_with("ledger entry", &entry_key, bytes::Bytes::from(text.clone()), &entry_options).await?;
        let entry_hash = ledger::entry_hash(text.as_bytes());
        let end = entry.end_seq();
        let (replaced, kept) = {
            let mut shared = lock(&self.inner.shared);
            let entry = Arc::new(entry);
            shared.entries.push(entry.clone());
            shared.entry_hashes.push(entry_hash);
            let sealed = shared.sealing.take();
            shared.unsealed_by_tenant.forget_below(end);
            self.keep_recently_sealed(&mut shared, entry, sealed)
        };
        drop(replaced);
        if kept {
            self.forget_recently_sealed_later(index);
        }
        let _ = self.inner.commands.send(WalCommand::Committed { committed_next: end, sealed_at: sealed_at_micros }).await;
        self.write_checkpoint(index + 1).await?;
        // Published only with its checkpoint, so a waiter can fetch a proof at once.
        self.inner.committed.send_replace(end);
        let label = metrics::log_label(&log);
        METRICS.sealed_batches.get_or_create(&label).inc();
        METRICS.sealed_events.get_or_create(&label).inc_by(built.count);
        METRICS.seal_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        METRICS.batch_events.get_or_create(&label).observe(built.count as f64);
        tracing::info!(
            log = %log, index, first_seq = %built.first_seq, count = built.count, bytes = built.bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64, "sealed batch"
        );
        Ok(())
    }

    /// Create-only put of an object only this log's writer may write (a ledger entry, a
    /// checkpoint note): other bytes already at the key mean another writer owns the log.
    pub(super) async fn put_owned_object(&self, what: &str, key: &str, body: bytes::Bytes) -> Result<()> {
        self.put_owned_object_with(what, key, body, &self.put_options()).await
    }

    async fn put_owned_object_with(&self, what: &str, key: &str, body: bytes::Bytes, put_options: &PutOptions) -> Result<()> {
        let store = &self.inner.settings.store;
        match self.with_retries(what, || store::put_immutable(store.as_ref(), key, body.clone(), put_options)).await {
            Ok(_) => Ok(()),
            Err(Error::Store { source: store::Error::AlreadyExists { .. }, .. }) => {
                Err(self.fence(format!("{what} {key} was written by another process")))
            }
            Err(error) => Err(error),
        }
    }

    /// Retain-until is counted from each write.
    pub(super) fn put_options(&self) -> PutOptions {
        RetentionPolicy::put_options(self.inner.settings.retention)
    }
}

/// Next instant that is a whole multiple of `interval` since the epoch ("aligned to the minute").
pub(super) fn next_aligned_tick(interval: Duration) -> tokio::time::Instant {
    let interval_micros = interval.as_micros().max(1) as i64;
    let now = now_micros();
    let next = (now.div_euclid(interval_micros) + 1) * interval_micros;
    tokio::time::Instant::now() + Duration::from_micros((next - now).max(0) as u64)
}

/// Seals on every aligned tick, and as soon as the open batch is full.
pub(super) async fn run_sealer(log: Log, mut stop: watch::Receiver<Option<tokio::time::Instant>>) {
    let mut only_full = false; // replayed events are sealed at once, not a whole interval later
    loop {
        if stop.borrow_and_update().is_some() {
            break;
        }
        match log.seal_pending(only_full).await {
            Ok(()) => {}
            Err(Error::Fenced { .. }) => break,
            Err(error) => tracing::error!(log = %log.name(), %error, "sealing failed; will retry at the next tick"),
        }
        let tick = next_aligned_tick(log.inner.settings.seal_interval);
        only_full = tokio::select! {
            _ = tokio::time::sleep_until(tick) => false,
            _ = log.inner.seal_wakeup.notified() => true,
            _ = stop.changed() => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditum_format::event::Seq;

    pub(super) fn open_events(count: usize, action_len: usize) -> (VecDeque<Arc<EventRecord>>, usize) {
        let open: VecDeque<Arc<EventRecord>> = (0..count)
            .map(|seq| {
                Arc::new(EventRecord {
                    seq: Seq(seq as u64),
                    id: format!("e-{seq}"),
                    tenant_id: "acme".into(),
                    action: "a".repeat(action_len),
                    actor_id: "u".into(),
                    outcome: "success".into(),
                    ..Default::default()
                })
            })
            .collect();
        let bytes = open.iter().map(|record| record.encoded_len_hint()).sum();
        (open, bytes)
    }

    #[test]
    pub(super) fn a_cut_takes_at_most_max_events_in_seq_order() {
        let (mut open, mut bytes) = open_events(10, 4);
        let caps = BatchCaps { max_events: 4, max_bytes: usize::MAX };
        let first = cut_batch(&mut open, &mut bytes, caps, false).unwrap();
        assert_eq!(first.iter().map(|record| record.seq.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(open.len(), 6);
        assert_eq!(bytes, open.iter().map(|record| record.encoded_len_hint()).sum::<usize>());
    }

    #[test]
    pub(super) fn a_cut_respects_max_bytes_but_always_takes_one_event() {
        let (mut open, mut bytes) = open_events(3, 1000);
        let one = open[0].encoded_len_hint();
        let caps = BatchCaps { max_events: 100, max_bytes: one * 2 };
        assert_eq!(cut_batch(&mut open, &mut bytes, caps, false).unwrap().len(), 2);
        let tiny = BatchCaps { max_events: 100, max_bytes: 1 };
        assert_eq!(cut_batch(&mut open, &mut bytes, tiny, false).unwrap().len(), 1, "an event larger than the cap is a batch of its own");
        assert!(open.is_empty());
        assert_eq!(bytes, 0);
        assert!(cut_batch(&mut open, &mut bytes, caps, false).is_none(), "nothing open, nothing cut");
    }

    #[test]
    pub(super) fn only_full_cuts_wait_for_a_full_batch() {
        let (mut open, mut bytes) = open_events(3, 4);
        let caps = BatchCaps { max_events: 4, max_bytes: usize::MAX };
        assert!(cut_batch(&mut open, &mut bytes, caps, true).is_none());
        assert_eq!(open.len(), 3, "a refused cut takes nothing");
        let (mut open, mut bytes) = open_events(5, 4);
        assert_eq!(cut_batch(&mut open, &mut bytes, caps, true).unwrap().len(), 4);
    }

    #[test]
    pub(super) fn ticks_are_aligned_to_the_interval() {
        let before = tokio::time::Instant::now();
        let tick = next_aligned_tick(Duration::from_secs(60));
        let wait = tick - before;
        assert!(wait <= Duration::from_secs(60), "{wait:?}");
    }
}
