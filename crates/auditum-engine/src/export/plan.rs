//! An export split into parts that can be read and encoded in parallel and then sent one after
//! another: part i holds the rows with `occurred_at` in [bound i, bound i+1), so the parts'
//! outputs, concatenated, are in (occurred_at, seq) order.
//!
//! The bounds are where batches start (their `min_occurred_at`): a part then reads mostly one
//! batch, plus the tails of earlier batches that reach into its range (late events) and the
//! unsealed events in it. The narrowed time range lets those tails be read through the page
//! index rather than whole.

use crate::read::matches;
use crate::scan::Predicate;
use auditum_format::event::EventRecord;
use auditum_format::ledger::LedgerEntry;
use std::sync::Arc;

/// One part: a time range and what may hold rows in it.
#[derive(Debug, Clone)]
pub struct Part {
    /// occurred_at in [start, end), within the export's own range.
    pub start: i64,
    pub end: i64,
    /// Batches that may hold rows in the range, in (min_occurred_at, index) order.
    pub batches: Vec<Arc<LedgerEntry>>,
    /// Unsealed events in the range that pass the predicate, in (occurred_at, seq) order.
    pub unsealed: Vec<Arc<EventRecord>>,
}

impl Part {
    /// The export's predicate narrowed to this part's range.
    pub fn predicate(&self, whole: &Predicate) -> Predicate {
        Predicate {
            start: (self.start != i64::MIN).then_some(self.start),
            end: (self.end != i64::MAX).then_some(self.end),
            ..whole.clone()
        }
    }
}

/// The parts of an ascending export of `tenant_id` (no cursor): every row the plain merge
/// would return falls in exactly one part, and parts come in scan order.
pub fn plan(predicate: &Predicate, tenant_id: &str, entries: &[Arc<LedgerEntry>], unsealed: &[Arc<EventRecord>]) -> Vec<Part> {
    let (low, high) = predicate.time_bounds();
    if low >= high {
        return Vec::new();
    }
    let mut batches = predicate.candidates(tenant_id, entries);
    batches.sort_by_key(|entry| (entry.min_occurred_at, entry.index));
    let mut bounds = vec![low];
    bounds.extend(batches.iter().map(|entry| entry.min_occurred_at).filter(|&start| start > low && start < high));
    bounds.push(high);
    bounds.dedup();

    let mut open_events: Vec<Arc<EventRecord>> = unsealed.iter().filter(|record| matches(predicate, record)).cloned().collect();
    open_events.sort_by_key(|record| (record.occurred_at, record.seq.0));
    let mut open_events = open_events.into_iter().peekable();

    let distinct_batches = batches.len();
    let mut parts = Vec::with_capacity(bounds.len());
    // Batches that started before the current part and may still reach into it.
    let mut active: Vec<Arc<LedgerEntry>> = Vec::new();
    let mut next_batch = batches.into_iter().peekable();
    for range in bounds.windows(2) {
        let (start, end) = (range[0], range[1]);
        active.retain(|entry| entry.max_occurred_at >= start);
        while let Some(entry) = next_batch.next_if(|entry| entry.min_occurred_at < end) {
            if entry.max_occurred_at >= start {
                active.push(entry);
            }
        }
        let mut in_range = Vec::new();
        while let Some(record) = open_events.next_if(|record| record.occurred_at < end) {
            in_range.push(record);
        }
        if active.is_empty() && in_range.is_empty() {
            continue;
        }
        parts.push(Part { start, end, batches: active.clone(), unsealed: in_range });
    }
    // Batches whose times overlap much (clock skew, backfills) would be opened by many parts
    // each: then one part merges them all, each batch opened once, as a plain scan would.
    let listings: usize = parts.iter().map(|part| part.batches.len()).sum();
    if parts.len() > 1 && listings > MAX_OPENS_PER_BATCH * distinct_batches {
        let (mut batches, mut listed) = (Vec::with_capacity(distinct_batches), std::collections::HashSet::new());
        let mut unsealed = Vec::new();
        for part in parts {
            batches.extend(part.batches.into_iter().filter(|entry| listed.insert(entry.index)));
            unsealed.extend(part.unsealed);
        }
        return vec![Part { start: low, end: high, batches, unsealed }];
    }
    parts
}

/// How many parts may open the same batch, on average, before the plan falls back to one part.
/// Late events make neighbouring batches overlap a little: about two opens per batch.
const MAX_OPENS_PER_BATCH: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::TextTest;
    use auditum_format::event::Seq;

    fn entry(index: u64, min: i64, max: i64) -> Arc<LedgerEntry> {
        Arc::new(LedgerEntry {
            log: "default".into(),
            index,
            prev: [0; 32],
            object: format!("batch-{index}"),
            version: None,
            sha256: [0; 32],
            size: 0,
            first_seq: Seq(index * 100),
            count: 1,
            root: [0; 32],
            min_occurred_at: min,
            max_occurred_at: max,
            min_received_at: min,
            max_received_at: max,
            sealed_at: max,
            retention: auditum_format::ledger::Retention::NotRecorded,
            tenants: None,
        })
    }

    fn event(seq: u64, occurred_at: i64) -> Arc<EventRecord> {
        Arc::new(EventRecord { seq: Seq(seq), tenant_id: "acme".into(), occurred_at, ..Default::default() })
    }

    fn predicate(start: Option<i64>, end: Option<i64>) -> Predicate {
        Predicate { texts: vec![("tenant_id", TextTest::Equals("acme".into()))], start, end, cursor: None, descending: false }
    }

    fn summary(parts: &[Part]) -> Vec<(i64, i64, Vec<u64>, Vec<u64>)> {
        parts
            .iter()
            .map(|part| {
                (
                    part.start,
                    part.end,
                    part.batches.iter().map(|entry| entry.index).collect(),
                    part.unsealed.iter().map(|record| record.seq.0).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn parts_start_where_batches_start_and_carry_the_tails_of_earlier_ones() {
        // Batch 1 holds a late event (its max reaches into batch 2's range); unsealed events fall
        // before, inside and after the batches; a narrower range leaves batch 3 out.
        let entries = [entry(0, 100, 199), entry(1, 200, 350), entry(2, 300, 399), entry(3, 900, 999)];
        let unsealed = [event(50, 10), event(51, 310), event(52, 700), event(53, 5000)];
        let parts = plan(&predicate(None, Some(1000)), "acme", &entries, &unsealed);
        assert_eq!(
            summary(&parts),
            vec![
                (i64::MIN, 100, vec![], vec![50]),
                (100, 200, vec![0], vec![]),
                (200, 300, vec![1], vec![]),
                (300, 900, vec![1, 2], vec![51, 52]),
                (900, 1000, vec![3], vec![]),
            ]
        );
        assert_eq!(parts[0].predicate(&predicate(None, Some(1000))).start, None);
        assert_eq!(parts[4].predicate(&predicate(None, Some(1000))).end, Some(1000));
        let narrowed = plan(&predicate(Some(250), Some(320)), "acme", &entries, &unsealed);
        assert_eq!(summary(&narrowed), vec![(250, 300, vec![1], vec![]), (300, 320, vec![1, 2], vec![51])]);
    }

    #[test]
    fn every_batch_reaches_the_parts_its_range_overlaps() {
        // Batches with equal starts and one spanning everything.
        let entries = [entry(0, 0, 1000), entry(1, 10, 20), entry(2, 10, 30), entry(3, 500, 600)];
        let parts = plan(&predicate(None, None), "acme", &entries, &[]);
        assert_eq!(summary(&parts), vec![(0, 10, vec![0], vec![]), (10, 500, vec![0, 1, 2], vec![]), (500, i64::MAX, vec![0, 3], vec![])]);
        for entry in &entries {
            for part in &parts {
                let overlaps = entry.min_occurred_at < part.end && entry.max_occurred_at >= part.start;
                assert_eq!(overlaps, part.batches.iter().any(|listed| listed.index == entry.index));
            }
        }
        assert!(plan(&predicate(Some(5), Some(5)), "acme", &entries, &[]).is_empty());
    }

    #[test]
    fn batches_that_all_overlap_are_merged_in_one_part() {
        // Twenty batches each spanning nearly everything: twenty parts would open ~200 batches.
        let entries: Vec<_> = (0..20).map(|index| entry(index as u64, index * 10, 1000 + index)).collect();
        let unsealed = [event(90, 15), event(91, 2000)];
        let parts = plan(&predicate(None, None), "acme", &entries, &unsealed);
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].start, parts[0].end), (i64::MIN, i64::MAX));
        assert_eq!(parts[0].batches.iter().map(|entry| entry.index).collect::<Vec<_>>(), (0..20).collect::<Vec<u64>>());
        assert_eq!(parts[0].unsealed.iter().map(|record| record.seq.0).collect::<Vec<_>>(), vec![90, 91]);
    }
}
