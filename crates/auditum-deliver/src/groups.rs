//! One alert rule's tracked groups, bounded by a cap. Past the cap the least recently counted
//! group is forgotten, found in amortized constant time by a "second chance" queue (each group
//! queued once, with its newest time; one counted since is queued again instead of forgotten)
//! rather than by sorting the map: a rule at its cap forgets one group per new group, and the
//! write path's followers never stall on a sort of 100,000 groups.

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
    /// Every tracked group once, with its newest time when it was queued; the front is the one
    /// queued longest ago.
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
        let state = match self.states.entry(key) {
            std::collections::hash_map::Entry::Occupied(occupied) => occupied.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                // Queued with the time it is about to count: its newest once counted.
                self.queue.push_back((key, at));
                vacant.insert(GroupState::default())
            }
        };
        (state, forgot)
    }

    /// Forgets the group queued longest ago that was not counted since (an expired one
    /// regardless); one counted since goes to the back with its newest time. Every group passed
    /// over was counted since it was queued, so the passes are paid for by those counts.
    fn forget_one(&mut self, horizon: i64) -> Forgot {
        while let Some((key, queued_newest)) = self.queue.pop_front() {
            let Some(newest) = self.states.get(&key).map(|state| state.newest().unwrap_or(i64::MIN)) else { continue };
            let expired = newest <= horizon;
            if newest > queued_newest && !expired {
                self.queue.push_back((key, newest));
                continue;
            }
            self.states.remove(&key);
            return if expired { Forgot::Expired } else { Forgot::Live };
        }
        Forgot::Nothing
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

    #[test]
    fn keys_tell_tenant_and_group_apart() {
        let keys = GroupKeys::new();
        assert_ne!(keys.key("ab", "c"), keys.key("a", "bc"));
        assert_ne!(keys.key("acme", "u1"), keys.key("globex", "u1"));
        assert_eq!(keys.key("acme", "u1"), keys.key("acme", "u1"));
        assert_ne!(GroupKeys::new().key("acme", "u1"), keys.key("acme", "u1"));
    }
}
