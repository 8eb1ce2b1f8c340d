//! Counts of events by (time bucket start, group keys), and their cache: Summarize's partial
//! results of sealed batches, which never change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Memory the cached counts may take (estimated), and the most one entry may take of it.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
const CACHE_ENTRY_BYTES: usize = CACHE_BYTES / 4;

/// Hashed with foldhash (seeded per map): SipHash was a tenth of a warm Summarize's time.
pub type Counts = HashMap<(i64, Vec<String>), u64, foldhash::quality::RandomState>;
/// (batch object, request shape).
type CacheKey = (String, String);

/// Counts of sealed batches by request shape: each batch's, and all of a ledger prefix's
/// together (the ledger only grows, so its length names the set of batches exactly).
#[derive(Default)]
pub struct SummaryCache {
    entries: Mutex<CacheEntries>,
}

/// The cached counts with their estimated size, their keys oldest first (evicted first), and
/// the estimated total.
#[derive(Default)]
struct CacheEntries {
    counts: HashMap<CacheKey, (Arc<Counts>, usize)>,
    order: std::collections::VecDeque<CacheKey>,
    bytes: usize,
}

/// Roughly what a `Counts` takes in memory.
fn estimated_bytes(counts: &Counts) -> usize {
    counts.keys().map(|(_, keys)| 64 + keys.iter().map(|key| key.len() + 24).sum::<usize>()).sum()
}

impl std::fmt::Debug for SummaryCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SummaryCache").finish_non_exhaustive()
    }
}

impl SummaryCache {
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Counts>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).counts.get(key).map(|(counts, _)| counts.clone())
    }

    pub fn insert(&self, key: CacheKey, counts: Arc<Counts>) {
        let size = estimated_bytes(&counts);
        if size > CACHE_ENTRY_BYTES {
            return;
        }
        let mut guard = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let CacheEntries { counts: map, order, bytes } = &mut *guard;
        while *bytes + size > CACHE_BYTES {
            let Some(oldest) = order.pop_front() else { break };
            if let Some((_, freed)) = map.remove(&oldest) {
                *bytes -= freed;
            }
        }
        if let Some((_, replaced)) = map.insert(key.clone(), (counts, size)) {
            *bytes -= replaced;
        } else {
            order.push_back(key);
        }
        *bytes += size;
    }
}
