//! Append from a client: events cut into calls within the server's limits (1000 events, 4 MiB),
//! each event given a UUIDv7 id before its first try so that a retry is deduplicated by the
//! server, and transient failures retried with backoff.

use crate::{AuthChannel, Error, Result};
use auditum_proto::pb;
use auditum_proto::validate::{MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND};
use prost::Message;
use std::time::Duration;

/// Splits events into calls within the Append limits (1000 events, 4 MiB).
pub fn chunk_requests(events: Vec<pb::AuditEvent>, wait_for_seal: bool) -> Vec<pb::AppendRequest> {
    let mut requests = Vec::new();
    let mut current = pb::AppendRequest { events: Vec::new(), wait_for_seal };
    let mut bytes = 0;
    for event in events {
        let size = event.encoded_len() + 8;
        if !current.events.is_empty() && (current.events.len() >= MAX_EVENTS_PER_APPEND || bytes + size > MAX_APPEND_BYTES) {
            requests.push(std::mem::replace(&mut current, pb::AppendRequest { events: Vec::new(), wait_for_seal }));
            bytes = 0;
        }
        bytes += size;
        current.events.push(event);
    }
    if !current.events.is_empty() {
        requests.push(current);
    }
    requests
}

/// Gives every event without an id a UUIDv7, so retries of it are recognised.
pub fn assign_ids(events: &mut [pb::AuditEvent]) {
    for event in events.iter_mut().filter(|event| event.id.is_empty()) {
        event.id = uuid::Uuid::now_v7().to_string();
    }
}

/// Whether a failed call may succeed when sent again unchanged (docs/API.md and SDK.md).
pub fn is_retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::ResourceExhausted | tonic::Code::Aborted
    )
}

/// The server's `retry-after` hint (seconds), if it gave one.
pub fn retry_after(status: &tonic::Status) -> Option<Duration> {
    let seconds: f64 = status.metadata().get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// How long a client keeps retrying one call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Give up once this much time has passed since the first try.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { min_delay: Duration::from_millis(100), max_delay: Duration::from_secs(30), give_up_after: Duration::from_secs(60) }
    }
}

/// Sends events (ids assigned first, cut into calls), retrying transient failures; returns every
/// result in order. `on_results` sees each call's results as they are acknowledged.
pub async fn append_all(
    channel: AuthChannel,
    mut events: Vec<pb::AuditEvent>,
    wait_for_seal: bool,
    policy: RetryPolicy,
    mut on_results: impl FnMut(&[pb::AppendResult]),
) -> Result<Vec<pb::AppendResult>> {
    assign_ids(&mut events);
    let mut client = pb::ingest_service_client::IngestServiceClient::new(channel).max_encoding_message_size(2 * MAX_APPEND_BYTES);
    let mut results = Vec::with_capacity(events.len());
    for request in chunk_requests(events, wait_for_seal) {
        let started = std::time::Instant::now();
        let mut delay = policy.min_delay;
        let response = loop {
            match client.append(request.clone()).await {
                Ok(response) => break response.into_inner(),
                Err(status) if is_retryable(&status) && started.elapsed() < policy.give_up_after => {
                    let jitter = Duration::from_millis(rand::random::<u64>() % (delay.as_millis() as u64 / 2 + 1));
                    let wait = retry_after(&status).unwrap_or(delay + jitter).min(policy.max_delay);
                    tracing::warn!(code = ?status.code(), message = status.message(), retry_in_ms = wait.as_millis() as u64, "append failed, retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(policy.max_delay);
                }
                Err(status) => return Err(Error::rpc("append")(status)),
            }
        };
        on_results(&response.results);
        results.extend(response.results);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(metadata_bytes: usize) -> pb::AuditEvent {
        let mut fields = std::collections::BTreeMap::new();
        fields
            .insert("x".to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("a".repeat(metadata_bytes))) });
        pb::AuditEvent { tenant_id: "acme".into(), metadata: Some(prost_types::Struct { fields }), ..Default::default() }
    }

    #[test]
    fn calls_stay_within_the_event_and_byte_limits() {
        let requests = chunk_requests((0..2500).map(|_| event(10)).collect(), false);
        assert_eq!(requests.iter().map(|request| request.events.len()).collect::<Vec<_>>(), [1000, 1000, 500]);
        let requests = chunk_requests((0..100).map(|_| event(60_000)).collect(), true);
        assert!(requests.len() > 1);
        assert!(requests.iter().all(|request| request.encoded_len() <= MAX_APPEND_BYTES && request.wait_for_seal));
        assert_eq!(requests.iter().map(|request| request.events.len()).sum::<usize>(), 100);
    }

    #[test]
    fn ids_are_assigned_once_and_kept() {
        let mut events = vec![event(1), pb::AuditEvent { id: "mine".into(), ..event(1) }];
        assign_ids(&mut events);
        assert_eq!(events[1].id, "mine");
        let first = events[0].id.clone();
        assert!(uuid::Uuid::parse_str(&first).is_ok());
        assign_ids(&mut events);
        assert_eq!(events[0].id, first, "a retry keeps the id");
    }

    #[test]
    fn retryable_codes_and_hints() {
        assert!(is_retryable(&tonic::Status::unavailable("down")));
        assert!(is_retryable(&tonic::Status::resource_exhausted("slow down")));
        assert!(!is_retryable(&tonic::Status::invalid_argument("bad")));
        assert!(!is_retryable(&tonic::Status::permission_denied("no")));
        let mut status = tonic::Status::resource_exhausted("wal full");
        status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from_static("5"));
        assert_eq!(retry_after(&status), Some(Duration::from_secs(5)));
    }
}
