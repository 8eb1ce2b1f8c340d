//! What `log()` and the delivery worker share: the spool and the queue of undelivered events
//! under one mutex (so the queue's order is the spool's), and the signals between them.

use crate::counters::Counters;
use crate::dead_letter::DeadLetters;
use crate::event::LocalRules;
use crate::options::{Options, Problem};
use crate::spool::{Location, Spool};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// One undelivered event.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its place in `log()` order (flush waits on these).
    pub n: u64,
    /// The encoded `AuditEvent`, id set.
    pub event: Bytes,
    /// Its record in the spool, if there is one.
    pub location: Option<Location>,
    pub at: Instant,
}

#[derive(Debug, Default)]
pub struct Queue {
    pub spool: Option<Spool>,
    pub pending: VecDeque<Pending>,
    pub pending_bytes: usize,
    /// Encoded bytes of every undelivered event, queued or in flight (the bound without a spool).
    pub undelivered_bytes: u64,
    pub next_n: u64,
    /// The smallest `n` of each batch in flight (with multiplicity).
    pub in_flight: BTreeMap<u64, usize>,
    /// `flush()` calls waiting: the worker sends without lingering.
    pub urgent: usize,
    /// `close()` began, or the client was dropped: the worker ends once nothing is left.
    pub closing: bool,
    /// Set by UNAUTHENTICATED / PERMISSION_DENIED: delivery stopped.
    pub stopped: Option<String>,
}

impl Queue {
    /// Every event numbered below this is delivered, dead-lettered or dropped.
    pub fn done_below(&self) -> u64 {
        let queued = self.pending.front().map(|pending| pending.n);
        let flying = self.in_flight.keys().next().copied();
        [queued, flying].into_iter().flatten().min().unwrap_or(self.next_n)
    }

    pub fn push(&mut self, pending: Pending) {
        self.pending_bytes += pending.event.len();
        self.undelivered_bytes += pending.event.len() as u64;
        self.pending.push_back(pending);
    }

    /// Takes the next batch (within the event and byte bounds) and registers it as in flight.
    pub fn take_batch(&mut self, max_events: usize, max_bytes: usize) -> Vec<Pending> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(front) = self.pending.front() {
            // Framing is at most 4 bytes per event; 16 leaves room for the request's own.
            let size = front.event.len() + 16;
            if batch.len() >= max_events || (!batch.is_empty() && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            self.pending_bytes -= front.event.len();
            batch.extend(self.pending.pop_front());
        }
        if let Some(first) = batch.first() {
            *self.in_flight.entry(first.n).or_default() += 1;
        }
        batch
    }

    fn finish_flight(&mut self, key: u64) {
        if let Some(count) = self.in_flight.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(&key);
            }
        }
    }
}

/// The state shared by the client handle and its worker.
pub struct Shared {
    pub queue: Mutex<Queue>,
    /// Signalled when room is freed (for `OnFull::Block`).
    pub room: Condvar,
    /// Wakes the worker: events arrived, a flush began, or the client is closing.
    pub wake: tokio::sync::Notify,
    /// Wakes `flush()`: events were delivered.
    pub progress: tokio::sync::Notify,
    pub counters: Counters,
    pub options: Options,
    pub dead_letters: DeadLetters,
    pub rules: LocalRules,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue consistent (every step is a single push,
        // pop or write); carrying on beats losing the events.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn report(&self, problem: Problem) {
        tracing::warn!(%problem, "auditum client");
        if let Some(handler) = &self.options.on_error {
            handler(&problem);
        }
    }

    /// A batch is over: `done` events were acknowledged (or dead-lettered) and leave the spool;
    /// `returned` go back to the front of the queue. `key` is the `n` it was registered under.
    pub fn settle(&self, key: u64, done: &[Pending], returned: Vec<Pending>) {
        let locations: Vec<Location> = done.iter().filter_map(|pending| pending.location).collect();
        let mut queue = self.lock();
        let mut freed = false;
        if let Some(spool) = queue.spool.as_mut()
            && !locations.is_empty()
        {
            match spool.ack(&locations) {
                Ok(spool_freed) => freed = spool_freed,
                Err(error) => self.report(Problem::Io { detail: format!("spool ack: {error}") }),
            }
            self.counters.spool_bytes.store(spool.data_size(), Ordering::Relaxed);
        }
        let bytes: u64 = done.iter().map(|pending| pending.event.len() as u64).sum();
        queue.undelivered_bytes -= bytes;
        for pending in returned.into_iter().rev() {
            queue.pending_bytes += pending.event.len();
            queue.pending.push_front(pending);
        }
        queue.finish_flight(key);
        let no_spool = queue.spool.is_none();
        drop(queue);
        if freed || no_spool {
            self.room.notify_all();
        }
        self.progress.notify_waiters();
    }
}
