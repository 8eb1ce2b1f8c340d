//! Sends one batch of outbox events through the SDK's durable path and sorts them into
//! acknowledged and rejected, so that one bad row never holds up the rows around it.

use auditum_client::dead_letter::rejected_index;
use auditum_client::{AuditClient, Event, LogError};
use auditum_proto::pb;

/// What became of a batch's events, by the keys they were handed in with.
#[derive(Debug, Default)]
pub struct Sent<K> {
    /// Durable on the server (stored now, or already stored: `duplicates` of them).
    pub acknowledged: Vec<K>,
    /// Rejected by the server (INVALID_ARGUMENT, or PERMISSION_DENIED naming the event), with its
    /// message.
    pub rejected: Vec<(K, String)>,
    pub duplicates: usize,
}

/// Sends `events` until each is acknowledged or rejected. Any other failure (the server down past
/// the client's `durable_timeout`, the key refused) ends the batch with that error: the caller
/// rolls back and nothing is lost, because the events that did arrive are stored under their ids.
///
/// The events are moved into the first call, not copied; after a rejection the rest are built
/// again with `rebuild` (rare, so the common path pays for no copy).
pub async fn send<K: Copy>(
    client: &AuditClient,
    events: Vec<(K, pb::AuditEvent)>,
    rebuild: impl Fn(K) -> pb::AuditEvent,
) -> Result<Sent<K>, LogError> {
    let mut sent = Sent { acknowledged: Vec::with_capacity(events.len()), rejected: Vec::new(), duplicates: 0 };
    let (mut rest, events): (Vec<K>, Vec<Event>) = events.into_iter().map(|(key, event)| (key, Event::from(event))).unzip();
    let mut first = Some(events);
    // Set when a rejection does not name its event: then the rest go one per call.
    let mut one_at_a_time = false;
    while !rest.is_empty() {
        let count = if one_at_a_time { 1 } else { rest.len() };
        let calls = match first.take() {
            Some(events) => events,
            None => rest[..count].iter().map(|&key| Event::from(rebuild(key))).collect(),
        };
        let mut arrived = 0;
        let mut duplicates = 0;
        let outcome = client
            .log_durable_each(calls, false, |results| {
                arrived += results.len();
                duplicates += results.iter().filter(|result| result.duplicate).count();
            })
            .await;
        sent.duplicates += duplicates;
        // Calls before a failed one were stored; the failed call stored none of its events.
        sent.acknowledged.extend(rest.drain(..arrived));
        let status = match outcome {
            Ok(_) => continue,
            Err(LogError::Rejected { status }) => status,
            // A key bound to other tenants refuses this event, not the relay: it is the row's fault.
            Err(LogError::Rpc { status })
                if status.code() == tonic::Code::PermissionDenied && rejected_index(status.message()).is_some() =>
            {
                status
            }
            Err(other) => return Err(other),
        };
        let message = status.message().to_string();
        match rejected_index(&message).filter(|&index| index < rest.len().min(count - arrived)) {
            Some(index) => sent.rejected.push((rest.remove(index), message)),
            None if count - arrived == 1 => sent.rejected.push((rest.remove(0), message)),
            None => one_at_a_time = true,
        }
    }
    Ok(sent)
}
