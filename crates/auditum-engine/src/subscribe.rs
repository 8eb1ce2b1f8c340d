//! Subscribe (DESIGN §10): one tenant's events in seq order, each once, only once durable; a
//! replay from the archive and the WAL, then live appends, with a progress cursor at least every
//! 5 s while nothing matches.
//!
//! The subscription pulls: it reads the next step (one committed batch, or a slice of the
//! durable unsealed events) only when the client has taken what came before. A slow client
//! therefore falls back to archive reads as the events it has not taken are sealed, and holds at
//! most one batch's matching rows and a few messages; it is never dropped.

use crate::access::{Call, MetaNote, object};
use crate::error::{Error, Result};
use crate::log::{Log, TailView};
use crate::query::Reader;
use crate::read::{self, Filter, FilterSpec, ScanRow};
use crate::scan::{IoCounters, MAX_DECODE_ROWS, Predicate};
use auditum_format::ledger::LedgerEntry;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Progress at least this often while nothing matches (DESIGN §10 says 5 s at most).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(4);
/// Messages ready for the client at most: the rest waits in the log or the archive.
const CHANNEL_MESSAGES: usize = 64;
/// Unsealed events taken from the log per step.
const UNSEALED_STEP: usize = 512;

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeStart {
    /// At seq N + 1.
    AfterSeq(u64),
    FromBeginning,
    /// At the next append.
    Next,
}

#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    pub filter: FilterSpec,
    /// The filter as the client sent it, for the meta-audit record.
    pub filter_details: Value,
    pub start: SubscribeStart,
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeItem {
    Event(Box<ScanRow>),
    /// Every seq up to and including this one has been considered.
    Progress(u64),
}

/// Why a subscription ended (the stream's last item).
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    #[error("the server is shutting down; resume with after_seq = {cursor}")]
    ShuttingDown { cursor: String },
    #[error(transparent)]
    Failed(#[from] Error),
}

impl Reader {
    /// Opens a subscription: the filter rules, the tenant binding and the `auditum.subscribe`
    /// record, then a task that feeds the returned channel until the client goes away.
    pub async fn subscribe(&self, call: &Call, request: SubscribeRequest) -> Result<Subscribed> {
        let filter = Filter::new(&request.filter)?;
        let log = self.log_for_tenant(&filter.tenant_id)?.clone();
        log.require_store()?;
        // Taken before the record is appended: "the next append" is after this call's own record.
        let start = match request.start {
            SubscribeStart::AfterSeq(seq) => seq.saturating_add(1),
            SubscribeStart::FromBeginning => 0,
            SubscribeStart::Next => *log.watch_durable().borrow(),
        };
        let details = serde_json::json!({ "start_seq": start });
        let mut details = object(details);
        details.insert("filter".into(), request.filter_details);
        let note = MetaNote {
            action: "auditum.subscribe",
            tenant: filter.tenant_id.clone(),
            target_type: "tenant",
            target_id: filter.tenant_id.clone(),
            details,
        };
        self.access().admit(call, call.caller.require_tenant("filter.tenant_id", &filter.tenant_id), note).await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_MESSAGES);
        let subscription = Subscription {
            reader: self.clone(),
            predicate: filter.predicate(None, false),
            tenant_id: filter.tenant_id,
            log,
            next: start,
            sender,
            closing: self.closing(),
        };
        let log_name = subscription.log.name().to_string();
        tokio::spawn(subscription.run());
        Ok(Subscribed { log: log_name, items: receiver })
    }
}

/// An open subscription: the log it reads, and what it delivers.
pub struct Subscribed {
    pub log: String,
    pub items: mpsc::Receiver<Result<SubscribeItem, Ended>>,
}

struct Subscription {
    reader: Reader,
    log: Log,
    tenant_id: String,
    predicate: Predicate,
    /// The next seq to consider.
    next: u64,
    sender: mpsc::Sender<Result<SubscribeItem, Ended>>,
    closing: watch::Receiver<bool>,
}

impl Subscription {
    async fn run(mut self) {
        let mut durable = self.log.watch_durable();
        let mut stopping = self.log.watch_stop();
        let mut last_sent = tokio::time::Instant::now();
        loop {
            if *self.closing.borrow() || stopping.borrow().is_some() {
                let cursor = self.next.checked_sub(1).map(|seq| seq.to_string()).unwrap_or_else(|| "none: use from_beginning".into());
                let _ = self.sender.send(Err(Ended::ShuttingDown { cursor })).await;
                return;
            }
            let sent = match self.step().await {
                Ok(Some(sent)) => sent,
                Ok(None) => {
                    // Caught up: wait for appends, a stop, or the progress deadline.
                    let deadline = last_sent + PROGRESS_INTERVAL;
                    durable.mark_unchanged();
                    tokio::select! {
                        _ = durable.changed() => {}
                        _ = stopping.changed() => {}
                        _ = self.closing.changed() => {}
                        _ = self.sender.closed() => return,
                        _ = tokio::time::sleep_until(deadline) => {
                            if let Some(cursor) = self.next.checked_sub(1)
                                && self.sender.send(Ok(SubscribeItem::Progress(cursor))).await.is_err()
                            {
                                return;
                            }
                            last_sent = tokio::time::Instant::now();
                        }
                    }
                    continue;
                }
                Err(error) => {
                    let _ = self.sender.send(Err(Ended::Failed(error))).await;
                    return;
                }
            };
            if sent {
                last_sent = tokio::time::Instant::now();
            } else if last_sent.elapsed() >= PROGRESS_INTERVAL
                && let Some(cursor) = self.next.checked_sub(1)
            {
                // Catching up through batches with nothing for this filter: say how far it got.
                if self.sender.send(Ok(SubscribeItem::Progress(cursor))).await.is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
            }
            if self.sender.is_closed() {
                return;
            }
        }
    }

    /// Considers the next batch or slice of unsealed events. `Some(sent)` when it moved on
    /// (`sent`: whether an event went out), None when caught up with the durable events.
    async fn step(&mut self) -> Result<Option<bool>> {
        match self.log.tail(self.next, UNSEALED_STEP) {
            TailView::Sealed(entry) => {
                let end = entry.end_seq().0;
                let mut sent = false;
                if self.predicate.entry_may_match(&self.tenant_id, &entry) {
                    for row in self.read_batch(entry).await? {
                        if row.record.seq.0 < self.next {
                            continue;
                        }
                        if self.sender.send(Ok(SubscribeItem::Event(Box::new(row)))).await.is_err() {
                            return Ok(Some(sent));
                        }
                        sent = true;
                    }
                }
                self.next = end;
                Ok(Some(sent))
            }
            TailView::Unsealed { events, durable_end } => {
                if events.is_empty() {
                    self.next = self.next.max(durable_end);
                    return Ok(None);
                }
                let mut sent = false;
                for record in events {
                    let seq = record.seq.0;
                    if read::matches(&self.predicate, &record) {
                        let row = ScanRow { leaf_hash: record.leaf_hash(), record: record.as_ref().clone(), batch_index: None };
                        if self.sender.send(Ok(SubscribeItem::Event(Box::new(row)))).await.is_err() {
                            return Ok(Some(sent));
                        }
                        sent = true;
                    }
                    self.next = seq + 1;
                }
                Ok(Some(sent))
            }
            TailView::NotYet => Ok(None),
        }
    }

    /// The batch's rows matching the filter, in seq order (a batch is sorted by tenant, time).
    async fn read_batch(&self, entry: Arc<LedgerEntry>) -> Result<Vec<ScanRow>> {
        let context = self.reader.scan_context(&self.log, Arc::new(IoCounters::default()), MAX_DECODE_ROWS);
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
        .map_err(|error| Error::Task { what: "subscribe", reason: error.to_string() })?;
        match rows {
            Ok(rows) => Ok(rows),
            Err(crate::scan::Error::Store { source, .. }) if crate::archive::is_archived(&source) => {
                Err(Error::Archived(crate::archive::name_archived(self.log.name(), self.log.store(), &candidates).await))
            }
            Err(error) => Err(error.into()),
        }
    }
}
