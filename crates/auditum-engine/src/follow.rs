//! Following a log in seq order (DESIGN §10), for subscriptions, alert rules and deliveries: the
//! committed batch holding the next seq is read from the archive, durable unsealed events from
//! memory, each event once. A follower reads a step only when asked, so one that falls behind
//! reads the archive instead of holding what it has not taken.

use crate::error::{Error, Result};
use crate::log::{Log, TailView};
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
}

impl Follower {
    pub fn new(log: Log, context: ScanContext, tenant_id: String, predicate: Predicate, next: u64) -> Follower {
        Follower { log, context, tenant_id, predicate, next, leaf_hashes: true }
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
        if let TailView::Sealed(entry) = self.log.tail(self.next, 0) {
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
            TailView::Unsealed { events, durable_end } => {
                let Some(last) = events.last() else {
                    self.next = self.next.max(durable_end);
                    return Ok(Step::CaughtUp);
                };
                self.next = last.seq.0 + 1;
                let rows = events
                    .iter()
                    .filter(|record| read::matches(&self.predicate, record))
                    .map(|record| FollowedRow {
                        leaf_hash: if self.leaf_hashes { record.leaf_hash() } else { [0; 32] },
                        record: record.clone(),
                        batch_index: None,
                    })
                    .collect();
                Ok(Step::Moved(rows))
            }
            TailView::NotYet => Ok(Step::CaughtUp),
        }
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
