//! The ordered merge of a read: rows from the batches the catalog keeps (opened lazily) and from
//! the unsealed events, in (occurred_at, seq) order, ascending or descending.

use super::ScanRow;
use crate::scan::{self, BatchScan, FooterCache, IoCounters, Predicate, RangeReader, ScanStats};
use auditum_format::event::EventRecord;
use auditum_format::ledger::LedgerEntry;
use auditum_store::ObjectStore;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// The stored text of a column the filter can test.
pub fn text_column<'a>(record: &'a EventRecord, column: &str) -> Option<&'a str> {
    match column {
        "tenant_id" => Some(&record.tenant_id),
        "action" => Some(&record.action),
        "actor_id" => Some(&record.actor_id),
        "actor_type" => record.actor_type.as_deref(),
        "target_type" => record.target_type.as_deref(),
        "target_id" => record.target_id.as_deref(),
        "outcome" => Some(&record.outcome),
        "request_id" => record.request_id.as_deref(),
        "correlation_id" => record.correlation_id.as_deref(),
        "session_id" => record.session_id.as_deref(),
        "source_ip" => record.source_ip.as_deref(),
        _ => None,
    }
}

/// Whether an event passes a predicate: the in-memory twin of `Predicate::evaluate` on batches.
pub fn matches(predicate: &Predicate, record: &EventRecord) -> bool {
    predicate.matches_key(record.occurred_at, record.seq.0)
        && predicate.texts.iter().all(|(column, test)| text_column(record, column).is_some_and(|value| test.matches(value)))
}

enum Source {
    Batch(Box<BatchScan>),
    Memory(VecDeque<ScanRow>),
    Done,
}

struct HeapItem {
    key: (i64, u64),
    descending: bool,
    source: usize,
    row: ScanRow,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    // BinaryHeap pops the greatest: the next row in scan order must compare greatest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.descending { self.key.cmp(&other.key) } else { other.key.cmp(&self.key) }
    }
}

/// Everything a scan reads through.
#[derive(Clone)]
pub struct ScanContext {
    pub store: Arc<dyn ObjectStore>,
    pub footers: Arc<FooterCache>,
    pub runtime: tokio::runtime::Handle,
    pub io: Arc<IoCounters>,
    /// Rows decoded at a time per batch: about a page for queries, more for exports.
    pub decode_rows: usize,
}

/// Rows matching a predicate in (occurred_at, seq) order, ascending or descending, merged from
/// the batches the catalog keeps and the unsealed events. Batches are opened lazily, only once
/// the merge could need them, so a full page stops the scan early.
pub struct Scan {
    context: ScanContext,
    predicate: Arc<Predicate>,
    pending: VecDeque<Arc<LedgerEntry>>,
    footers_prefetched: bool,
    sources: Vec<Source>,
    heap: BinaryHeap<HeapItem>,
    pub stats: ScanStats,
}

impl Scan {
    pub fn new(
        context: ScanContext,
        tenant_id: &str,
        predicate: Predicate,
        entries: &[Arc<LedgerEntry>],
        unsealed: &[Arc<EventRecord>],
    ) -> Scan {
        let mut stats =
            ScanStats { batches_considered: entries.len() as u64, unsealed_considered: unsealed.len() as u64, ..Default::default() };
        let mut pending = predicate.candidates(tenant_id, entries);
        stats.batches_pruned = stats.batches_considered - pending.len() as u64;
        if predicate.descending {
            pending.sort_by_key(|entry| (std::cmp::Reverse(entry.max_occurred_at), entry.index));
        } else {
            pending.sort_by_key(|entry| (entry.min_occurred_at, entry.index));
        }
        let mut memory: Vec<ScanRow> = unsealed
            .iter()
            .filter(|record| matches(&predicate, record))
            .map(|record| ScanRow { record: record.as_ref().clone(), leaf_hash: record.leaf_hash(), batch_index: None })
            .collect();
        memory.sort_by_key(ScanRow::key);
        if predicate.descending {
            memory.reverse();
        }
        stats.rows_matched += memory.len() as u64;
        let mut scan = Scan {
            context,
            predicate: Arc::new(predicate),
            pending: pending.into(),
            footers_prefetched: false,
            sources: Vec::new(),
            heap: BinaryHeap::new(),
            stats,
        };
        let mut memory: VecDeque<ScanRow> = memory.into();
        if let Some(first) = memory.pop_front() {
            scan.sources.push(Source::Memory(memory));
            scan.push(0, first);
        }
        scan
    }

    fn push(&mut self, source: usize, row: ScanRow) {
        self.heap.push(HeapItem { key: row.key(), descending: self.predicate.descending, source, row });
    }

    fn advance(&mut self, source: usize) -> Result<Option<ScanRow>, scan::Error> {
        let stats = &mut self.stats;
        let next = match self.sources.get_mut(source) {
            Some(Source::Batch(batch)) => {
                let index = batch.entry().index;
                batch.next_row(stats)?.map(|row| ScanRow { record: row.record, leaf_hash: row.stored_leaf_hash, batch_index: Some(index) })
            }
            Some(Source::Memory(rows)) => rows.pop_front(),
            Some(Source::Done) | None => None,
        };
        if next.is_none()
            && let Some(slot) = self.sources.get_mut(source)
        {
            // Frees the batch's buffers as soon as it is exhausted.
            *slot = Source::Done;
        }
        Ok(next)
    }

    /// The next row in order, or None when the scan is complete.
    pub fn next_row(&mut self) -> Result<Option<ScanRow>, scan::Error> {
        if !self.footers_prefetched {
            self.footers_prefetched = true;
            prefetch_footers(&self.context, self.pending.iter());
        }
        while let Some(entry) = self.pending.front() {
            let needed = match self.heap.peek() {
                None => true,
                Some(top) if self.predicate.descending => entry.max_occurred_at >= top.key.0,
                Some(top) => entry.min_occurred_at <= top.key.0,
            };
            if !needed {
                break;
            }
            let Some(entry) = self.pending.pop_front() else { break };
            let reader = RangeReader::new(self.context.store.clone(), &entry, self.context.runtime.clone(), self.context.io.clone());
            let batch =
                BatchScan::open(entry, reader, &self.context.footers, self.predicate.clone(), self.context.decode_rows, &mut self.stats)?;
            let source = self.sources.len();
            self.sources.push(Source::Batch(Box::new(batch)));
            if let Some(row) = self.advance(source)? {
                self.push(source, row);
            }
        }
        let Some(top) = self.heap.pop() else { return Ok(None) };
        if let Some(next) = self.advance(top.source)? {
            self.push(top.source, next);
        }
        Ok(Some(top.row))
    }
}

/// Footers fetched together when a scan on a remote store starts.
const FOOTER_PREFETCH: usize = 8;

/// On a remote store, the footers (with their page index) of the first batches in scan order
/// are fetched at once, concurrently: a read opens them one after another, and each would
/// otherwise wait a round trip of its own. A failure here is left for the batch's own open to
/// meet and report.
pub fn prefetch_footers<'a>(context: &ScanContext, entries: impl Iterator<Item = &'a Arc<LedgerEntry>>) {
    let uncached: Vec<&Arc<LedgerEntry>> = entries
        .take(FOOTER_PREFETCH)
        .filter(|entry| context.store.local_path(&entry.object).is_none() && !context.footers.contains(entry))
        .collect();
    if uncached.len() < 2 {
        return;
    }
    std::thread::scope(|threads| {
        for entry in uncached {
            threads.spawn(move || {
                let reader = RangeReader::new(context.store.clone(), entry, context.runtime.clone(), context.io.clone());
                let _ = context.footers.load(&reader);
            });
        }
    });
}

/// One page of a query.
pub struct Page {
    pub rows: Vec<ScanRow>,
    /// The key of the last row when more rows follow.
    pub next: Option<(i64, u64)>,
    pub stats: ScanStats,
}

/// A page holds at most this many bytes of events (their stored size, close to their wire
/// size), so it fits a client's default 4 MiB message limit whatever the events weigh; the
/// page token carries on from there.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Reads up to `page_size` rows and up to `max_bytes` of them (always at least one row), and
/// one more to learn whether another page follows.
pub fn run_page(mut scan: Scan, page_size: usize, max_bytes: usize) -> Result<Page, scan::Error> {
    let mut rows = Vec::with_capacity(page_size.min(1024) + 1);
    let mut bytes = 0;
    let mut limit = page_size;
    while rows.len() <= limit {
        let Some(row) = scan.next_row()? else { break };
        bytes += row.record.encoded_len_hint();
        rows.push(row);
        if bytes >= max_bytes && rows.len() <= limit {
            // Full by bytes: this row ends the page; one more read tells whether more follow.
            limit = rows.len();
        }
    }
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(ScanRow::key)
    } else {
        None
    };
    Ok(Page { rows, next, stats: scan.stats })
}
