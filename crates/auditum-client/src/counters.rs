//! The client's counters (SDK.md, Observability): plain atomics, readable at any time.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub logged: AtomicU64,
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dropped: AtomicU64,
    pub spool_bytes: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events `log()` accepted.
    pub logged: u64,
    /// Events the server acknowledged (including those it already had).
    pub delivered: u64,
    /// Of `delivered`, those the server reported as duplicates (a resend after a crash or a lost ack).
    pub duplicates: u64,
    /// Append calls retried after a transient failure.
    pub retried: u64,
    /// Events the server rejected, written to the dead-letter file.
    pub dead_lettered: u64,
    /// Events dropped by `on_full = Drop`.
    pub dropped: u64,
    /// Bytes in the spool's segment files now (0 without a spool).
    pub spool_bytes: u64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            logged: read(&self.logged),
            delivered: read(&self.delivered),
            duplicates: read(&self.duplicates),
            retried: read(&self.retried),
            dead_lettered: read(&self.dead_lettered),
            dropped: read(&self.dropped),
            spool_bytes: read(&self.spool_bytes),
        }
    }
}
