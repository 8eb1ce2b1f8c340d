//! Append calls made of already-encoded events: the spool holds each event's protobuf bytes, and
//! a request is those bytes framed as `AppendRequest.events`, so nothing is encoded twice.

use crate::AuthChannel;
use auditum_proto::pb;
use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint, skip_field};
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;

/// `AppendRequest` with its events as encoded `AuditEvent`s (field 1) and `wait_for_seal` (field 2).
#[derive(Debug, Clone, Default)]
pub struct RawAppendRequest {
    pub events: Vec<Bytes>,
    pub wait_for_seal: bool,
}

impl prost::Message for RawAppendRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for event in &self.events {
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(event.len() as u64, buf);
            buf.put_slice(event);
        }
        if self.wait_for_seal {
            prost::encoding::bool::encode(2, &self.wait_for_seal, buf);
        }
    }

    fn merge_field(&mut self, tag: u32, wire_type: WireType, buf: &mut impl Buf, ctx: DecodeContext) -> Result<(), prost::DecodeError> {
        // Only ever sent, never received.
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        let events: usize = self.events.iter().map(|event| 1 + encoded_len_varint(event.len() as u64) + event.len()).sum();
        events + if self.wait_for_seal { 2 } else { 0 }
    }

    fn clear(&mut self) {
        self.events.clear();
        self.wait_for_seal = false;
    }
}

/// How long one call may take before it counts as failed (DEADLINE_EXCEEDED, retried).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One Append call.
pub async fn append(channel: &AuthChannel, request: RawAppendRequest) -> Result<pb::AppendResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_encoding_message_size(2 * auditum_proto::validate::MAX_APPEND_BYTES)
        .max_decoding_message_size(16 * 1024 * 1024);
    grpc.ready().await.map_err(|error| tonic::Status::unavailable(format!("not ready: {error}")))?;
    let mut request = tonic::Request::new(request);
    request.set_timeout(CALL_TIMEOUT);
    let codec = auditum_proto::codec::Codec::<RawAppendRequest, pb::AppendResponse>::default();
    let response = grpc.unary(request, PathAndQuery::from_static("/auditum.v1.IngestService/Append"), codec).await?.into_inner();
    Ok(response)
}

/// SDK.md's retry rule: INVALID_ARGUMENT (dead letter), UNAUTHENTICATED and PERMISSION_DENIED
/// (stop) have their own handling; everything else is retried. SDK.md lists UNAVAILABLE,
/// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED and connection errors; an unexpected code
/// (INTERNAL, UNKNOWN...) is retried too, because giving up would mean dropping the event.
pub fn is_transient(status: &tonic::Status) -> bool {
    !matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::Unauthenticated | tonic::Code::PermissionDenied)
}

/// The server's `retry-after` hint (seconds), if it gave one.
pub fn retry_after(status: &tonic::Status) -> Option<Duration> {
    let seconds: f64 = status.metadata().get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// How many of `events` (encoded) the next Append call takes: at most `max_events`, and at most
/// `max_bytes` with each event's framing, but always at least one.
pub fn next_call_len(events: &[Bytes], max_events: usize, max_bytes: usize) -> usize {
    let (mut count, mut bytes) = (0, 0);
    while count < events.len() && count < max_events && (count == 0 || bytes + events[count].len() + 16 <= max_bytes) {
        bytes += events[count].len() + 16;
        count += 1;
    }
    count
}

/// Exponential backoff with jitter, honouring the server's `retry-after`.
#[derive(Debug, Clone)]
pub struct Backoff {
    delay: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { delay: min, min, max }
    }

    pub fn reset(&mut self) {
        self.delay = self.min;
    }

    /// How long to wait before the next try after `status`.
    pub fn next(&mut self, status: &tonic::Status) -> Duration {
        let jitter = Duration::from_millis(rand::random::<u64>() % (self.delay.as_millis() as u64 / 2 + 1));
        let wait = retry_after(status).unwrap_or(self.delay + jitter).min(self.max);
        self.delay = (self.delay * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_raw_request_encodes_exactly_as_the_generated_one() {
        let events: Vec<pb::AuditEvent> = (0..3)
            .map(|index| pb::AuditEvent {
                id: format!("e{index}"),
                tenant_id: "acme".into(),
                action: "a".repeat(200),
                ..Default::default()
            })
            .collect();
        let typed = pb::AppendRequest { events: events.clone(), wait_for_seal: true };
        let raw = RawAppendRequest { events: events.iter().map(|event| Bytes::from(event.encode_to_vec())).collect(), wait_for_seal: true };
        assert_eq!(raw.encode_to_vec(), typed.encode_to_vec());
        assert_eq!(raw.encoded_len(), typed.encoded_len());
    }

    #[test]
    fn backoff_grows_to_its_bound_and_takes_the_servers_hint() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let unavailable = tonic::Status::unavailable("down");
        let first = backoff.next(&unavailable);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(150), "{first:?}");
        for _ in 0..20 {
            backoff.next(&unavailable);
        }
        assert_eq!(backoff.next(&unavailable), Duration::from_secs(30));
        let mut hinted = tonic::Status::resource_exhausted("wal full");
        hinted.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from_static("2"));
        assert_eq!(backoff.next(&hinted), Duration::from_secs(2));
        assert!(!is_transient(&tonic::Status::invalid_argument("bad")) && is_transient(&tonic::Status::unknown("?")));
    }

    #[test]
    fn calls_stay_within_the_event_and_byte_limits() {
        use auditum_proto::validate::{MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND};
        let split = |events: &[Bytes], max_bytes: usize| {
            let mut rest = events;
            let mut calls = Vec::new();
            while !rest.is_empty() {
                let count = next_call_len(rest, MAX_EVENTS_PER_APPEND, max_bytes);
                calls.push(RawAppendRequest { events: rest[..count].to_vec(), wait_for_seal: true });
                rest = &rest[count..];
            }
            calls
        };
        let small: Vec<Bytes> = (0..2500).map(|_| Bytes::from(vec![b'x'; 10])).collect();
        assert_eq!(split(&small, MAX_APPEND_BYTES).iter().map(|call| call.events.len()).collect::<Vec<_>>(), [1000, 1000, 500]);
        let large: Vec<Bytes> = (0..100).map(|_| Bytes::from(vec![b'x'; 60_000])).collect();
        let calls = split(&large, MAX_APPEND_BYTES);
        assert!(calls.len() > 1);
        assert!(calls.iter().all(|call| prost::Message::encoded_len(call) <= MAX_APPEND_BYTES));
        assert_eq!(calls.iter().map(|call| call.events.len()).sum::<usize>(), 100);
        let huge = [Bytes::from(vec![b'x'; 100])];
        assert_eq!(next_call_len(&huge, 1000, 10), 1, "an event larger than the cap still makes a call");
    }

    #[test]
    fn the_servers_retry_hint_is_read_in_seconds() {
        let mut status = tonic::Status::resource_exhausted("wal full");
        status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from_static("5"));
        assert_eq!(retry_after(&status), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&tonic::Status::unavailable("down")), None);
    }
}
