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
use crate::follow::{Follower, Step, closed, log_stopping};
use crate::query::Reader;
use crate::read::{Filter, FilterSpec, ScanRow};
use crate::scan::{IoCounters, MAX_DECODE_ROWS};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Progress at least this often while nothing matches (DESIGN §10 says 5 s at most).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(4);
/// Messages ready for the client at most: the rest waits in the log or the archive.
const CHANNEL_MESSAGES: usize = 64;

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
        crate::encryption::refuse_encrypted_filters(call, &log, &filter.tenant_id, &request.filter)?;
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
        let context = self.scan_context(&log, Arc::new(IoCounters::default()), MAX_DECODE_ROWS);
        let log_name = log.name().to_string();
        let follower = Follower::new(log, context, filter.tenant_id.clone(), filter.predicate(None, false), start);
        let subscription = Subscription { follower, considered: start.checked_sub(1), sender, closing: self.closing() };
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
    follower: Follower,
    /// Every seq up to this one has been considered and what matched was sent.
    considered: Option<u64>,
    sender: mpsc::Sender<Result<SubscribeItem, Ended>>,
    closing: watch::Receiver<bool>,
}

impl Subscription {
    /// Sends one item unless the server begins to stop first; false when the stream is over.
    async fn send(&mut self, item: SubscribeItem) -> bool {
        tokio::select! {
            sent = self.sender.send(Ok(item)) => sent.is_ok(),
            _ = closed(&mut self.closing) => false,
        }
    }

    async fn run(mut self) {
        let mut durable = self.follower.log().watch_durable();
        let mut stopping = self.follower.log().watch_stop();
        // The start, said at once: a client that is cut off before anything matches resumes
        // from here instead of from "the next append" again.
        if let Some(cursor) = self.cursor()
            && !self.send(SubscribeItem::Progress(cursor)).await
        {
            return self.end().await;
        }
        let mut last_sent = tokio::time::Instant::now();
        loop {
            if *self.closing.borrow() || stopping.borrow().is_some() {
                return self.end().await;
            }
            durable.mark_unchanged();
            let rows = match self.follower.step().await {
                Ok(Step::Moved(rows)) => rows,
                Ok(Step::CaughtUp) => {
                    // Caught up: wait for appends, a stop, or the progress deadline.
                    let deadline = last_sent + PROGRESS_INTERVAL;
                    tokio::select! {
                        _ = durable.changed() => {}
                        _ = log_stopping(&mut stopping) => {}
                        _ = closed(&mut self.closing) => {}
                        _ = self.sender.closed() => return,
                        _ = tokio::time::sleep_until(deadline) => {
                            if let Some(cursor) = self.cursor()
                                && !self.send(SubscribeItem::Progress(cursor)).await
                            {
                                return self.end().await;
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
            let sent = !rows.is_empty();
            for row in rows {
                let seq = row.record.seq.0;
                let mut event = [row.to_scan_row()];
                if let Err(error) = crate::encryption::decrypt_rows(self.follower.log(), &mut event).await {
                    let _ = self.sender.send(Err(Ended::Failed(error))).await;
                    return;
                }
                let [event] = event;
                if !self.send(SubscribeItem::Event(Box::new(event))).await {
                    return self.end().await;
                }
                self.considered = Some(seq);
            }
            self.considered = self.follower.next_seq().checked_sub(1).max(self.considered);
            if sent {
                last_sent = tokio::time::Instant::now();
            } else if last_sent.elapsed() >= PROGRESS_INTERVAL
                && let Some(cursor) = self.cursor()
            {
                // Catching up through batches with nothing for this filter: say how far it got.
                if !self.send(SubscribeItem::Progress(cursor)).await {
                    return self.end().await;
                }
                last_sent = tokio::time::Instant::now();
            }
        }
    }

    /// The server is stopping (or the client left): say where to resume, if anyone listens.
    /// Never waits on a client that does not read.
    async fn end(&self) {
        let cursor = self.cursor().map(|seq| seq.to_string()).unwrap_or_else(|| "none: use from_beginning".into());
        let _ = self.sender.try_send(Err(Ended::ShuttingDown { cursor }));
    }

    /// Every seq up to this one has been considered and sent; None before seq 0 has been (the
    /// follower may be ahead of it while a step's rows are being sent).
    fn cursor(&self) -> Option<u64> {
        self.considered
    }
}
