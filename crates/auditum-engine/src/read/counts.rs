//! Counts of events by (time bucket start, group keys), the rows of an answer, and their cache:
//! Summarize's partial results of sealed batches, which never change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Memory the cached counts may take (estimated) by default; one entry may take a quarter.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Hashed with foldhash (seeded per map): SipHash was a tenth of a warm Summarize's time.
pub type Counts = HashMap<(i64, Vec<String>), u64, foldhash::quality::RandomState>;
/// (batch object, request shape).
type CacheKey = (String, String);

/// One group of one bucket of a Summarize answer. The keys are shared: an answer's rows are
/// mostly the cached sorted rows, and copying 65,000 rows' strings (then freeing them on another
/// thread) was most of a warm answer's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub bucket_start: i64,
    pub keys: Arc<[String]>,
    pub count: u64,
}

/// What a cached value takes in memory, roughly.
pub trait Weigh {
    fn estimated_bytes(&self) -> usize;
}

impl Weigh for Counts {
    fn estimated_bytes(&self) -> usize {
        self.keys().map(|(_, keys)| 64 + keys.iter().map(|key| key.len() + 24).sum::<usize>()).sum()
    }
}

/// Rows of an answer weigh about what their keys do.
impl Weigh for Vec<SummaryRow> {
    fn estimated_bytes(&self) -> usize {
        self.iter().map(|row| 48 + row.keys.iter().map(|key| key.len() + 24).sum::<usize>()).sum()
    }
}

/// Results of sealed batches by request shape, which never change: each batch's counts, all of
/// a ledger prefix's together (the ledger only grows, so its length names the set of batches
/// exactly), and those ordered as an answer lists them.
pub struct SummaryCache<V = Counts> {
    entries: Mutex<CacheEntries<V>>,
    budget: usize,
}

/// The cached values with their estimated size, their keys oldest first (evicted first), and
/// the estimated total.
struct CacheEntries<V> {
    values: HashMap<CacheKey, (Arc<V>, usize)>,
    order: std::collections::VecDeque<CacheKey>,
    bytes: usize,
}

impl<V: Weigh> Default for SummaryCache<V> {
    fn default() -> Self {
        SummaryCache::with_budget(CACHE_BYTES)
    }
}

impl<V> std::fmt::Debug for SummaryCache<V> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SummaryCache").field("budget", &self.budget).finish_non_exhaustive()
    }
}

impl<V: Weigh> SummaryCache<V> {
    /// A cache of at most `budget` bytes (estimated), a quarter of it at most per entry.
    pub fn with_budget(budget: usize) -> Self {
        SummaryCache { entries: Mutex::new(CacheEntries { values: HashMap::new(), order: Default::default(), bytes: 0 }), budget }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<V>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).values.get(key).map(|(value, _)| value.clone())
    }

    pub fn insert(&self, key: CacheKey, value: Arc<V>) {
        let size = value.estimated_bytes();
        if size > self.budget / 4 {
            return;
        }
        let mut guard = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let CacheEntries { values: map, order, bytes } = &mut *guard;
        while *bytes + size > self.budget {
            let Some(oldest) = order.pop_front() else { break };
            if let Some((_, freed)) = map.remove(&oldest) {
                *bytes -= freed;
            }
        }
        if let Some((_, replaced)) = map.insert(key.clone(), (value, size)) {
            *bytes -= replaced;
        } else {
            order.push_back(key);
        }
        *bytes += size;
    }
}
