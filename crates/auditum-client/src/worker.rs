//! The delivery worker: takes batches off the queue (after `linger`, or at once when a batch is
//! full or a flush waits), fsyncs the spool once per batch, and sends up to `max_in_flight`
//! calls at a time, each retried until the server takes it (SDK.md, Retries).

use crate::AuthChannel;
use crate::counters::Counters;
use crate::dead_letter::rejected_index;
use crate::options::Problem;
use crate::queue::{Pending, Shared};
use crate::wire::{self, Backoff, RawAppendRequest};
use auditum_proto::pb;
use prost::Message;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;

enum Next {
    Batch(Vec<Pending>, Option<Arc<std::fs::File>>),
    Wait(Option<Instant>),
    Exit,
}

fn next(shared: &Shared) -> Next {
    let options = &shared.options;
    let mut queue = shared.lock();
    let Some(front) = queue.pending.front() else {
        return if queue.closing && queue.in_flight.is_empty() { Next::Exit } else { Next::Wait(None) };
    };
    if queue.stopped.is_some() {
        return if queue.closing { Next::Exit } else { Next::Wait(None) };
    }
    let due = front.at + options.linger;
    let full = queue.pending.len() >= options.batch_max_events || queue.pending_bytes >= options.batch_max_bytes;
    if !full && queue.urgent == 0 && !queue.closing && Instant::now() < due {
        return Next::Wait(Some(due));
    }
    let batch = queue.take_batch(options.batch_max_events, options.batch_max_bytes);
    let unsynced = queue.spool.as_mut().and_then(|spool| spool.take_unsynced());
    Next::Batch(batch, unsynced)
}

/// Runs until the client closes and nothing is left to send (or it is aborted by `close`).
pub async fn run(shared: Arc<Shared>, channel: AuthChannel) {
    let permits = Arc::new(tokio::sync::Semaphore::new(shared.options.max_in_flight));
    let mut calls = JoinSet::new();
    loop {
        // Registered before looking, so a wake between the look and the wait is not missed.
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match next(&shared) {
            Next::Exit => break,
            Next::Wait(None) => woken.await,
            Next::Wait(Some(due)) => {
                let _ = tokio::time::timeout_at(due.into(), woken).await;
            }
            Next::Batch(batch, unsynced) => {
                if let Some(file) = unsynced {
                    // The spool's batch fsync: before the events leave, off the runtime's threads.
                    match tokio::task::spawn_blocking(move || file.sync_data()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => shared.report(Problem::Io { detail: format!("spool fsync: {error}") }),
                        Err(error) => shared.report(Problem::Io { detail: format!("spool fsync: {error}") }),
                    }
                }
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let (shared, channel) = (shared.clone(), channel.clone());
                calls.spawn(async move {
                    deliver(&shared, &channel, batch).await;
                    drop(permit);
                });
            }
        }
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
}

/// Sends one batch until every event in it is acknowledged or dead-lettered, or the key is refused.
async fn deliver(shared: &Shared, channel: &AuthChannel, mut batch: Vec<Pending>) {
    let Some(key) = batch.first().map(|pending| pending.n) else { return };
    let options = &shared.options;
    let mut backoff = Backoff::new(options.retry_min, options.retry_max);
    let mut failing = false;
    let mut done = Vec::with_capacity(batch.len());
    while !batch.is_empty() {
        let request = RawAppendRequest { events: batch.iter().map(|pending| pending.event.clone()).collect(), wait_for_seal: false };
        let status = match wire::append(channel, request).await {
            Ok(response) if response.results.len() == batch.len() => {
                let duplicates = response.results.iter().filter(|result| result.duplicate).count() as u64;
                Counters::add(&shared.counters.delivered, batch.len() as u64);
                Counters::add(&shared.counters.duplicates, duplicates);
                done.append(&mut batch);
                break;
            }
            Ok(response) => tonic::Status::internal(format!("{} results for {} events", response.results.len(), batch.len())),
            Err(status) => status,
        };
        match status.code() {
            tonic::Code::InvalidArgument => {
                let rejected = match rejected_index(status.message()).filter(|&index| index < batch.len()) {
                    Some(index) => vec![batch.remove(index)],
                    None => std::mem::take(&mut batch),
                };
                if dead_letter(shared, &rejected, status.message()) {
                    done.extend(rejected);
                }
                // The others go again at once: the server took none of this call.
                backoff.reset();
            }
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                let message = format!("{:?}: {}", status.code(), status.message());
                shared.lock().stopped = Some(message.clone());
                shared.report(Problem::Unauthorized { message });
                shared.settle(key, &done, batch);
                return;
            }
            _ => {
                Counters::add(&shared.counters.retried, 1);
                if !failing {
                    failing = true;
                    shared.report(Problem::Retrying { message: format!("{:?}: {}", status.code(), status.message()) });
                }
                tokio::time::sleep(backoff.next(&status)).await;
            }
        }
    }
    shared.settle(key, &done, Vec::new());
}

/// Writes rejected events to the dead-letter file; false if that failed (they stay spooled, for
/// the next client to try again, rather than being acknowledged unrecorded).
fn dead_letter(shared: &Shared, rejected: &[Pending], message: &str) -> bool {
    let events: Vec<pb::AuditEvent> = rejected.iter().filter_map(|pending| pb::AuditEvent::decode(pending.event.clone()).ok()).collect();
    if let Err(error) = shared.dead_letters.write("INVALID_ARGUMENT", message, &events) {
        shared.report(Problem::Io { detail: format!("dead-letter file: {error}; the rejected events stay spooled") });
        return false;
    }
    Counters::add(&shared.counters.dead_lettered, rejected.len() as u64);
    for event in &events {
        shared.report(Problem::Rejected { id: event.id.clone(), message: message.to_string() });
    }
    true
}
