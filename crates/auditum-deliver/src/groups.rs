//! One alert rule's tracked groups, bounded by a cap. Past the cap, the group whose newest event
//! was counted longest ago is forgotten, found in amortized constant time: a queue gets an entry
//! each time a group's newest time rises, and the first entry that still matches its group's
//! newest time names that group (a group's earlier entries are skipped when they come up). This
//! replaces a pass over the whole map at the cap (selecting its stalest tenth), so the delivery
//! thread never stalls on 100,000 groups.
//! (A group forgotten and tracked again with the very same newest time may be forgotten again
//! at its old entry, a little early.)

use siphasher::sip128::{Hasher128, SipHasher13};
use smallvec::SmallVec;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A group's map key: 128 bits of a keyed SipHash-1-3 of (tenant, group) rather than the strings
/// themselves, so a rule tracking 100,000s of groups holds no strings (they were two allocations
/// and most of the memory). Keys come from clients, so the hash is keyed per process: two groups
/// share a key with odds of 2^-128, not by anyone's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey([u64; 2]);

/// Builds [`GroupKey`]s with this process's secret key.
#[derive(Debug, Clone)]
pub(crate) struct GroupKeys {
    keys: (u64, u64),
}

impl GroupKeys {
    pub(crate) fn new() -> GroupKeys {
        GroupKeys { keys: (rand::random(), rand::random()) }
    }

    pub(crate) fn key(&self, tenant_id: &str, group: &str) -> GroupKey {
        let mut hasher = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        // `str`'s `Hash` ends each string with 0xff (never in UTF-8): the pair is unambiguous.
        (tenant_id, group).hash(&mut hasher);
        let digest = hasher.finish128();
        GroupKey([digest.h1, digest.h2])
    }
}

/// One group's recent events: (occurred_at, seq), oldest first, at most `threshold` of them.
/// One is held inline: most groups (one actor, one address) see a single event in a window, and
/// a rule tracking 100,000 of them then allocates nothing per group.
#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) times: SmallVec<[(i64, u64); 1]>,
    /// When it last fired (`NEVER` if not yet).
    pub(crate) last_fired: i64,
}

pub(crate) const NEVER: i64 = i64::MIN;

impl Default for GroupState {
    fn default() -> GroupState {
        GroupState { times: SmallVec::new(), last_fired: NEVER }
    }
}

impl GroupState {
    pub(crate) fn newest(&self) -> Option<i64> {
        self.times.last().map(|time| time.0)
    }
}

/// What making room for a new group forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forgot {
    Nothing,
    /// A group whose newest event had left the window and cooldown: nothing of it mattered.
    Expired,
    /// A group still within the window or cooldown: counted by `auditum_alert_groups_evicted`.
    Live,
}

#[derive(Debug)]
pub(crate) struct Groups {
    states: HashMap<GroupKey, GroupState, foldhash::quality::RandomState>,
    /// (group, newest time) each time a group's newest time rose, in that order. A group's last
    /// entry matches its newest time (which only rises while it is tracked); earlier ones are
    /// stale.
    queue: VecDeque<(GroupKey, i64)>,
    cap: usize,
}

impl Groups {
    pub(crate) fn new(cap: usize) -> Groups {
        Groups { states: HashMap::default(), queue: VecDeque::new(), cap: cap.max(1) }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// The state of `key`'s group, about to count an event at `at`; a new group is tracked from
    /// now on, and at the cap one group is forgotten first (`horizon`: groups whose newest event
    /// is not after it have expired).
    pub(crate) fn entry(&mut self, key: GroupKey, at: i64, horizon: i64) -> (&mut GroupState, Forgot) {
        let mut forgot = Forgot::Nothing;
        if self.states.len() >= self.cap && !self.states.contains_key(&key) {
            forgot = self.forget_one(horizon);
        }
        if self.queue.len() >= 2 * self.states.len() + 1024 {
            self.drop_stale_entries();
        }
        let state = self.states.entry(key).or_default();
        // Counting `at` makes it the newest; the newest is never drained, since windows are at
        // least 1 s and thresholds at least 1 (`config::validate`).
        if state.newest().is_none_or(|newest| at > newest) {
            self.queue.push_back((key, at));
        }
        (state, forgot)
    }

    /// Forgets the group whose newest event is the least recent: the first entry that still
    /// matches its group's newest time.
    fn forget_one(&mut self, horizon: i64) -> Forgot {
        while let Some((key, queued_newest)) = self.queue.pop_front() {
            let current = self.states.get(&key).and_then(GroupState::newest) == Some(queued_newest);
            if !current {
                continue;
            }
            self.states.remove(&key);
            return if queued_newest <= horizon { Forgot::Expired } else { Forgot::Live };
        }
        Forgot::Nothing
    }

    /// Keeps the queue within twice the groups: one pass, paid for by the raises that queued
    /// the stale entries.
    fn drop_stale_entries(&mut self) {
        let states = &self.states;
        self.queue.retain(|(key, queued_newest)| states.get(key).and_then(GroupState::newest) == Some(*queued_newest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(groups: &mut Groups, keys: &GroupKeys, name: &str, at: i64) -> Forgot {
        let (state, forgot) = groups.entry(keys.key("acme", name), at, 0);
        state.times.push((at, 0));
        forgot
    }

    #[test]
    fn the_least_recently_counted_group_is_forgotten_at_the_cap() {
        let keys = GroupKeys::new();
        let mut groups = Groups::new(3);
        for (at, name) in [(1, "a"), (2, "b"), (3, "c")] {
            assert_eq!(count(&mut groups, &keys, name, at), Forgot::Nothing);
        }
        // "a" counted again: "b" is now the least recently counted.
        assert_eq!(count(&mut groups, &keys, "a", 4), Forgot::Nothing);
        assert_eq!(count(&mut groups, &keys, "d", 5), Forgot::Live);
        assert_eq!(groups.len(), 3);
        assert!(groups.states.contains_key(&keys.key("acme", "a")));
        assert!(!groups.states.contains_key(&keys.key("acme", "b")));
        // Then "c", then "a" (its second chance used), each a live group.
        assert_eq!(count(&mut groups, &keys, "e", 6), Forgot::Live);
        assert!(!groups.states.contains_key(&keys.key("acme", "c")));
        assert_eq!(count(&mut groups, &keys, "f", 7), Forgot::Live);
        assert!(!groups.states.contains_key(&keys.key("acme", "a")));
        assert_eq!(groups.queue.len(), groups.len());
    }

    #[test]
    fn an_expired_group_is_forgotten_without_counting_as_an_eviction() {
        let keys = GroupKeys::new();
        let mut groups = Groups::new(1);
        count(&mut groups, &keys, "a", -10);
        let (_, forgot) = groups.entry(keys.key("acme", "b"), 5, 0);
        assert_eq!(forgot, Forgot::Expired);
    }

    /// A group whose newest event left the window goes before a live one counted earlier in
    /// arrival order but later in time.
    #[test]
    fn groups_go_in_the_order_their_newest_events_came() {
        let keys = GroupKeys::new();
        let mut groups = Groups::new(3);
        let at = |groups: &mut Groups, name: &str, at: i64| {
            let (state, forgot) = groups.entry(keys.key("acme", name), at, at - 15);
            state.times.push((at, 0));
            state.times.sort();
            forgot
        };
        for (name, time) in [("x", 1), ("y", 5), ("z", 6), ("y", 90), ("x", 100)] {
            assert_eq!(at(&mut groups, name, time), Forgot::Nothing);
        }
        // An event older than "x"'s newest does not make "x" more recent.
        assert_eq!(at(&mut groups, "x", 3), Forgot::Nothing);
        assert_eq!(at(&mut groups, "a", 101), Forgot::Expired);
        assert!(!groups.states.contains_key(&keys.key("acme", "z")));
        assert_eq!(at(&mut groups, "b", 106), Forgot::Expired);
        assert!(!groups.states.contains_key(&keys.key("acme", "y")));
        assert_eq!(at(&mut groups, "c", 107), Forgot::Live);
        assert!(!groups.states.contains_key(&keys.key("acme", "x")));
    }

    /// The queue holds an entry per rise of a group's newest time; stale ones are dropped before
    /// it holds more than twice the groups (plus a constant).
    #[test]
    fn the_queue_stays_bounded_by_the_groups() {
        let keys = GroupKeys::new();
        let mut groups = Groups::new(10);
        for time in 0..100_000 {
            count(&mut groups, &keys, &format!("g{}", time % 5), time);
            assert!(groups.queue.len() <= 2 * groups.len() + 1024 + 1);
        }
        assert_eq!(groups.len(), 5);
    }

    #[test]
    fn keys_tell_tenant_and_group_apart() {
        let keys = GroupKeys::new();
        assert_ne!(keys.key("ab", "c"), keys.key("a", "bc"));
        assert_ne!(keys.key("acme", "u1"), keys.key("globex", "u1"));
        assert_eq!(keys.key("acme", "u1"), keys.key("acme", "u1"));
        assert_ne!(GroupKeys::new().key("acme", "u1"), keys.key("acme", "u1"));
    }
}
