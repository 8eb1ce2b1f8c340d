//! The unsealed events (the batch being sealed and the open one) indexed by tenant, so a query
//! takes a copy of its tenant's events only: copying every unsealed event (up to two batches)
//! under the log's lock, which every group commit takes, starved reads and appends alike while
//! ingest ran. Each tenant's events are kept in chunks with their `occurred_at` range, so a query
//! over a past window copies none of the live tail: while sealing lagged behind ingest, every
//! query copied and filtered its tenant's whole backlog, which took CPU from the sealer and let
//! the backlog grow further.

use crate::read::OccurredWindow;
use auditum_format::event::{EventRecord, Seq};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Events per chunk: small enough that a window meeting the live tail copies little beyond it,
/// large enough that a tenant's chunk list stays short.
const CHUNK_EVENTS: usize = 1024;

/// Consecutive events of one tenant, and bounds of their `occurred_at` (inclusive; after
/// [`UnsealedByTenant::forget_below`] they may be wider than what is left, never narrower).
struct Chunk {
    records: Vec<Arc<EventRecord>>,
    min_occurred_at: i64,
    max_occurred_at: i64,
}

impl Chunk {
    fn meets(&self, window: OccurredWindow) -> bool {
        window.start.is_none_or(|start| self.max_occurred_at >= start) && window.end.is_none_or(|end| self.min_occurred_at < end)
    }
}

/// Each tenant's unsealed events in seq order.
#[derive(Default)]
pub(super) struct UnsealedByTenant {
    tenants: HashMap<String, VecDeque<Chunk>>,
}

impl UnsealedByTenant {
    /// Adds an event that became durable (seqs only grow).
    pub(super) fn push(&mut self, record: &Arc<EventRecord>) {
        let occurred_at = record.occurred_at;
        let chunks = match self.tenants.get_mut(record.tenant_id.as_str()) {
            Some(chunks) => chunks,
            None => self.tenants.entry(record.tenant_id.clone()).or_default(),
        };
        match chunks.back_mut().filter(|chunk| chunk.records.len() < CHUNK_EVENTS) {
            Some(chunk) => {
                chunk.records.push(record.clone());
                chunk.min_occurred_at = chunk.min_occurred_at.min(occurred_at);
                chunk.max_occurred_at = chunk.max_occurred_at.max(occurred_at);
            }
            // Grown as needed: a tenant with one unsealed event holds one slot, not 1,024.
            None => chunks.push_back(Chunk { records: vec![record.clone()], min_occurred_at: occurred_at, max_occurred_at: occurred_at }),
        }
    }

    /// Forgets the events below `next` (sealed now).
    pub(super) fn forget_below(&mut self, next: Seq) {
        self.tenants.retain(|_, chunks| {
            while let Some(first) = chunks.front_mut() {
                let sealed = first.records.partition_point(|record| record.seq < next);
                if sealed < first.records.len() {
                    first.records.drain(..sealed);
                    break;
                }
                chunks.pop_front();
            }
            !chunks.is_empty()
        });
    }

    /// A copy of one tenant's unsealed events that may fall in `window`, in seq order: every
    /// event in the window, and possibly others of the same chunks (the scan filters them).
    pub(super) fn of(&self, tenant_id: &str, window: OccurredWindow) -> Vec<Arc<EventRecord>> {
        let Some(chunks) = self.tenants.get(tenant_id) else { return Vec::new() };
        let meeting = || chunks.iter().filter(|chunk| chunk.meets(window));
        let mut records = Vec::with_capacity(meeting().map(|chunk| chunk.records.len()).sum());
        meeting().for_each(|chunk| records.extend(chunk.records.iter().cloned()));
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, tenant: &str) -> Arc<EventRecord> {
        Arc::new(EventRecord { seq: Seq(seq), tenant_id: tenant.into(), ..Default::default() })
    }

    #[test]
    fn each_tenant_keeps_its_events_in_order_until_they_are_sealed() {
        let mut index = UnsealedByTenant::default();
        for (seq, tenant) in [(0, "a"), (1, "b"), (2, "a"), (3, "a"), (4, "b")] {
            index.push(&record(seq, tenant));
        }
        let seqs = |index: &UnsealedByTenant, tenant: &str| {
            index.of(tenant, OccurredWindow::default()).iter().map(|record| record.seq.0).collect::<Vec<_>>()
        };
        assert_eq!(seqs(&index, "a"), [0, 2, 3]);
        assert_eq!(seqs(&index, "b"), [1, 4]);
        assert!(seqs(&index, "c").is_empty());
        index.forget_below(Seq(3));
        assert_eq!(seqs(&index, "a"), [3]);
        assert_eq!(seqs(&index, "b"), [4]);
        index.forget_below(Seq(5));
        assert!(index.tenants.is_empty(), "a tenant with nothing unsealed is dropped");
    }

    fn event(seq: u64, tenant: &str, occurred_at: i64) -> Arc<EventRecord> {
        Arc::new(EventRecord { seq: Seq(seq), tenant_id: tenant.into(), occurred_at, ..Default::default() })
    }

    #[test]
    fn a_window_gets_every_unsealed_event_of_its_tenant_in_it_in_seq_order() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..50 {
            let mut index = UnsealedByTenant::default();
            let mut all = Vec::new();
            let mut sealed_below = 0;
            for seq in 0..rng.gen_range(0..5_000u64) {
                let tenant = ["a", "b", "c"][rng.gen_range(0..3)];
                // Mostly near "now", some backfilled far in the past.
                let occurred_at = if rng.gen_bool(0.05) { rng.gen_range(0..1_000) } else { 10_000 + seq as i64 + rng.gen_range(-50..50) };
                let record = event(seq, tenant, occurred_at);
                index.push(&record);
                all.push(record);
                if rng.gen_bool(0.001) {
                    sealed_below = rng.gen_range(sealed_below..=seq + 1);
                    index.forget_below(Seq(sealed_below));
                }
            }
            for _ in 0..20 {
                let bound = |rng: &mut rand::rngs::StdRng| rng.gen_bool(0.8).then(|| rng.gen_range(-100..16_000));
                let window = OccurredWindow { start: bound(&mut rng), end: bound(&mut rng) };
                for tenant in ["a", "b", "c", "d"] {
                    let got = index.of(tenant, window);
                    assert!(got.windows(2).all(|pair| pair[0].seq < pair[1].seq), "seq order");
                    assert!(
                        got.iter().all(|record| record.tenant_id == tenant && record.seq.0 >= sealed_below),
                        "only the tenant's unsealed events"
                    );
                    let in_window = |records: &[Arc<EventRecord>]| {
                        records.iter().filter(|record| window.contains(record.occurred_at)).map(|record| record.seq.0).collect::<Vec<_>>()
                    };
                    let expected: Vec<_> =
                        all.iter().filter(|record| record.tenant_id == tenant && record.seq.0 >= sealed_below).cloned().collect();
                    assert_eq!(in_window(&got), in_window(&expected), "tenant {tenant}, window {window:?}");
                }
            }
        }
    }

    #[test]
    fn a_past_window_copies_nothing_of_a_live_tail() {
        let mut index = UnsealedByTenant::default();
        for seq in 0..100_000u64 {
            index.push(&event(seq, "a", 1_000_000 + seq as i64));
        }
        let last_month = OccurredWindow { start: Some(0), end: Some(1_000_000) };
        assert!(index.of("a", last_month).is_empty());
        assert!(index.of("a", OccurredWindow::NOTHING).is_empty());
        let recent = OccurredWindow { start: Some(1_099_000), end: None };
        let copied = index.of("a", recent);
        assert!(copied.len() >= 1_000 && copied.len() <= 1_000 + 2 * CHUNK_EVENTS, "copied {} events for a window of 1,000", copied.len());
    }

    /// A chunk whose latest event is exactly at the window's start is read; one whose earliest
    /// is exactly at its end is not (windows are `[start, end)`), also after a partial seal.
    #[test]
    fn chunks_on_the_window_bounds() {
        let mut index = UnsealedByTenant::default();
        // Chunk 1: seqs 0..1024 at times 0..1024 (max 1023); chunk 2: seqs 1024..2048 at 5000.. (min 5000).
        for seq in 0..CHUNK_EVENTS as u64 {
            index.push(&event(seq, "a", seq as i64));
        }
        for seq in CHUNK_EVENTS as u64..2 * CHUNK_EVENTS as u64 {
            index.push(&event(seq, "a", 5_000 + seq as i64));
        }
        for sealed_below in [0, 10] {
            index.forget_below(Seq(sealed_below));
            let window = OccurredWindow { start: Some(1_023), end: Some(5_000 + CHUNK_EVENTS as i64) };
            let got = index.of("a", window);
            assert_eq!(got.first().map(|record| record.seq.0), Some(sealed_below), "the chunk ending at the start is read");
            assert_eq!(got.len(), CHUNK_EVENTS - sealed_below as usize, "the chunk starting at the end is not");
            assert!(got.iter().any(|record| window.contains(record.occurred_at)));
        }
    }
}
