//! Bounded caches: a map with first-in-first-out eviction.

use std::collections::{HashMap, VecDeque};

pub(crate) struct Fifo<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    capacity: usize,
}

impl<V> Fifo<V> {
    /// At least one entry.
    pub fn new(capacity: usize) -> Fifo<V> {
        let capacity = capacity.max(1);
        Fifo { map: HashMap::with_capacity(capacity.min(4096)), order: VecDeque::new(), capacity }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    pub fn insert(&mut self, key: String, value: V) {
        if let Some(slot) = self.map.get_mut(&key) {
            *slot = value;
            return;
        }
        while self.map.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            self.map.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
        // Removed (and re-inserted) keys stay in `order` until popped: drop them when they pile up.
        if self.order.len() > 2 * self.capacity + 16 {
            let mut seen = std::collections::HashSet::with_capacity(self.map.len());
            let map = &self.map;
            self.order.retain(|key| map.contains_key(key) && seen.insert(key.clone()));
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.map.retain(|key, _| keep(key));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// An unambiguous cache key of two strings (the first's length comes first), built in a
/// reused buffer so a lookup allocates nothing.
pub(crate) fn pair_key<'b>(buf: &'b mut String, first: &str, second: &str) -> &'b str {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{}:", first.len());
    buf.push_str(first);
    buf.push_str(second);
    buf
}

/// The prefix every `pair_key(first, _)` starts with.
pub(crate) fn pair_prefix(first: &str) -> String {
    format!("{}:{first}", first.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_and_stays_bounded() {
        let mut cache = Fifo::new(2);
        cache.insert("a".into(), 1);
        cache.insert("b".into(), 2);
        cache.insert("a".into(), 3);
        cache.insert("c".into(), 4);
        assert_eq!((cache.get("a"), cache.get("b"), cache.get("c")), (None, Some(&2), Some(&4)));
        for round in 0..100 {
            cache.remove("c");
            cache.insert("c".into(), round);
        }
        assert!(cache.len() <= 2 && cache.order.len() <= 2 * 2 + 16);
        let mut buf = String::new();
        assert_eq!(pair_key(&mut buf, "ab", "c"), "2:abc");
        assert_ne!(pair_key(&mut String::new(), "a", "bc"), "2:abc");
        assert!(pair_key(&mut buf, "acme", "alice").starts_with(&pair_prefix("acme")));
    }
}
