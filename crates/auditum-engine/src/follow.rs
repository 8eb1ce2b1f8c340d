//! Following a log in seq order (DESIGN §10), for subscriptions, alert rules and deliveries: the
//! committed batch holding the next seq is read from the archive, durable unsealed events from
//! memory, each event once. A follower reads a step only when asked, so one that falls behind
//! reads the archive instead of holding what it has not taken.

use crate::error::{Error, Result};
use crate::log::{FollowerRegistration, Log, TailView};
use crate::read::{self, ScanContext, ScanRow};
use crate::scan::Predicate;
use auditum_format::event::{EventRecord, LeafHash};
use auditum_format::ledger::LedgerEntry;
use std::sync::Arc;

/// Unsealed events taken from the log per step.
const UNSEALED_STEP: usize = 512;

/// One event a follower found: shared with the log while unsealed, never copied on the way.
#[derive(Debug, Clone)]
pub struct FollowedRow {
    pub record: Arc<EventRecord>,
    pub leaf_hash: LeafHash,
    /// The batch holding it; None while unsealed.
    pub batch_index: Option<u64>,
}

impl FollowedRow {
    /// As a read's row (a copy of the event).
    pub fn to_scan_row(&self) -> ScanRow {
        ScanRow { record: self.record.as_ref().clone(), leaf_hash: self.leaf_hash, batch_index: self.batch_index }
    }
}

/// What a step found.
#[derive(Debug)]
pub enum Step {
    /// The follower moved on; these rows matched (possibly none), in seq order.
    Moved(Vec<FollowedRow>),
    /// Nothing durable beyond the cursor yet.
    CaughtUp,
}

pub struct Follower {
    log: Log,
    context: ScanContext,
    /// The tenant whose events are followed; "" follows every tenant (never a valid tenant id).
    tenant_id: String,
    predicate: Predicate,
    /// The next seq to consider.
    next: u64,
    /// Whether unsealed rows carry their leaf hash (a SHA-256 per event): subscribers show it;
    /// rules and deliveries never read it, and on the busy path it is the dearest part.
    leaf_hashes: bool,
    /// While it lives, the log keeps its last committed batch in memory for a few seconds.
    _registration: FollowerRegistration,
}

impl Follower {
    pub fn new(log: Log, context: ScanContext, tenant_id: String, predicate: Predicate, next: u64) -> Follower {
        let _registration = log.register_follower();
        Follower { log, context, tenant_id, predicate, next, leaf_hashes: true, _registration }
    }

    /// Unsealed rows come with an all-zero leaf hash: for followers that never read it.
    pub fn without_leaf_hashes(mut self) -> Follower {
        self.leaf_hashes = false;
        self
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The next seq to consider: every seq before it has been.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Moves past the committed batch holding the next seq without reading it (a reader that may
    /// lose it, e.g. an archived batch during an alert replay).
    pub fn skip_batch(&mut self) {
        if let TailView::Sealed(entry) | TailView::SealedInMemory { entry, .. } = self.log.tail(self.next, 0) {
            self.next = entry.end_seq().0;
        }
    }

    /// Considers the next committed batch, or the next slice of durable unsealed events.
    pub async fn step(&mut self) -> Result<Step> {
        match self.log.tail(self.next, UNSEALED_STEP) {
            TailView::Sealed(entry) => {
                let end = entry.end_seq().0;
                let may_match = self.predicate.entry_may_match(&self.tenant_id, &entry);
                let rows = if may_match { self.read_batch(entry).await? } else { Vec::new() };
                let from = self.next;
                self.next = end;
                let rows = rows
                    .into_iter()
                    .filter(|row| row.record.seq.0 >= from)
                    .map(|row| FollowedRow { record: Arc::new(row.record), leaf_hash: row.leaf_hash, batch_index: row.batch_index })
                    .collect();
                Ok(Step::Moved(rows))
            }
            // Just committed: the same events the store holds, without reading the whole batch.
            TailView::SealedInMemory { entry, events } => {
                // A batch's seqs are contiguous, so past its last event given is the next seq.
                let end = entry.end_seq().0;
                self.next = events.last().map_or(end, |last| last.seq.0 + 1);
                Ok(Step::Moved(self.matching(&events, Some(entry.index))))
            }
            TailView::Unsealed { events, durable_end } => {
                let Some(last) = events.last() else {
                    self.next = self.next.max(durable_end);
                    return Ok(Step::CaughtUp);
                };
                self.next = last.seq.0 + 1;
                Ok(Step::Moved(self.matching(&events, None)))
            }
            TailView::NotYet => Ok(Step::CaughtUp),
        }
    }

    /// The in-memory events that match, as rows of the batch `batch_index` (None: unsealed).
    fn matching(&self, events: &[Arc<EventRecord>], batch_index: Option<u64>) -> Vec<FollowedRow> {
        events
            .iter()
            .filter(|record| read::matches(&self.predicate, record))
            .map(|record| FollowedRow {
                leaf_hash: if self.leaf_hashes { record.leaf_hash() } else { [0; 32] },
                record: record.clone(),
                batch_index,
            })
            .collect()
    }

    /// The batch's rows matching the predicate, in seq order (a batch is sorted by tenant, time).
    async fn read_batch(&self, entry: Arc<LedgerEntry>) -> Result<Vec<ScanRow>> {
        let context = self.context.clone();
        let predicate = self.predicate.clone();
        let tenant_id = self.tenant_id.clone();
        let candidates = vec![entry];
        let scanned = candidates.clone();
        let rows = tokio::task::spawn_blocking(move || -> Result<Vec<ScanRow>, crate::scan::Error> {
            let mut scan = read::Scan::new(context, &tenant_id, predicate, &scanned, &[]);
            let mut rows = Vec::new();
            while let Some(row) = scan.next_row()? {
                rows.push(row);
            }
            rows.sort_by_key(|row| row.record.seq);
            Ok(rows)
        })
        .await
        .map_err(|error| Error::Task { what: "follow", reason: error.to_string() })?;
        match rows {
            Ok(rows) => Ok(rows),
            Err(crate::scan::Error::Store { source, .. }) if crate::archive::is_archived(&source) => {
                Err(Error::Archived(crate::archive::name_archived(self.log.name(), self.log.store(), &candidates).await))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Resolves once `closing` is true; never when its sender is gone while still false (a
/// dropped sender must not wake a waiter in a loop).
pub async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *closing.borrow_and_update() {
            return;
        }
        if closing.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Resolves when the log begins to stop; never if its stop signal is gone.
pub async fn log_stopping(stopping: &mut tokio::sync::watch::Receiver<Option<tokio::time::Instant>>) {
    loop {
        if stopping.borrow_and_update().is_some() {
            return;
        }
        if stopping.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogSettings;
    use crate::scan::FooterCache;

    async fn open_log(dir: &std::path::Path) -> Log {
        let store = auditum_store::open(dir.join("store").to_str().unwrap_or_default(), &Default::default()).await.unwrap();
        Log::open(LogSettings {
            name: "default".into(),
            origin: "auditum/default".into(),
            store,
            wal_dir: dir.join("wal"),
            key_path: dir.join("checkpoint.key"),
            seal_interval: std::time::Duration::from_secs(3600),
            batch_max_events: 1_000,
            batch_max_bytes: 1 << 20,
            batch_layout: Default::default(),
            wal_segment_bytes: 1 << 20,
            idempotency_window: std::time::Duration::from_secs(60),
            idempotency_max_ids: 1_000,
            retention: None,
            wal_max_bytes: 1 << 30,
            batch_storage_class: None,
            encryption: None,
        })
        .await
        .unwrap()
    }

    fn context(log: &Log) -> ScanContext {
        ScanContext {
            store: log.store().clone(),
            footers: Arc::new(FooterCache::new(1 << 20)),
            runtime: tokio::runtime::Handle::current(),
            io: Default::default(),
            decode_rows: 1_000,
        }
    }

    fn events(count: usize) -> Vec<EventRecord> {
        (0..count)
            .map(|index| EventRecord {
                id: format!("event-{index}"),
                tenant_id: "acme".into(),
                occurred_at: 1_700_000_000_000_000 + index as i64,
                action: "user.login".into(),
                actor_id: format!("u{index}"),
                outcome: "success".into(),
                ..EventRecord::default()
            })
            .collect()
    }

    /// Removes every batch object from the file store: what is read after this came from memory.
    fn remove_batch_objects(dir: &std::path::Path) {
        let batches = dir.join("store").join("default").join("batches");
        let mut pending = vec![batches];
        while let Some(path) = pending.pop() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() { pending.push(path) } else { std::fs::remove_file(path).unwrap() }
            }
        }
    }

    async fn all_rows(follower: &mut Follower) -> Result<Vec<FollowedRow>> {
        let mut rows = Vec::new();
        while let Step::Moved(moved) = follower.step().await? {
            rows.extend(moved);
        }
        Ok(rows)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_behind_at_a_commit_reads_the_batch_from_memory_as_the_store_would_give_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path()).await;
        // A follower that has not read anything when the batch commits.
        let mut behind = Follower::new(log.clone(), context(&log), String::new(), Predicate::match_all(), 0);
        log.append(events(700)).await.unwrap();
        log.seal_now().await.unwrap();
        assert_eq!(log.ledger_snapshot().entries.len(), 1, "one batch committed");
        // The rows read from the store (as a follower further behind reads them), before the
        // objects go.
        let entry = log.ledger_snapshot().entries[0].clone();
        let from_store = behind.read_batch(entry).await.unwrap();
        remove_batch_objects(dir.path());

        let from_memory = all_rows(&mut behind).await.unwrap();
        assert_eq!(from_memory.len(), 700);
        let seqs: Vec<u64> = from_memory.iter().map(|row| row.record.seq.0).collect();
        assert_eq!(seqs, (0..700).collect::<Vec<_>>(), "in seq order, each once");
        assert_eq!(from_store.len(), 700);
        for (memory, store) in from_memory.iter().zip(&from_store) {
            assert_eq!(*memory.record, store.record);
            assert_eq!(memory.leaf_hash, store.leaf_hash, "the batch's own leaf hash");
            assert_eq!(memory.batch_index, Some(0), "a row of the committed batch, not an unsealed one");
            assert_eq!(store.batch_index, Some(0));
        }
        assert_eq!(behind.next_seq(), 700);
        log.shutdown(std::time::Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_followers_at_the_commit_the_batch_is_not_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path()).await;
        log.append(events(10)).await.unwrap();
        log.seal_now().await.unwrap();
        remove_batch_objects(dir.path());
        let mut late = Follower::new(log.clone(), context(&log), String::new(), Predicate::match_all(), 0);
        assert!(all_rows(&mut late).await.is_err(), "the batch is read from the store, where it no longer is");
        assert_eq!(late.next_seq(), 0);
        log.shutdown(std::time::Duration::from_secs(5)).await.unwrap();
    }
}
