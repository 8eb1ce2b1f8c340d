//! The writer thread: group commit over the WAL. Appends reach it over a channel; everything
//! queued while it fsyncs is written and synced together (one fdatasync per group), and every
//! waiter is answered after the sync — never before.

use super::idempotency::{IdempotencyIndex, idempotency_key};
use super::wal::WalFiles;
use super::{Appended, Error, Inner, LogStatus, Result, lock};
use crate::metrics::{self, METRICS};
use auditum_format::event::{EventRecord, Seq};
use auditum_format::time::now_micros;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Appends queued beyond this many events wait for the next group.
const MAX_GROUP_EVENTS: usize = 20_000;
/// A fully committed active segment is rotated away once it holds this much.
const WAL_ROTATE_MIN_BYTES: u64 = 1024 * 1024;

pub(super) enum WalCommand {
    Append {
        events: Vec<EventRecord>,
        reply: oneshot::Sender<Result<Vec<Appended>>>,
    },
    Committed {
        committed_next: Seq,
        sealed_at: i64,
    },
    /// Try to bring a failed WAL back (sent every second while the log is failed).
    Recover,
    /// The store's recent ids and commits, once a pending start completes.
    Preload(Box<super::recovery::StoreState>),
    Stop,
}

/// After a failed write: the WAL is cut back to what was synced and checked; appends resume
/// once that works (say, once space was freed on a full disk).
fn try_recover(inner: &Inner, wal: &mut WalFiles, log: &str) -> LogStatus {
    match wal.recover() {
        Ok(()) => {
            tracing::warn!(log = %log, next_seq = %wal.next_seq(), "wal writes work again; the log accepts appends");
            let mut shared = lock(&inner.shared);
            shared.status = LogStatus::Serving;
            shared.wal_bytes = wal.total_bytes();
            LogStatus::Serving
        }
        Err(error) => {
            tracing::debug!(log = %log, %error, "wal still failing");
            lock(&inner.shared).status.clone()
        }
    }
}

/// The writer thread: group commit over the WAL.
pub(super) fn run_writer(inner: Arc<Inner>, mut wal: WalFiles, mut ids: IdempotencyIndex, mut receiver: mpsc::Receiver<WalCommand>) {
    let log = inner.settings.name.clone();
    let mut framed = Vec::with_capacity(1 << 20);
    while let Some(first) = receiver.blocking_recv() {
        let mut commands = vec![first];
        let mut queued_events = 0;
        while queued_events < MAX_GROUP_EVENTS {
            match receiver.try_recv() {
                Ok(command) => {
                    if let WalCommand::Append { events, .. } = &command {
                        queued_events += events.len();
                    }
                    commands.push(command);
                }
                Err(_) => break,
            }
        }
        framed.clear();
        let received_at = now_micros();
        let mut next = wal.next_seq();
        // Shared from here on: the log's lock then only takes pointers, not ~600-byte records.
        let mut new_records: Vec<Arc<EventRecord>> = Vec::with_capacity(
            commands.iter().map(|command| if let WalCommand::Append { events, .. } = command { events.len() } else { 0 }).sum(),
        );
        let mut replies = Vec::new();
        let mut committed_updates = Vec::new();
        let mut preloads = Vec::new();
        let mut stop = false;
        let mut duplicates = 0u64;
        let mut status = lock(&inner.shared).status.clone();
        let wants_writes = commands.iter().any(|command| matches!(command, WalCommand::Append { .. } | WalCommand::Recover));
        if matches!(status, LogStatus::Failed(_)) && wants_writes {
            status = try_recover(&inner, &mut wal, &log);
        }
        let ids_mark = ids.mark();
        for command in commands {
            match command {
                WalCommand::Append { events, reply } => {
                    if !matches!(status, LogStatus::Serving | LogStatus::Pending(_)) {
                        let reason = match status {
                            LogStatus::Fenced(_) => "fenced",
                            LogStatus::Failed(_) => "wal_failed",
                            _ => "shutting_down",
                        };
                        METRICS.append_rejected.get_or_create(&metrics::Rejection { log: log.clone(), reason: reason.into() }).inc();
                        let _ = reply.send(Err(status.error(&log).unwrap_or(Error::ShuttingDown { log: log.clone() })));
                        continue;
                    }
                    // Never acknowledge what the WAL cannot keep: while sealing is blocked
                    // (object store down) the WAL grows only to its cap.
                    let wal_bytes = wal.total_bytes() + framed.len() as u64;
                    if wal_bytes >= inner.settings.wal_max_bytes {
                        METRICS.append_rejected.get_or_create(&metrics::Rejection { log: log.clone(), reason: "wal_full".into() }).inc();
                        let _ = reply.send(Err(Error::WalFull { log: log.clone(), wal_bytes, limit: inner.settings.wal_max_bytes }));
                        continue;
                    }
                    let mut results = Vec::with_capacity(events.len());
                    for mut event in events {
                        let key = idempotency_key(&event.tenant_id, &event.id);
                        if let Some((seq, original_received_at)) = ids.get(key) {
                            duplicates += 1;
                            results.push(Appended { seq, id: event.id, duplicate: true, received_at: original_received_at });
                            continue;
                        }
                        event.seq = next;
                        event.received_at = received_at;
                        next = next.next();
                        ids.insert(key, event.seq, received_at);
                        auditum_format::wal::encode_record(&event, &mut framed);
                        results.push(Appended { seq: event.seq, id: event.id.clone(), duplicate: false, received_at });
                        new_records.push(Arc::new(event));
                    }
                    replies.push((reply, results));
                }
                WalCommand::Committed { committed_next, sealed_at } => committed_updates.push((committed_next, sealed_at)),
                WalCommand::Recover => {}
                // Applied after this group's write, so a failed write's roll-back never takes them.
                WalCommand::Preload(state) => preloads.push(state),
                WalCommand::Stop => stop = true,
            }
        }
        let mut written = true;
        if !new_records.is_empty()
            && let Err(error) = wal.append_synced(&framed, new_records.len() as u64)
        {
            // After a failed write or fsync the file's state is unknown (retrying fsync can
            // report success for lost data): nothing of this group is acknowledged, its ids are
            // forgotten, and appends stop until the WAL is cut back and checked (try_recover).
            let reason = error.to_string();
            tracing::error!(log = %log, %reason, "wal write failed; the log stops accepting appends until writes work again");
            let failed = LogStatus::Failed(reason);
            lock(&inner.shared).status = failed.clone();
            ids.roll_back_to(ids_mark);
            for (reply, _) in replies.drain(..) {
                let _ = reply.send(Err(failed.error(&log).unwrap_or(Error::ShuttingDown { log: log.clone() })));
            }
            written = false;
        }
        if !new_records.is_empty() && written {
            let label = metrics::log_label(&log);
            METRICS.append_events.get_or_create(&label).inc_by(new_records.len() as u64);
            METRICS.append_bytes.get_or_create(&label).inc_by(framed.len() as u64);
            // Worked out before taking the lock, which queries and followers wait on too.
            let added_bytes: usize = new_records.iter().map(|record| record.encoded_len_hint()).sum();
            let durable_end = new_records.last().map_or(0, |record| record.seq.0 + 1);
            let full = {
                let mut shared = lock(&inner.shared);
                shared.open_bytes += added_bytes;
                for record in new_records {
                    shared.unsealed_by_tenant.push(&record);
                    shared.open.push_back(record);
                }
                shared.wal_bytes = wal.total_bytes();
                // Inside the lock: a subscriber woken by it finds the events in `open`.
                inner.durable_end.send_replace(durable_end);
                shared.open.len() >= inner.settings.batch_max_events || shared.open_bytes >= inner.settings.batch_max_bytes
            };
            if full {
                inner.seal_wakeup.notify_one();
            }
        }
        for state in preloads {
            state.apply_to(&mut ids);
        }
        if duplicates > 0 {
            METRICS.append_duplicates.get_or_create(&metrics::log_label(&log)).inc_by(duplicates);
        }
        for (reply, results) in replies {
            let _ = reply.send(Ok(results));
        }
        for (committed_next, sealed_at) in committed_updates {
            ids.on_committed(committed_next, sealed_at);
            ids.expire(now_micros());
            match wal.delete_committed(committed_next, WAL_ROTATE_MIN_BYTES) {
                Ok(deleted) if deleted > 0 => tracing::debug!(log = %log, deleted, "deleted committed wal segments"),
                Ok(_) => {}
                Err(error) => tracing::warn!(log = %log, %error, "cannot delete committed wal segments; will retry after the next seal"),
            }
            lock(&inner.shared).wal_bytes = wal.total_bytes();
        }
        if stop {
            break;
        }
    }
    tracing::debug!(log = %log, "wal writer stopped");
}

/// While the log is failed, asks the writer every second to try the WAL again, so a log whose
/// disk filled up comes back by itself once space is freed, without a restart.
pub(super) async fn run_recovery_probe(log: super::Log, mut stop: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        if stop.borrow().is_some() {
            return;
        }
        if matches!(log.status(), LogStatus::Failed(_)) {
            let _ = log.inner.commands.try_send(WalCommand::Recover);
        }
    }
}
