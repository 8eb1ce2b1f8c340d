//! Summarize (DESIGN §10): counts of the events a filter matches, by up to two dimensions and a
//! UTC time bucket of `occurred_at`, over sealed batches and unsealed events alike. A sealed
//! batch never changes, so its partial counts for one (filter, dimensions, bucket) are cached:
//! a dashboard asked again pays only for the batches sealed since and the open events.

use crate::access::{Call, object};
use crate::encryption;
use crate::error::{Error, Result};
use crate::query::Reader;
pub use crate::read::counts::SummaryRow;
use crate::read::counts::{Counts, SummaryCache};
use crate::read::{Filter, FilterSpec, merge};
use crate::scan::{BatchScan, MAX_DECODE_ROWS, Predicate, RangeReader, ScanStats, column_index};
use arrow::array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use auditum_format::event::EventRecord;
use auditum_format::ledger::LedgerEntry;
use chrono::{Datelike, TimeZone};

use std::sync::Arc;

/// Groups kept per bucket when the request names no limit, and the most it may name.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 10_000;
/// Dimensions a summary groups by at most.
pub const MAX_DIMENSIONS: usize = 2;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
/// 1969-12-29, the Monday of the ISO week holding the epoch (a Thursday).
const FIRST_MONDAY: i64 = -3 * DAY;

/// What a summary groups by (DESIGN §10's `SummaryDimension`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Action,
    ActorId,
    ActorType,
    TargetType,
    TargetId,
    Outcome,
    Service,
    SourceIp,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Action => "action",
            Dimension::ActorId => "actor_id",
            Dimension::ActorType => "actor_type",
            Dimension::TargetType => "target_type",
            Dimension::TargetId => "target_id",
            Dimension::Outcome => "outcome",
            Dimension::Service => "service",
            Dimension::SourceIp => "source_ip",
        }
    }

    /// The event's key for this dimension; a null value is "".
    fn key(self, record: &EventRecord) -> &str {
        match self {
            Dimension::Service => record.service.as_deref().unwrap_or_default(),
            other => merge::text_column(record, other.name()).unwrap_or_default(),
        }
    }
}

/// The time bucket of `occurred_at` (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// One bucket, starting at the filter's start time (or the epoch).
    Whole,
    Hour,
    Day,
    /// ISO weeks, from Monday 00:00.
    Week,
    /// Calendar months.
    Month,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Whole => "none",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }

    /// The start (µs since the epoch) of the bucket holding `micros`.
    pub fn start(self, micros: i64, whole_start: i64) -> i64 {
        match self {
            Bucket::Whole => whole_start,
            Bucket::Hour => micros.div_euclid(HOUR) * HOUR,
            Bucket::Day => micros.div_euclid(DAY) * DAY,
            Bucket::Week => (micros - FIRST_MONDAY).div_euclid(7 * DAY) * 7 * DAY + FIRST_MONDAY,
            Bucket::Month => {
                let Some(time) = chrono::DateTime::from_timestamp_micros(micros) else { return micros.div_euclid(DAY) * DAY };
                chrono::Utc
                    .with_ymd_and_hms(time.year(), time.month(), 1, 0, 0, 0)
                    .single()
                    .map(|first| first.timestamp_micros())
                    .unwrap_or_else(|| micros.div_euclid(DAY) * DAY)
            }
        }
    }
}

/// One Summarize call.
#[derive(Debug, Clone)]
pub struct SummarizeRequest {
    pub filter: FilterSpec,
    /// The filter as the client sent it, for the meta-audit record.
    pub filter_details: serde_json::Value,
    pub group_by: Vec<Dimension>,
    pub bucket: Bucket,
    /// 0: [`DEFAULT_LIMIT`].
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub log: String,
    pub rows: Vec<SummaryRow>,
    pub total_events: u64,
    pub truncated: bool,
    /// The checkpoint current when the summary began.
    pub checkpoint: String,
    pub stats: ScanStats,
}

fn count(counts: &mut Counts, record: &EventRecord, group_by: &[Dimension], bucket: Bucket, whole_start: i64) {
    let keys = group_by.iter().map(|dimension| dimension.key(record).to_string()).collect();
    *counts.entry((bucket.start(record.occurred_at, whole_start), keys)).or_default() += 1;
}

/// DESIGN §10's order of rows: by bucket, then count descending, then keys. Keys are unique
/// within a bucket, so the order is total and an unstable sort gives it.
fn answer_order(a: &SummaryRow, b: &SummaryRow) -> std::cmp::Ordering {
    group_order((a.bucket_start, &a.keys, a.count), (b.bucket_start, &b.keys, b.count))
}

/// [`answer_order`] of (bucket start, keys, count).
fn group_order(a: (i64, &[String], u64), b: (i64, &[String], u64)) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then_with(|| a.1.cmp(b.1))
}

/// Every group of `counts`, in the answer's order. The keys are copied in that order, so a
/// warm answer copying them from the cache reads memory in sequence: copied in the map's order
/// they were scattered, and cache misses made that copy the warm answer's largest cost.
pub fn sorted_rows(counts: &Counts) -> Vec<SummaryRow> {
    let mut groups: Vec<(i64, &[String], u64)> =
        counts.iter().map(|((bucket_start, keys), count)| (*bucket_start, keys.as_slice(), *count)).collect();
    groups.sort_unstable_by(|a, b| group_order(*a, *b));
    groups.into_iter().map(|(bucket_start, keys, count)| SummaryRow { bucket_start, keys: keys.into(), count }).collect()
}

/// The answer from the sealed groups, already in order (cached), and the open events' counts:
/// only the buckets the open events touch are merged and sorted again. At most `limit` groups
/// per bucket, and whether any bucket had more.
pub fn answer_rows(sealed: &[SummaryRow], open: &Counts, limit: usize) -> (Vec<SummaryRow>, bool) {
    let mut open_by_bucket: std::collections::BTreeMap<i64, Vec<(&Vec<String>, u64)>> = Default::default();
    for ((bucket_start, keys), count) in open {
        open_by_bucket.entry(*bucket_start).or_default().push((keys, *count));
    }
    let mut open_buckets = open_by_bucket.into_iter().peekable();
    let (mut rows, mut truncated, mut next) = (Vec::with_capacity(sealed.len() + open.len()), false, 0);
    loop {
        let bucket = match (sealed.get(next).map(|row| row.bucket_start), open_buckets.peek().map(|(bucket, _)| *bucket)) {
            (Some(sealed_bucket), Some(open_bucket)) => sealed_bucket.min(open_bucket),
            (Some(bucket), None) | (None, Some(bucket)) => bucket,
            (None, None) => break,
        };
        let run_end = next + sealed[next..].partition_point(|row| row.bucket_start == bucket);
        let run = &sealed[next..run_end];
        next = run_end;
        let Some((_, additions)) = open_buckets.next_if(|(open_bucket, _)| *open_bucket == bucket) else {
            truncated |= run.len() > limit;
            rows.extend_from_slice(&run[..run.len().min(limit)]);
            continue;
        };
        let mut merged = run.to_vec();
        let positions: std::collections::HashMap<&[String], usize> =
            run.iter().enumerate().map(|(position, row)| (&row.keys[..], position)).collect();
        for (keys, count) in additions {
            match positions.get(keys.as_slice()) {
                Some(&position) => merged[position].count += count,
                None => merged.push(SummaryRow { bucket_start: bucket, keys: keys.as_slice().into(), count }),
            }
        }
        merged.sort_unstable_by(answer_order);
        truncated |= merged.len() > limit;
        merged.truncate(limit);
        rows.extend(merged);
    }
    (rows, truncated)
}

impl Reader {
    pub async fn summarize(&self, call: &Call, request: SummarizeRequest) -> Result<Summary> {
        let filter = Filter::new(&request.filter)?;
        if request.group_by.len() > MAX_DIMENSIONS {
            return Err(Error::bad_request(
                "group_by",
                format!("{} dimensions exceeds the limit of {MAX_DIMENSIONS}", request.group_by.len()),
            ));
        }
        if request.limit > MAX_LIMIT {
            return Err(Error::bad_request("limit", format!("{} exceeds the limit of {MAX_LIMIT}", request.limit)));
        }
        let limit = if request.limit == 0 { DEFAULT_LIMIT } else { request.limit } as usize;
        let log = self.log_for_tenant(&filter.tenant_id)?.clone();
        encryption::refuse_encrypted_filters(call, &log, &filter.tenant_id, &request.filter)?;
        if let Some(encryption) = encryption::encryption_shown_to(call, &log, &filter.tenant_id)
            && request.group_by.contains(&Dimension::SourceIp)
            && encryption.columns.contains("source_ip")
        {
            return Err(Error::bad_request(
                "group_by",
                format!("source_ip is encrypted per data subject in log {}: its stored values cannot be grouped", log.name()),
            ));
        }
        log.require_store()?;
        let snapshot = log.read_snapshot(&filter.tenant_id, filter.occurred_window());
        let checkpoint = snapshot.checkpoint.clone().unwrap_or_default();
        let details = serde_json::json!({
            "group_by": request.group_by.iter().map(|dimension| dimension.name()).collect::<Vec<_>>(),
            "bucket": request.bucket.name(),
            "limit": limit,
        });
        let recording = self.admit(call, "auditum.summarize", &filter.tenant_id, request.filter_details, object(details));
        if call.caller.require_tenant("filter.tenant_id", &filter.tenant_id).is_err() {
            // Refused: `admit` records the refusal and returns its error; nothing is counted.
            recording.await?;
            return Err(Error::Task { what: "summarize", reason: "a refused read was recorded as permitted".into() });
        }

        let predicate = Arc::new(filter.predicate(None, false));
        let whole_start = predicate.start.unwrap_or(0);
        // The request's shape: what a cached batch's partial counts depend on besides the batch.
        let shape = format!("{}|{:?}|{:?}|{:?}", filter.tenant_id, predicate, request.group_by, request.bucket);
        let context = self.scan_context(&log, Arc::new(crate::scan::IoCounters::default()), MAX_DECODE_ROWS);
        let cache = self.summary_cache();
        let tenant_id = filter.tenant_id.clone();
        let (group_by, bucket) = (request.group_by.clone(), request.bucket);
        // Kept to name archived batches should the count meet one (worked out only then).
        let naming = (predicate.clone(), snapshot.entries.len());
        let sorted_cache = self.sorted_summary_cache();
        let counting = tokio::task::spawn_blocking(move || -> Result<(Vec<SummaryRow>, bool, u64, ScanStats), crate::scan::Error> {
            let mut stats = ScanStats {
                batches_considered: snapshot.entries.len() as u64,
                unsealed_considered: snapshot.unsealed.len() as u64,
                ..Default::default()
            };
            let candidates = predicate.candidates(&tenant_id, &snapshot.entries);
            stats.batches_pruned = stats.batches_considered - candidates.len() as u64;
            let sealed_key = (format!("ledger:{}", snapshot.entries.len()), shape.clone());
            let sealed = match cache.get(&sealed_key) {
                Some(sealed) => sealed,
                None => {
                    let sealed = Arc::new(sealed_counts(
                        &context,
                        &candidates,
                        &cache,
                        &shape,
                        &predicate,
                        &group_by,
                        bucket,
                        whole_start,
                        &mut stats,
                    )?);
                    cache.insert(sealed_key.clone(), sealed.clone());
                    sealed
                }
            };
            // The sealed groups in the answer's order, kept too: a repeated dashboard then sorts
            // only the buckets the open events touch.
            let sorted = match sorted_cache.get(&sealed_key) {
                Some(sorted) => sorted,
                None => {
                    let sorted = Arc::new(sorted_rows(&sealed));
                    sorted_cache.insert(sealed_key, sorted.clone());
                    sorted
                }
            };
            let mut unsealed = Counts::default();
            for record in snapshot.unsealed.iter().filter(|record| merge::matches(&predicate, record)) {
                stats.rows_matched += 1;
                count(&mut unsealed, record, &group_by, bucket, whole_start);
            }
            let total_events = sealed.values().sum::<u64>() + unsealed.values().sum::<u64>();
            let (rows, truncated) = answer_rows(&sorted, &unsealed, limit);
            Ok((rows, truncated, total_events, stats))
        });
        // Counted while the meta-audit record becomes durable, and answered only once it is: a
        // read that cannot be recorded is still not served (as for Query).
        let (recorded, counted) = tokio::join!(recording, counting);
        recorded?;
        let counted = counted.map_err(|error| Error::Task { what: "summarize", reason: error.to_string() })?;
        let (rows, truncated, total_events, stats) = match counted {
            Err(crate::scan::Error::Store { source, .. }) if crate::archive::is_archived(&source) => {
                let (predicate, covered) = naming;
                let entries = log.ledger_snapshot().entries;
                let candidates = predicate.candidates(&filter.tenant_id, &entries[..covered.min(entries.len())]);
                return Err(Error::Archived(crate::archive::name_archived(log.name(), log.store(), &candidates).await));
            }
            other => other?,
        };
        Ok(Summary { log: log.name().to_string(), rows, total_events, truncated, checkpoint, stats })
    }
}

/// Threads one Summarize counts batches on, at most (fewer on a machine with fewer cores).
const COUNT_THREADS: usize = 4;
/// The sealed batches' counts together, each batch's from the cache when it is there. Batches
/// not cached are counted on up to [`COUNT_THREADS`] threads: a question not asked before decodes
/// every matching row of its range.
#[allow(clippy::too_many_arguments)]
fn sealed_counts(
    context: &crate::read::ScanContext,
    candidates: &[Arc<LedgerEntry>],
    cache: &SummaryCache,
    shape: &str,
    predicate: &Arc<Predicate>,
    group_by: &[Dimension],
    bucket: Bucket,
    whole_start: i64,
    stats: &mut ScanStats,
) -> Result<Counts, crate::scan::Error> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let wanted = std::thread::available_parallelism().map_or(1, |cores| cores.get()).min(COUNT_THREADS).min(candidates.len()).max(1) - 1;
    let helpers = crate::helper_threads::HelperThreads::reserve(wanted);
    let threads = 1 + helpers.count();
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let count_some = || -> Result<(Counts, ScanStats), crate::scan::Error> {
        let (mut counts, mut stats) = (Counts::default(), ScanStats::default());
        while !failed.load(Ordering::Relaxed) {
            let Some(entry) = candidates.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
            let key = (entry.object.clone(), shape.to_string());
            let partial = match cache.get(&key) {
                Some(partial) => partial,
                None => {
                    let counted = count_batch(context, entry, predicate, group_by, bucket, whole_start, &mut stats);
                    let partial = Arc::new(counted.inspect_err(|_| failed.store(true, Ordering::Relaxed))?);
                    cache.insert(key, partial.clone());
                    partial
                }
            };
            for (group, number) in partial.iter() {
                *counts.entry(group.clone()).or_default() += number;
            }
        }
        Ok((counts, stats))
    };
    let parts: Vec<Result<(Counts, ScanStats), crate::scan::Error>> = std::thread::scope(|scope| {
        // A helper that cannot be started leaves its share to the others.
        let spawned: Vec<_> = (1..threads)
            .filter_map(|_| std::thread::Builder::new().name("auditum-summarize".into()).spawn_scoped(scope, count_some).ok())
            .collect();
        let mut parts = vec![count_some()];
        // A panic while counting is a bug: it goes on as this thread's panic.
        parts.extend(spawned.into_iter().map(|helper| helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))));
        parts
    });
    drop(helpers);
    // An archived batch is the error to report when there are several: it is named to the
    // caller, who can restore it.
    let archived = |part: &Result<_, crate::scan::Error>| matches!(part, Err(crate::scan::Error::Store { source, .. }) if crate::archive::is_archived(source));
    let mut parts = parts;
    parts.sort_by_key(|part| !archived(part));
    let mut counts = Counts::default();
    for part in parts {
        let (part_counts, part_stats) = part?;
        stats.add(&part_stats);
        add_counts(&mut counts, part_counts);
    }
    Ok(counts)
}

/// Adds `more` into `counts` (taking `more` whole when `counts` is still empty).
fn add_counts(counts: &mut Counts, more: Counts) {
    if counts.is_empty() {
        *counts = more;
        return;
    }
    for (group, number) in more {
        *counts.entry(group).or_default() += number;
    }
}

/// One sealed batch's counts for the predicate.
fn count_batch(
    context: &crate::read::ScanContext,
    entry: &Arc<LedgerEntry>,
    predicate: &Arc<Predicate>,
    group_by: &[Dimension],
    bucket: Bucket,
    whole_start: i64,
    stats: &mut ScanStats,
) -> Result<Counts, crate::scan::Error> {
    let reader = RangeReader::new(context.store.clone(), entry, context.runtime.clone(), context.io.clone());
    // Only what is counted is decoded for the matching rows: the time and the dimensions.
    let columns = std::iter::once("occurred_at").chain(group_by.iter().map(|dimension| dimension.name())).map(column_index).collect();
    let mut scan =
        BatchScan::open(entry.clone(), reader, &context.footers, predicate.clone(), context.decode_rows, stats)?.project(columns);
    let mut counts = Counts::default();
    while let Some(batch) = scan.next_batch(stats)? {
        count_columns(&mut counts, &batch, group_by, bucket, whole_start)
            .map_err(|reason| crate::scan::Error::Archive { object: entry.object.clone(), reason })?;
    }
    Ok(counts)
}

/// Counts the rows of a projected batch (`occurred_at` and the dimensions' columns), as
/// [`count`] counts an event.
fn count_columns(counts: &mut Counts, batch: &RecordBatch, group_by: &[Dimension], bucket: Bucket, whole_start: i64) -> Result<(), String> {
    let column = |name: &str| batch.column_by_name(name).ok_or_else(|| format!("column {name} is missing"));
    let occurred_at = column("occurred_at")?;
    let occurred_at =
        occurred_at.as_any().downcast_ref::<TimestampMicrosecondArray>().ok_or("column occurred_at is not a timestamp in microseconds")?;
    // Required by the format: a batch with a null time is damaged, not an event of the epoch.
    if occurred_at.null_count() > 0 {
        return Err("column occurred_at holds nulls".into());
    }
    let dimensions = group_by
        .iter()
        .map(|dimension| {
            let values = column(dimension.name())?;
            values.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| format!("column {} is not text", dimension.name()))
        })
        .collect::<Result<Vec<StringArray>, String>>()?;
    for row in 0..batch.num_rows() {
        // A null value is "", as in `Dimension::key`.
        let keys =
            dimensions.iter().map(|values| if values.is_null(row) { String::new() } else { values.value(row).to_string() }).collect();
        *counts.entry((bucket.start(occurred_at.value(row), whole_start), keys)).or_default() += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros()
    }

    #[test]
    fn buckets_are_utc_hours_days_iso_weeks_and_calendar_months() {
        let at = micros("2026-01-01T13:45:00Z"); // a Thursday
        assert_eq!(Bucket::Hour.start(at, 0), micros("2026-01-01T13:00:00Z"));
        assert_eq!(Bucket::Day.start(at, 0), micros("2026-01-01T00:00:00Z"));
        // ISO week 1 of 2026 starts on Monday 2025-12-29: across the year boundary.
        assert_eq!(Bucket::Week.start(at, 0), micros("2025-12-29T00:00:00Z"));
        assert_eq!(Bucket::Week.start(micros("2025-12-28T23:59:59Z"), 0), micros("2025-12-22T00:00:00Z"));
        assert_eq!(Bucket::Week.start(micros("1970-01-01T00:00:00Z"), 0), micros("1969-12-29T00:00:00Z"));
        assert_eq!(Bucket::Month.start(micros("2026-02-28T23:00:00Z"), 0), micros("2026-02-01T00:00:00Z"));
        assert_eq!(Bucket::Month.start(micros("2024-02-29T12:00:00Z"), 0), micros("2024-02-01T00:00:00Z"));
        assert_eq!(Bucket::Month.start(micros("2026-03-01T00:00:00Z"), 0), micros("2026-03-01T00:00:00Z"));
        assert_eq!(Bucket::Whole.start(at, 42), 42);
        assert_eq!(Bucket::Day.start(micros("1969-12-31T23:00:00Z"), 0), micros("1969-12-31T00:00:00Z"));
    }

    /// The answer worked out independently: every group sorted by (bucket, count descending,
    /// keys), then at most `limit` per bucket.
    fn rows_of(counts: &Counts, limit: usize) -> (Vec<SummaryRow>, bool) {
        let mut all: Vec<(i64, std::cmp::Reverse<u64>, Vec<String>)> =
            counts.iter().map(|((bucket, keys), count)| (*bucket, std::cmp::Reverse(*count), keys.clone())).collect();
        all.sort();
        let mut per_bucket: std::collections::HashMap<i64, usize> = Default::default();
        let (mut rows, mut truncated) = (Vec::new(), false);
        for (bucket_start, std::cmp::Reverse(count), keys) in all {
            let seen = per_bucket.entry(bucket_start).or_default();
            *seen += 1;
            if *seen > limit {
                truncated = true;
            } else {
                rows.push(SummaryRow { bucket_start, keys: keys.into(), count });
            }
        }
        (rows, truncated)
    }

    #[test]
    fn rows_are_ordered_by_bucket_then_count_then_keys_and_capped_per_bucket() {
        let mut counts = Counts::default();
        counts.insert((0, vec!["b".into()]), 5);
        counts.insert((0, vec!["a".into()]), 5);
        counts.insert((0, vec!["c".into()]), 9);
        counts.insert((10, vec!["a".into()]), 1);
        let (rows, truncated) = answer_rows(&sorted_rows(&counts), &Counts::default(), 10);
        assert_eq!((rows.clone(), truncated), rows_of(&counts, 10));
        let order: Vec<(i64, &str, u64)> = rows.iter().map(|row| (row.bucket_start, row.keys[0].as_str(), row.count)).collect();
        assert_eq!(order, [(0, "c", 9), (0, "a", 5), (0, "b", 5), (10, "a", 1)]);
        assert!(!truncated);
        let (rows, truncated) = answer_rows(&sorted_rows(&counts), &Counts::default(), 2);
        assert_eq!((rows.clone(), truncated), rows_of(&counts, 2));
        assert_eq!(rows.len(), 3, "two of bucket 0, one of bucket 10");
        assert!(truncated);
    }

    #[test]
    fn cached_sealed_rows_with_open_counts_give_the_rows_of_the_summed_counts() {
        // A small deterministic generator: buckets and keys collide often between the two sides.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for round in 0..300 {
            let (mut sealed, mut open) = (Counts::default(), Counts::default());
            for _ in 0..next(40) {
                *sealed.entry((next(6) as i64 * 10, vec![format!("k{}", next(8))])).or_default() += 1 + next(5);
            }
            for _ in 0..next(12) {
                *open.entry((next(8) as i64 * 10 - 10, vec![format!("k{}", next(8))])).or_default() += 1 + next(5);
            }
            let mut summed = sealed.clone();
            add_counts(&mut summed, open.clone());
            for limit in [0, 1, 2, 3, 100] {
                assert_eq!(answer_rows(&sorted_rows(&sealed), &open, limit), rows_of(&summed, limit), "round {round}, limit {limit}");
            }
        }
    }
}
