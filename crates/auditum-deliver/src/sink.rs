//! One sink's delivery from one log (DESIGN §11): follow the log from the durable cursor, keep the
//! events the sink wants (its streams' matches and its rules' alerts), POST them in batches in
//! seq order, retry with backoff and jitter until a 2xx, then move the cursor. At least once:
//! a crash between a 2xx and the cursor write delivers those events again (a retry within one
//! run keeps its `x-auditum-delivery` id; after a restart batches may be cut differently). A sink that is down slows nothing but itself: its backlog stays in
//! the log and the archive, where it reads from.

use crate::body;
use crate::config::{SinkConfig, SinkFormat, StreamConfig, action_matches};
use crate::cursor::Cursor;
use auditum_engine::follow::{Follower, Step, closed, log_stopping};
use auditum_engine::log::Log;
use auditum_engine::metrics::{METRICS, SinkLabel};
use auditum_engine::read::ScanContext;
use auditum_engine::scan::Predicate;
use auditum_format::event::EventRecord;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Events per POST at most (Datadog's intake takes 1,000 entries per request; the byte cap
/// below usually comes first).
const BATCH_EVENTS: usize = 1000;
/// Body bytes per POST, about.
const BATCH_BYTES: usize = 1 << 20;
/// A caught-up sink waits this long for more events before it POSTs a part-filled batch: one
/// request per group commit would cost the receiver and this server far more than the delay.
const LINGER: Duration = Duration::from_millis(200);
/// Cursor writes (an fsync each) at most this often; a crash redelivers at most this much.
const CURSOR_INTERVAL: Duration = Duration::from_secs(1);
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// What a sink delivers: its streams' events and its alert rules' firings.
#[derive(Clone)]
pub struct SinkTarget {
    pub config: SinkConfig,
    pub secret: String,
    pub streams: Vec<StreamConfig>,
    /// Names of the alert rules whose firings go to this sink.
    pub rules: Vec<String>,
}

impl std::fmt::Debug for SinkTarget {
    // The secret is never printed.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SinkTarget")
            .field("config", &self.config)
            .field("streams", &self.streams)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl SinkTarget {
    pub fn wants(&self, record: &EventRecord) -> bool {
        if record.action == crate::alerts::ALERT_ACTION && self.rules.contains(&record.actor_id) {
            return true;
        }
        self.streams
            .iter()
            .any(|stream| (stream.tenant == "*" || stream.tenant == record.tenant_id) && action_matches(&stream.actions, &record.action))
    }
}

pub struct SinkWorker {
    pub target: Arc<SinkTarget>,
    pub log: Log,
    pub context: ScanContext,
    pub cursor: Cursor,
    pub client: reqwest::Client,
    pub closing: watch::Receiver<bool>,
}

impl SinkWorker {
    fn label(&self) -> SinkLabel {
        SinkLabel { sink: self.target.config.name.clone(), log: self.log.name().to_string() }
    }

    fn stopping(&self) -> bool {
        *self.closing.borrow() || self.log.watch_stop().borrow().is_some()
    }

    pub async fn run(mut self) {
        let sink = self.target.config.name.clone();
        let log_name = self.log.name().to_string();
        // A new sink starts with the next append: a SIEM wants what happens from now on, not
        // the whole history at once.
        let start = match self.cursor.load() {
            Ok(Some(next)) => next,
            Ok(None) => {
                let next = *self.log.watch_durable().borrow();
                if let Err(error) = self.cursor.store_async(next).await {
                    tracing::error!(%sink, log = %log_name, %error, "cannot write the delivery cursor; the sink is not started");
                    return;
                }
                next
            }
            Err(error) => {
                tracing::error!(%sink, log = %log_name, %error, "cannot read the delivery cursor; the sink is not started");
                return;
            }
        };
        tracing::info!(%sink, log = %log_name, next_seq = start, "delivery started");
        let mut follower =
            Follower::new(self.log.clone(), self.context.clone(), String::new(), Predicate::match_all(), start).without_leaf_hashes();
        let mut durable = self.log.watch_durable();
        let mut stopping = self.log.watch_stop();
        let mut pending: Vec<Arc<EventRecord>> = Vec::new();
        let mut pending_bytes = 0;
        let mut stored = start;
        let mut stored_at = tokio::time::Instant::now();
        let mut pending_since: Option<tokio::time::Instant> = None;
        let mut failures_in_a_row = 0u32;
        loop {
            if self.stopping() {
                return;
            }
            durable.mark_unchanged();
            let step = follower.step().await;
            let caught_up = match step {
                Ok(Step::Moved(rows)) => {
                    for row in rows {
                        if !self.target.wants(&row.record) {
                            continue;
                        }
                        pending_bytes += row.record.encoded_len_hint();
                        pending.push(row.record);
                        pending_since.get_or_insert_with(tokio::time::Instant::now);
                        if pending.len() >= BATCH_EVENTS || pending_bytes >= BATCH_BYTES {
                            if !self.deliver(&pending).await {
                                return;
                            }
                            pending.clear();
                            pending_bytes = 0;
                            pending_since = None;
                        }
                    }
                    false
                }
                Ok(Step::CaughtUp) => true,
                Err(error) => {
                    failures_in_a_row += 1;
                    tracing::warn!(%sink, log = %log_name, %error, "cannot read the log for delivery; retrying");
                    if !self.pause(backoff(failures_in_a_row)).await {
                        return;
                    }
                    continue;
                }
            };
            failures_in_a_row = 0;
            // Everything before the follower's position is delivered or not wanted once nothing
            // is pending: only then may the cursor move.
            // Alerts go at once: detection latency is what they are for.
            let lingered = pending_since.is_some_and(|since| since.elapsed() >= LINGER)
                || pending.iter().any(|record| record.action == crate::alerts::ALERT_ACTION);
            if caught_up && !pending.is_empty() && (lingered || self.stopping()) {
                if !self.deliver(&pending).await {
                    return;
                }
                pending.clear();
                pending_bytes = 0;
                pending_since = None;
            }
            // Everything before the first pending event is delivered or not wanted: the cursor
            // may move that far even while a batch is still being filled.
            let next = pending.first().map(|record| record.seq.0).unwrap_or_else(|| follower.next_seq());
            if next > stored && stored_at.elapsed() >= CURSOR_INTERVAL {
                match self.cursor.store_async(next).await {
                    Ok(()) => {
                        stored = next;
                        stored_at = tokio::time::Instant::now();
                    }
                    Err(error) => tracing::error!(%sink, log = %log_name, %error, "cannot write the delivery cursor"),
                }
            }
            let durable_end = *durable.borrow();
            METRICS.delivery_lag_events.get_or_create(&self.label()).set(durable_end.saturating_sub(next) as i64);
            if caught_up {
                if pending.is_empty() {
                    METRICS.delivery_lag_seconds.get_or_create(&self.label()).set(0);
                }
                // Wake for new events, the linger deadline of what is pending, or the next
                // cursor write.
                let wake = match pending_since {
                    Some(since) => since + LINGER,
                    None => tokio::time::Instant::now() + CURSOR_INTERVAL,
                };
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = closed(&mut self.closing) => {}
                    _ = log_stopping(&mut stopping) => {}
                    _ = tokio::time::sleep_until(wake) => {}
                }
            }
        }
    }

    /// The records with their encrypted fields decrypted (DESIGN §14), retrying while the
    /// keyring does not answer; None when the server stops first.
    async fn decrypted(&mut self, records: &[Arc<EventRecord>]) -> Option<Vec<Arc<EventRecord>>> {
        let Some(keyring) = self.log.encryption().map(|encryption| encryption.keyring.clone()) else { return Some(records.to_vec()) };
        let mut failures_in_a_row = 0u32;
        loop {
            let mut decrypted = Vec::with_capacity(records.len());
            let mut failure = None;
            for record in records {
                match keyring.decrypt_shared(record).await {
                    Ok(record) => decrypted.push(record),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            let Some(error) = failure else { return Some(decrypted) };
            failures_in_a_row += 1;
            tracing::warn!(sink = %self.target.config.name, log = %self.log.name(), %error, "cannot read the keyring to decrypt a delivery; retrying");
            if !self.pause(backoff(failures_in_a_row)).await {
                return None;
            }
        }
    }

    /// Sleeps, unless the server stops first (false then).
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => !self.stopping(),
            _ = closed(&mut self.closing) => false,
        }
    }

    /// POSTs a batch until a 2xx; false when the server stops first (the cursor has not moved,
    /// so the batch goes again after the restart).
    async fn deliver(&mut self, records: &[Arc<EventRecord>]) -> bool {
        let target = self.target.clone();
        let config = &target.config;
        let log = self.log.name().to_string();
        let (Some(first), Some(last)) = (records.first(), records.last()) else { return true };
        // The same batch is retried with the same id, so a receiver can drop a repeat.
        let delivery_id = format!("{}-{log}-{}-{}", config.name, first.seq.0, last.seq.0);
        let encrypted = self.log.encryption().is_some();
        let mut encoded: Option<(bytes::Bytes, String)> = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Decrypted (DESIGN §14) on every attempt of a log with a keyring: a retry after an
            // erasure carries "[erased]", never the plaintext read before it.
            if encoded.is_none() || encrypted {
                let Some(decrypted) = self.decrypted(records).await else { return false };
                // None: the runtime is shutting down; the cursor has not moved.
                let Some(fresh) = encode_off_the_runtime(target.clone(), log.clone(), decrypted).await else { return false };
                encoded = Some(fresh);
            }
            let Some((body, authorization)) = encoded.clone() else { return false };
            let request = self
                .client
                .post(&config.url)
                .header("content-type", "application/json")
                .header("x-auditum-delivery", &delivery_id)
                .header(
                    match config.format {
                        SinkFormat::Json => "x-auditum-signature",
                        SinkFormat::SplunkHec => "authorization",
                    },
                    authorization,
                )
                .body(body);
            let oldest = records.iter().map(|record| record.received_at).min().unwrap_or_default();
            let lag = (auditum_format::time::now_micros() - oldest).max(0) / 1_000_000;
            METRICS.delivery_lag_seconds.get_or_create(&self.label()).set(lag);
            let outcome = match request.send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("answered {}", response.status())),
                // Without the URL: it may carry a token.
                Err(error) => Err(format!("no answer: {}", error.without_url())),
            };
            match outcome {
                Ok(()) => {
                    METRICS.delivered_events.get_or_create(&self.label()).inc_by(records.len() as u64);
                    if attempt > 1 {
                        tracing::info!(sink = %config.name, %log, delivery = %delivery_id, attempt, "delivered after retries");
                    }
                    return true;
                }
                Err(reason) => {
                    METRICS.delivery_failures.get_or_create(&self.label()).inc();
                    let delay = backoff(attempt);
                    tracing::warn!(sink = %config.name, %log, delivery = %delivery_id, events = records.len(), attempt, %reason, retry_in_ms = delay.as_millis() as u64, "delivery failed; retrying");
                    if !self.pause(delay).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// The body of a delivery and its signature (or HEC authorization), encoded on the delivery
/// thread (`low_priority`): a batch is milliseconds of CPU that would otherwise hold a runtime
/// worker, and with it the Appends queued on that worker.
async fn encode_off_the_runtime(target: Arc<SinkTarget>, log: String, records: Vec<Arc<EventRecord>>) -> Option<(bytes::Bytes, String)> {
    let encode = move || {
        let config = &target.config;
        match config.format {
            SinkFormat::Json => {
                let body = body::json_body(&config.name, &log, &records);
                let signature = body::signature(target.secret.as_bytes(), &body);
                (bytes::Bytes::from(body), signature)
            }
            SinkFormat::SplunkHec => (bytes::Bytes::from(body::hec_body(&log, &records)), format!("Splunk {}", target.secret)),
        }
    };
    crate::low_priority::run(encode).await
}

/// Exponential from 200 ms to 30 s, with full jitter on the upper half (retries of many sinks
/// do not fall in step).
fn backoff(attempt: u32) -> Duration {
    let exponential = FIRST_RETRY.saturating_mul(1u32 << attempt.saturating_sub(1).min(10)).min(LAST_RETRY);
    let half = exponential / 2;
    half + half.mul_f64(rand::thread_rng().r#gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        assert!(backoff(1) <= FIRST_RETRY && backoff(1) >= FIRST_RETRY / 2);
        assert!(backoff(30) <= LAST_RETRY && backoff(30) >= LAST_RETRY / 2);
    }
}
