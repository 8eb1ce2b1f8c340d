//! The Append idempotency index: ids of events in the WAL or sealed within the window, so a
//! retried event gets its original seq back (`duplicate = true`).

use auditum_format::event::Seq;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// 128 bits of SHA-256(tenant ‖ 0 ‖ id): compact, and no tenant can craft a collision with another's id.
pub(super) fn idempotency_key(tenant_id: &str, id: &str) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update(tenant_id.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(key)
}

/// Ids of events in the WAL or sealed within the window, for Append idempotency.
pub(super) struct IdempotencyIndex {
    ids: HashMap<u128, (Seq, i64)>,
    /// (seq, key) in seq order, for expiry.
    order: VecDeque<(Seq, u128)>,
    /// (end seq, sealed_at) of committed batches, oldest first.
    sealed: VecDeque<(Seq, i64)>,
    window_micros: i64,
    max_ids: usize,
    warned_cap: bool,
    /// Ids inserted over the index's life (entries pushed to `order`).
    inserted: u64,
}

impl IdempotencyIndex {
    pub(super) fn new(window: Duration, max_ids: usize) -> Self {
        IdempotencyIndex {
            ids: HashMap::new(),
            order: VecDeque::new(),
            sealed: VecDeque::new(),
            window_micros: window.as_micros().min(i64::MAX as u128) as i64,
            max_ids,
            warned_cap: false,
            inserted: 0,
        }
    }

    pub(super) fn get(&self, key: u128) -> Option<(Seq, i64)> {
        self.ids.get(&key).copied()
    }

    pub(super) fn insert(&mut self, key: u128, seq: Seq, received_at: i64) {
        if self.ids.insert(key, (seq, received_at)).is_none() {
            self.order.push_back((seq, key));
            self.inserted += 1;
        }
        while self.ids.len() > self.max_ids {
            if !self.warned_cap {
                tracing::warn!(max_ids = self.max_ids, "idempotency index is full: forgetting the oldest ids early");
                self.warned_cap = true;
            }
            let Some((_, oldest)) = self.order.pop_front() else { break };
            self.ids.remove(&oldest);
        }
    }

    /// How many ids were ever inserted (a mark for [`IdempotencyIndex::roll_back_to`]).
    pub(super) fn mark(&self) -> u64 {
        self.inserted
    }

    /// Forgets the ids inserted since `mark`, the newest ones: their events never reached the
    /// WAL, so a retry must be appended anew rather than answered as a duplicate.
    pub(super) fn roll_back_to(&mut self, mark: u64) {
        for _ in mark..self.inserted {
            let Some((_, key)) = self.order.pop_back() else { break };
            self.ids.remove(&key);
        }
        self.inserted = mark;
    }

    pub(super) fn on_committed(&mut self, committed_next: Seq, sealed_at: i64) {
        self.sealed.push_back((committed_next, sealed_at));
    }

    pub(super) fn expire(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.window_micros);
        while let Some(&(end, sealed_at)) = self.sealed.front() {
            if sealed_at >= horizon {
                break;
            }
            self.sealed.pop_front();
            while let Some(&(seq, key)) = self.order.front() {
                if seq >= end {
                    break;
                }
                self.order.pop_front();
                self.ids.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn keys_are_scoped_per_tenant() {
        assert_eq!(idempotency_key("acme", "e-1"), idempotency_key("acme", "e-1"));
        assert_ne!(idempotency_key("acme", "e-1"), idempotency_key("globex", "e-1"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(idempotency_key("ab", "c"), idempotency_key("a", "bc"));
    }

    #[test]
    fn ids_are_kept_until_their_batch_is_sealed_longer_ago_than_the_window() {
        let mut index = IdempotencyIndex::new(Duration::from_secs(60), 100);
        index.insert(1, Seq(0), 10);
        index.insert(2, Seq(1), 11);
        index.insert(3, Seq(2), 12);
        // Seqs 0 and 1 are sealed at t = 100 s; seq 2 is still in the WAL.
        index.on_committed(Seq(2), 100 * SECOND);
        index.expire(150 * SECOND);
        assert_eq!(index.get(1), Some((Seq(0), 10)), "sealed 50 s ago, inside the 60 s window");
        index.expire(161 * SECOND);
        assert_eq!(index.get(1), None, "sealed 61 s ago: forgotten");
        assert_eq!(index.get(2), None);
        assert_eq!(index.get(3), Some((Seq(2), 12)), "not sealed: never expires");
    }

    #[test]
    fn a_full_index_forgets_the_oldest_ids_first() {
        let mut index = IdempotencyIndex::new(Duration::from_secs(3600), 2);
        index.insert(1, Seq(0), 0);
        index.insert(2, Seq(1), 0);
        index.insert(3, Seq(2), 0);
        assert_eq!(index.get(1), None);
        assert_eq!(index.get(2), Some((Seq(1), 0)));
        assert_eq!(index.get(3), Some((Seq(2), 0)));
    }

    #[test]
    fn ids_of_a_failed_write_are_forgotten() {
        let mut index = IdempotencyIndex::new(Duration::from_secs(3600), 10);
        index.insert(1, Seq(0), 0);
        let mark = index.mark();
        index.insert(2, Seq(1), 0);
        index.insert(3, Seq(2), 0);
        index.roll_back_to(mark);
        assert_eq!(index.get(1), Some((Seq(0), 0)));
        assert_eq!((index.get(2), index.get(3)), (None, None), "a retry of these is appended anew");
    }

    #[test]
    fn reinserting_a_known_id_keeps_one_entry() {
        let mut index = IdempotencyIndex::new(Duration::from_secs(3600), 10);
        index.insert(7, Seq(0), 1);
        index.insert(7, Seq(0), 1);
        assert_eq!(index.order.len(), 1);
    }
}
