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

/// The index is split into this many maps by the key's top bits. A map that grows doubles its
/// table and moves every entry, on the writer thread: one map of 3.7M ids stalled a group commit
/// (and every append waiting on it) for ~0.2 s on an idle machine. Shards this small reach their
/// doubling points spread over many groups (`examples/idempotency_growth.rs`: the slowest group of
/// 10,000 ids went from ~200 ms to ~14-20 ms).
const SHARD_BITS: u32 = 12;
const SHARDS: usize = 1 << SHARD_BITS;

/// Ids of events in the WAL or sealed within the window, for Append idempotency.
pub struct IdempotencyIndex {
    shards: Vec<HashMap<u128, (Seq, i64)>>,
    len: usize,
    /// (seq, key) in seq order, for expiry.
    order: Fifo,
    /// (end seq, sealed_at) of committed batches, oldest first.
    sealed: VecDeque<(Seq, i64)>,
    window_micros: i64,
    max_ids: usize,
    warned_cap: bool,
    /// Ids inserted over the index's life (entries pushed to `order`).
    inserted: u64,
}

impl IdempotencyIndex {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        IdempotencyIndex {
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
            len: 0,
            order: Fifo::default(),
            sealed: VecDeque::new(),
            window_micros: window.as_micros().min(i64::MAX as u128) as i64,
            max_ids,
            warned_cap: false,
            inserted: 0,
        }
    }

    fn shard(key: u128) -> usize {
        (key >> (128 - SHARD_BITS)) as usize
    }

    fn remove(&mut self, key: u128) {
        if self.shards[Self::shard(key)].remove(&key).is_some() {
            self.len -= 1;
        }
    }

    pub fn get(&self, key: u128) -> Option<(Seq, i64)> {
        self.shards[Self::shard(key)].get(&key).copied()
    }

    pub fn insert(&mut self, key: u128, seq: Seq, received_at: i64) {
        if self.shards[Self::shard(key)].insert(key, (seq, received_at)).is_none() {
            self.len += 1;
            self.order.push_back((seq, key));
            self.inserted += 1;
        }
        while self.len > self.max_ids {
            if !self.warned_cap {
                tracing::warn!(max_ids = self.max_ids, "idempotency index is full: forgetting the oldest ids early");
                self.warned_cap = true;
            }
            let Some((_, oldest)) = self.order.pop_front() else { break };
            self.remove(oldest);
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
            self.remove(key);
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
                self.remove(key);
            }
        }
    }
}

/// A FIFO in fixed-size blocks: unlike one `VecDeque`, growing never moves what it holds (millions
/// of entries, on the writer thread).
#[derive(Default)]
struct Fifo {
    blocks: VecDeque<VecDeque<(Seq, u128)>>,
}

const FIFO_BLOCK: usize = 8192;

impl Fifo {
    fn push_back(&mut self, entry: (Seq, u128)) {
        match self.blocks.back_mut().filter(|block| block.len() < FIFO_BLOCK) {
            Some(block) => block.push_back(entry),
            None => {
                let mut block = VecDeque::with_capacity(FIFO_BLOCK);
                block.push_back(entry);
                self.blocks.push_back(block);
            }
        }
    }

    fn front(&self) -> Option<&(Seq, u128)> {
        self.blocks.front().and_then(|block| block.front())
    }

    fn pop_front(&mut self) -> Option<(Seq, u128)> {
        let block = self.blocks.front_mut()?;
        let entry = block.pop_front();
        if block.is_empty() {
            self.blocks.pop_front();
        }
        entry
    }

    fn pop_back(&mut self) -> Option<(Seq, u128)> {
        let block = self.blocks.back_mut()?;
        let entry = block.pop_back();
        if block.is_empty() {
            self.blocks.pop_back();
        }
        entry
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.blocks.iter().map(VecDeque::len).sum()
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
        assert_eq!(index.len, 1);
    }

    /// The sharded index and its block FIFO against a plain list, over keys spread across every
    /// shard and more entries than a block holds, used as the writer uses it (get, then insert).
    #[test]
    fn behaves_as_one_list_over_random_inserts_expiries_caps_and_roll_backs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let max_ids = 12_000;
        let mut index = IdempotencyIndex::new(Duration::from_secs(120), max_ids);
        // (key, seq, received_at) in seq order, the same by key, and (end seq, sealed_at) of commits.
        let mut model: VecDeque<(u128, Seq, i64)> = VecDeque::new();
        let mut by_key: HashMap<u128, (Seq, i64)> = HashMap::new();
        let mut commits: VecDeque<(Seq, i64)> = VecDeque::new();
        let (mut next_seq, mut now) = (0u64, 0i64);
        let mut keys: Vec<u128> = Vec::new();
        for _ in 0..600 {
            now += SECOND;
            let mark = index.mark();
            let mut inserted = 0;
            for _ in 0..rng.gen_range(0..300) {
                let key = if !keys.is_empty() && rng.gen_bool(0.1) { keys[rng.gen_range(0..keys.len())] } else { rng.r#gen::<u128>() };
                keys.push(key);
                let expected = by_key.get(&key).copied();
                assert_eq!(index.get(key), expected);
                if expected.is_some() {
                    continue;
                }
                index.insert(key, Seq(next_seq), now);
                model.push_back((key, Seq(next_seq), now));
                by_key.insert(key, (Seq(next_seq), now));
                next_seq += 1;
                inserted += 1;
                while model.len() > max_ids {
                    model.pop_front().map(|(oldest, ..)| by_key.remove(&oldest));
                }
            }
            if rng.gen_bool(0.05) {
                index.roll_back_to(mark);
                for _ in 0..inserted {
                    model.pop_back().map(|(newest, ..)| by_key.remove(&newest));
                }
            } else if rng.gen_bool(0.2) {
                index.on_committed(Seq(next_seq), now);
                commits.push_back((Seq(next_seq), now));
            }
            index.expire(now);
            while let Some(&(end, _)) = commits.front().filter(|&&(_, sealed_at)| sealed_at < now - 120 * SECOND) {
                commits.pop_front();
                while let Some(&(oldest, ..)) = model.front().filter(|&&(_, seq, _)| seq < end) {
                    model.pop_front();
                    by_key.remove(&oldest);
                }
            }
            assert_eq!(index.len, model.len());
            assert_eq!(index.order.len(), model.len());
        }
        assert!(model.len() > FIFO_BLOCK, "the list spans blocks");
        assert!(index.warned_cap, "the cap was reached");
        let shards_used = index.shards.iter().filter(|shard| !shard.is_empty()).count();
        assert!(shards_used > SHARDS * 9 / 10, "random keys spread over the shards ({shards_used} of {SHARDS} used)");
        for &(key, seq, at) in &model {
            assert_eq!(index.get(key), Some((seq, at)));
        }
    }
}
