//! [`AuditClient`]: `log()` (fire and forget, spooled), `log_durable()` (acknowledged), `flush`,
//! `close` and the counters. SDK.md is the contract; the crate README explains each case.

use crate::counters::{Counters, Stats};
use crate::dead_letter::DeadLetters;
use crate::event::{Event, EventId, LocalRules, stamp};
use crate::options::{OnFull, Options, Problem};
use crate::queue::{Pending, Queue, Shared};
use crate::spool::{Spool, SpoolError};
use crate::wire::{self, Backoff, RawAppendRequest};
use crate::{AuthChannel, connect};
use auditum_proto::pb;
use bytes::Bytes;
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a client call failed at.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The event breaks a rule the server would reject it for (`field: rule`).
    #[error("invalid event: {0}")]
    Invalid(String),
    /// The spool (or memory queue) is full: `on_full = Raise`, or `Block` timed out.
    #[error("the auditum spool is full ({bytes} of {max} bytes); the event was not accepted")]
    Full { bytes: u64, max: u64 },
    /// `on_full = Drop` dropped the event (counted and reported to the error handler).
    #[error("the auditum spool is full: event {id} was dropped")]
    Dropped { id: String },
    /// Writing the spool failed; the event was not accepted.
    #[error("spool {path}: {source}")]
    Spool { path: String, source: std::io::Error },
    /// Opening the spool failed (in use by another client, unreadable...).
    #[error(transparent)]
    Open(#[from] SpoolError),
    /// The client is closed.
    #[error("the auditum client is closed")]
    Closed,
    /// Bad options or an unreachable URL.
    #[error("{0}")]
    Config(String),
    /// The server rejected the event (`log_durable`): INVALID_ARGUMENT with its message.
    #[error("append failed: {}: {}", status.code(), status.message())]
    Rejected { status: tonic::Status },
    /// The server refused the call, or kept failing until `durable_timeout`.
    #[error("append failed: {}: {}", status.code(), status.message())]
    Rpc { status: tonic::Status },
}

/// The auditum client. Cheap to share (`Arc<AuditClient>`); every method takes `&self`.
pub struct AuditClient {
    shared: Arc<Shared>,
    channel: AuthChannel,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditClient {
    /// Connects lazily to `url` (`http://` or `https://`), so a client can be made and log while
    /// the server is down; opens and replays the spool if `options.spool_dir` is set; starts the
    /// delivery worker on the current tokio runtime.
    pub async fn connect(url: &str, options: Options) -> Result<AuditClient, LogError> {
        let channel = connect::lazy_channel(url, &options.connect).map_err(LogError::Config)?;
        AuditClient::with_channel(channel, options).await
    }

    /// As [`connect`](Self::connect), over a channel the caller made.
    pub async fn with_channel(channel: AuthChannel, options: Options) -> Result<AuditClient, LogError> {
        options.check().map_err(LogError::Config)?;
        let mut queue = Queue::default();
        let mut replayed = Vec::new();
        let mut damaged = Vec::new();
        if let Some(dir) = &options.spool_dir {
            let (dir, fsync, max) = (dir.clone(), options.spool_fsync, options.spool_max_bytes);
            // Replay reads whole segments: file work off the runtime's threads.
            let (spool, opened) = tokio::task::spawn_blocking(move || Spool::open(&dir, fsync, max))
                .await
                .map_err(|error| LogError::Config(format!("opening the spool: {error}")))??;
            replayed = opened.replayed;
            damaged = opened.damaged;
            queue.spool = Some(spool);
        }
        let now = Instant::now();
        for event in replayed {
            let n = queue.next_n;
            queue.next_n += 1;
            queue.push(Pending { n, event: Bytes::from(event.event), location: Some(event.location), at: now });
        }
        let counters = Counters::default();
        counters.spool_bytes.store(queue.spool.as_ref().map_or(0, Spool::data_size), Ordering::Relaxed);
        let shared = Arc::new(Shared {
            dead_letters: DeadLetters::new(queue.spool.as_ref().map(Spool::dir)),
            queue: Mutex::new(queue),
            room: Default::default(),
            wake: Default::default(),
            progress: Default::default(),
            counters,
            rules: LocalRules::new(),
            options,
        });
        for (file, detail) in damaged {
            shared.report(Problem::SpoolDamaged { file, detail });
        }
        let worker = tokio::spawn(crate::worker::run(shared.clone(), channel.clone()));
        Ok(AuditClient { shared, channel, worker: Mutex::new(Some(worker)) })
    }

    /// The checks and stamps every event gets before it is accepted; returns it encoded.
    fn prepare(&self, event: Event) -> Result<pb::AuditEvent, LogError> {
        let event = stamp(event.0);
        if self.shared.options.validate_locally {
            self.shared.rules.check(&event).map_err(LogError::Invalid)?;
        }
        Ok(event)
    }

    /// Accepts an event for delivery and returns its id without waiting for the network: the
    /// event is in the spool (if set) when this returns. Blocks only when the spool is full and
    /// `on_full = Block` (up to `block_timeout`).
    pub fn log(&self, event: impl Into<Event>) -> Result<EventId, LogError> {
        let mut event = self.prepare(event.into())?;
        let bytes = event.encode_to_vec();
        let id = EventId(std::mem::take(&mut event.id));
        drop(event);
        let options = &self.shared.options;
        let mut queue = self.shared.lock();
        let mut deadline = None;
        loop {
            if queue.closing {
                return Err(LogError::Closed);
            }
            let (room, size) = match &queue.spool {
                Some(spool) => (spool.has_room(bytes.len()), spool.size()),
                None => (queue.undelivered_bytes + bytes.len() as u64 <= options.spool_max_bytes, queue.undelivered_bytes),
            };
            if room {
                break;
            }
            let full = LogError::Full { bytes: size, max: options.spool_max_bytes };
            match options.on_full {
                OnFull::Raise => return Err(full),
                OnFull::Drop => {
                    drop(queue);
                    Counters::add(&self.shared.counters.dropped, 1);
                    self.shared.report(Problem::Dropped { id: id.0.clone() });
                    return Err(LogError::Dropped { id: id.0 });
                }
                OnFull::Block => {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + options.block_timeout);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(full);
                    }
                    queue = self.shared.room.wait_timeout(queue, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
                }
            }
        }
        let location = match queue.spool.as_mut() {
            Some(spool) => {
                let location =
                    spool.append(&bytes).map_err(|source| LogError::Spool { path: spool.dir().display().to_string(), source })?;
                self.shared.counters.spool_bytes.store(spool.data_size(), Ordering::Relaxed);
                Some(location)
            }
            None => None,
        };
        let n = queue.next_n;
        queue.next_n += 1;
        let was_empty = queue.pending.is_empty();
        queue.push(Pending { n, event: Bytes::from(bytes), location, at: Instant::now() });
        let batch_ready = queue.pending.len() == options.batch_max_events;
        drop(queue);
        Counters::add(&self.shared.counters.logged, 1);
        if was_empty || batch_ready {
            self.shared.wake.notify_one();
        }
        Ok(id)
    }

    /// Sends the event at once (not through the spool) and returns when the server has made it
    /// durable: its seq, id and whether the server already had it. Transient failures are retried
    /// up to `durable_timeout`; a rejection fails at once with [`LogError::Rejected`].
    pub async fn log_durable(&self, event: impl Into<Event>) -> Result<pb::AppendResult, LogError> {
        let mut results = self.log_durable_each(vec![event.into()], false, |_| {}).await?;
        results.pop().ok_or_else(|| LogError::Rpc { status: tonic::Status::internal("no result for the event") })
    }

    /// [`log_durable`](Self::log_durable) for many events, sent in calls within the batch bounds;
    /// `on_results` sees each call's results as they arrive (the CLI prints them). With
    /// `wait_for_seal` the server answers once the events are sealed into a committed batch.
    pub async fn log_durable_each(
        &self,
        events: Vec<Event>,
        wait_for_seal: bool,
        mut on_results: impl FnMut(&[pb::AppendResult]),
    ) -> Result<Vec<pb::AppendResult>, LogError> {
        let options = &self.shared.options;
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            encoded.push(Bytes::from(self.prepare(event)?.encode_to_vec()));
        }
        let mut results = Vec::with_capacity(encoded.len());
        let mut rest = encoded.as_slice();
        while !rest.is_empty() {
            let count = wire::next_call_len(rest, options.batch_max_events, options.batch_max_bytes);
            let request = RawAppendRequest { events: rest[..count].to_vec(), wait_for_seal };
            let response = self.durable_call(request).await?;
            Counters::add(&self.shared.counters.delivered, response.results.len() as u64);
            on_results(&response.results);
            results.extend(response.results);
            rest = &rest[count..];
        }
        Ok(results)
    }

    async fn durable_call(&self, request: RawAppendRequest) -> Result<pb::AppendResponse, LogError> {
        let options = &self.shared.options;
        let deadline = Instant::now() + options.durable_timeout;
        let mut backoff = Backoff::new(options.retry_min, options.retry_max);
        loop {
            let status = match wire::append(&self.channel, request.clone()).await {
                Ok(response) if response.results.len() == request.events.len() => return Ok(response),
                Ok(response) => tonic::Status::internal(format!("{} results for {} events", response.results.len(), request.events.len())),
                Err(status) => status,
            };
            if status.code() == tonic::Code::InvalidArgument {
                return Err(LogError::Rejected { status });
            }
            let wait = backoff.next(&status);
            if !wire::is_transient(&status) || Instant::now() + wait > deadline {
                return Err(LogError::Rpc { status });
            }
            Counters::add(&self.shared.counters.retried, 1);
            tracing::warn!(code = ?status.code(), message = status.message(), retry_in_ms = wait.as_millis() as u64, "append failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until every event logged before this call is delivered (or dead-lettered or
    /// dropped): true, or false when `timeout` passed first.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let target = {
            let mut queue = self.shared.lock();
            queue.urgent += 1;
            queue.next_n
        };
        self.shared.wake.notify_one();
        let result = tokio::time::timeout(timeout, async {
            loop {
                let progressed = self.shared.progress.notified();
                tokio::pin!(progressed);
                progressed.as_mut().enable();
                if self.shared.lock().done_below() >= target {
                    return;
                }
                progressed.await;
            }
        })
        .await
        .is_ok();
        self.shared.lock().urgent -= 1;
        result
    }

    /// Flushes (up to `timeout`), stops the worker and releases the spool. What was not delivered
    /// stays in the spool for the next client on it (without a spool, it is lost: the result
    /// says whether everything was delivered).
    pub async fn close(&self, timeout: Duration) -> Result<bool, LogError> {
        let delivered = self.flush(timeout).await;
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        let worker = self.worker.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(mut worker) = worker {
            // Everything flushed: the worker ends by itself; otherwise its calls are abandoned
            // (their events stay in the spool).
            if !delivered || tokio::time::timeout(Duration::from_secs(1), &mut worker).await.is_err() {
                worker.abort();
                let _ = worker.await;
            }
        }
        let spool = self.shared.lock().spool.take();
        if let Some(spool) = spool {
            let path = spool.dir().display().to_string();
            tokio::task::spawn_blocking(move || spool.close())
                .await
                .map_err(|error| LogError::Config(format!("closing the spool: {error}")))?
                .map_err(|source| LogError::Spool { path, source })?;
        }
        Ok(delivered)
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The dead-letter file (`spool_dir/dead_letter.jsonl`), when there is a spool.
    pub fn dead_letter_path(&self) -> Option<std::path::PathBuf> {
        self.shared.dead_letters.path().map(Into::into)
    }
}

impl Drop for AuditClient {
    /// Without `close`, the worker keeps delivering what is queued, then ends (as long as the
    /// runtime runs); the spool is released when it does.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
    }
}
