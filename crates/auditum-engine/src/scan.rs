//! Reading sealed batches for queries and exports: ranged reads through the object store, cached
//! footers, and the pruning chain inside one batch file: row-group statistics → bloom filters →
//! page index → the exact predicate on the predicate columns → every column of the matched rows.
//!
//! Synchronous by design: it runs on the blocking pool (decoding is CPU work), and each
//! object-store read blocks on the async store through a runtime handle.

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use auditum_batch::{self as batch, StoredRow};
use auditum_format::event::COLUMN_NAMES;
use auditum_format::ledger::LedgerEntry;
use auditum_store::{self as store, ObjectStore};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::bloom_filter::Sbbf;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, RowGroupMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Rows decoded at a time within a window, at most: a query asks for about a page.
pub const MAX_DECODE_ROWS: usize = 1024;
/// At most this many rows are read per window: it bounds what a descending scan holds.
pub const WINDOW_ROWS: usize = 8192;
/// The tail fetched first when opening a file: footer and page index in one request, usually.
const TAIL_PREFETCH_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {object}: {source}")]
    Store { object: String, source: store::Error },
    #[error("batch {object} cannot be read: {reason}")]
    Archive { object: String, reason: String },
}

impl Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store { source, .. } if source.is_transient())
    }
}

/// Bytes and requests fetched from the object store by one query, and the page ranges those
/// requests carried (neighbouring pages share one request on a remote store).
#[derive(Debug, Default)]
pub struct IoCounters {
    pub bytes: AtomicU64,
    pub requests: AtomicU64,
    pub pages: AtomicU64,
}

/// A batch file read by byte ranges on demand, each range fetched once.
#[derive(Clone)]
pub struct RangeReader {
    inner: Arc<RangeReaderInner>,
}

struct RangeReaderInner {
    store: Arc<dyn ObjectStore>,
    object: String,
    version: Option<String>,
    size: u64,
    runtime: tokio::runtime::Handle,
    fetched: Mutex<Vec<(u64, Bytes)>>,
    io: Arc<IoCounters>,
    /// The store error behind a failed read; parquet's own error only carries its text.
    store_failure: Mutex<Option<store::Error>>,
    /// For a file store: the object's file, opened on first read.
    local: Option<(std::path::PathBuf, Mutex<Option<std::fs::File>>)>,
    /// Where pages lie, once the footer is known (remote stores only).
    layout: Mutex<Option<Arc<PageLayout>>>,
}

/// Where one data page (or a column chunk's dictionary page) lies, and which rows it holds.
#[derive(Debug, Clone)]
struct PageSpan {
    bytes: Range<u64>,
    row_group: usize,
    column: usize,
    rows: Range<usize>,
}

/// Every page of a file, sorted by offset, and which columns are read ahead together: on a
/// remote store each page is a request, so a miss on one of these columns fetches, at once and
/// concurrently, the pages of all of them that hold the same rows (the reader asks for them next).
#[derive(Debug)]
struct PageLayout {
    spans: Vec<PageSpan>,
    read_ahead: Vec<bool>,
}

/// Concurrent ranged reads per round trip on a remote store.
const CONCURRENT_READS: usize = 16;
/// Ranges fetched together that lie closer than this are one request: on S3 a request costs
/// tens of milliseconds, reading 256 KiB more about two.
const COALESCE_GAP_BYTES: u64 = 256 * 1024;
/// A coalesced request stays at most this large, so requests still run concurrently.
const COALESCE_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Neighbouring ranges merged into requests (sorted; each within the gap and size limits).
fn coalesce(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|range| range.start);
    let mut requests: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match requests.last_mut() {
            Some(last)
                if range.start <= last.end.saturating_add(COALESCE_GAP_BYTES)
                    && range.end.max(last.end) - last.start <= COALESCE_MAX_BYTES =>
            {
                last.end = last.end.max(range.end);
            }
            _ => requests.push(range),
        }
    }
    requests
}

impl RangeReader {
    pub fn new(store: Arc<dyn ObjectStore>, entry: &LedgerEntry, runtime: tokio::runtime::Handle, io: Arc<IoCounters>) -> RangeReader {
        RangeReader {
            inner: Arc::new(RangeReaderInner {
                object: entry.object.clone(),
                version: entry.version.clone(),
                size: entry.size,
                runtime,
                fetched: Mutex::new(Vec::new()),
                io,
                store_failure: Mutex::new(None),
                local: store.local_path(&entry.object).map(|path| (path, Mutex::new(None))),
                store,
                layout: Mutex::new(None),
            }),
        }
    }

    pub fn object(&self) -> &str {
        &self.inner.object
    }

    fn cached(&self, range: &Range<u64>) -> Option<Bytes> {
        let fetched = self.inner.fetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        fetched.iter().find_map(|(start, bytes)| {
            let end = start + bytes.len() as u64;
            (*start <= range.start && range.end <= end).then(|| bytes.slice((range.start - start) as usize..(range.end - start) as usize))
        })
    }

    /// Fetches a range, or serves it from what this reader already fetched.
    fn fetch(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        if range.end > self.inner.size || range.start > range.end {
            return Err(ParquetError::EOF(format!("range {range:?} is outside the {}-byte file", self.inner.size)));
        }
        if let Some(bytes) = self.cached(&range) {
            return Ok(bytes);
        }
        if self.read_ahead(&range)?
            && let Some(bytes) = self.cached(&range)
        {
            return Ok(bytes);
        }
        let inner = &self.inner;
        inner.io.pages.fetch_add(1, Ordering::Relaxed);
        let read = match &inner.local {
            Some((path, file)) => {
                read_local(path, file, range.clone()).map_err(|source| store::Error::Io { key: inner.object.clone(), source })
            }
            None => inner.runtime.block_on(inner.store.get_range(&inner.object, inner.version.as_deref(), range.clone())),
        };
        self.keep(range, read)
    }

    /// Checks, counts and caches what one read returned; a store error is kept for [`Self::error`].
    fn keep(&self, range: Range<u64>, read: store::Result<Bytes>) -> parquet::errors::Result<Bytes> {
        let inner = &self.inner;
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(error) => {
                let message = error.to_string();
                *inner.store_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
                return Err(ParquetError::General(message));
            }
        };
        if bytes.len() as u64 != range.end - range.start {
            return Err(ParquetError::EOF(format!("range {range:?} returned {} bytes", bytes.len())));
        }
        inner.io.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        inner.io.requests.fetch_add(1, Ordering::Relaxed);
        inner.fetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((range.start, bytes.clone()));
        Ok(bytes)
    }

    /// Learns the page layout from the footer; `read_ahead[column]` marks the columns fetched
    /// together. Only for remote stores: a local file is read page by page at no cost.
    fn set_layout(&self, metadata: &ArrowReaderMetadata, read_ahead: Vec<bool>) {
        if self.inner.local.is_some() {
            return;
        }
        let parquet = metadata.metadata();
        let mut spans = Vec::new();
        for (row_group, row_group_meta) in parquet.row_groups().iter().enumerate() {
            let rows = usize::try_from(row_group_meta.num_rows()).unwrap_or(0);
            let page_index = parquet.page_index_for_row_group(row_group);
            for column in 0..row_group_meta.num_columns() {
                let Some(offsets) = page_index.offset_index(column) else { return };
                let locations = offsets.page_locations();
                let chunk_start = row_group_meta.column(column).byte_range().0;
                if let Some(first) = locations.first()
                    && (first.offset as u64) > chunk_start
                {
                    spans.push(PageSpan { bytes: chunk_start..first.offset as u64, row_group, column, rows: 0..rows });
                }
                for (page, location) in locations.iter().enumerate() {
                    let end_row = locations.get(page + 1).map_or(rows, |next| next.first_row_index as usize);
                    let start = location.offset as u64;
                    spans.push(PageSpan {
                        bytes: start..start + location.compressed_page_size as u64,
                        row_group,
                        column,
                        rows: location.first_row_index as usize..end_row,
                    });
                }
            }
        }
        spans.sort_by_key(|span| span.bytes.start);
        *self.inner.layout.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(PageLayout { spans, read_ahead }));
    }

    fn layout(&self) -> Option<Arc<PageLayout>> {
        self.inner.layout.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// On a miss for a page of a read-ahead column, fetches the pages of every read-ahead column
    /// holding the same rows; true when it did.
    fn read_ahead(&self, range: &Range<u64>) -> parquet::errors::Result<bool> {
        let Some(layout) = self.layout() else { return Ok(false) };
        let position = layout.spans.partition_point(|span| span.bytes.start < range.start);
        let Some(missed) = layout.spans.get(position).filter(|span| span.bytes == *range) else { return Ok(false) };
        if !layout.read_ahead.get(missed.column).copied().unwrap_or(false) {
            return Ok(false);
        }
        let siblings = layout
            .spans
            .iter()
            .filter(|span| {
                span.row_group == missed.row_group
                    && layout.read_ahead.get(span.column).copied().unwrap_or(false)
                    && span.rows.start < missed.rows.end
                    && missed.rows.start < span.rows.end
            })
            .map(|span| span.bytes.clone())
            .collect();
        self.fetch_many(siblings)?;
        Ok(true)
    }

    /// Fetches the pages of `columns` holding `rows` of a row group, concurrently.
    fn prefetch_rows(&self, row_group: usize, rows: &Range<usize>, columns: &[usize]) -> parquet::errors::Result<()> {
        let Some(layout) = self.layout() else { return Ok(()) };
        let ranges = layout
            .spans
            .iter()
            .filter(|span| {
                span.row_group == row_group && columns.contains(&span.column) && span.rows.start < rows.end && rows.start < span.rows.end
            })
            .map(|span| span.bytes.clone())
            .collect();
        self.fetch_many(ranges)
    }

    /// Fetches the ranges not yet fetched, up to [`CONCURRENT_READS`] at a time (remote only).
    fn fetch_many(&self, ranges: Vec<Range<u64>>) -> parquet::errors::Result<()> {
        use futures::StreamExt;
        if self.inner.local.is_some() {
            return Ok(());
        }
        let missing: Vec<Range<u64>> =
            ranges.into_iter().filter(|range| range.end <= self.inner.size && self.cached(range).is_none()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        inner.io.pages.fetch_add(missing.len() as u64, Ordering::Relaxed);
        // A coalesced request is kept whole: `cached` serves each page as a slice of it.
        let results: Vec<(Range<u64>, store::Result<Bytes>)> = inner.runtime.block_on(
            futures::stream::iter(coalesce(missing))
                .map(|range| async move {
                    let result = inner.store.get_range(&inner.object, inner.version.as_deref(), range.clone()).await;
                    (range, result)
                })
                .buffer_unordered(CONCURRENT_READS)
                .collect(),
        );
        for (range, result) in results {
            self.keep(range, result)?;
        }
        Ok(())
    }

    /// The error for a failed read: the store's, when a fetch failed, else the file's fault.
    fn error(&self, reason: impl std::fmt::Display) -> Error {
        let object = self.inner.object.clone();
        match self.inner.store_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            Some(source) => Error::Store { object, source },
            None => Error::Archive { object, reason: reason.to_string() },
        }
    }

    /// Forgets fetched pages (the tail with the footer stays): bounds what a long scan holds.
    fn release_pages(&self) {
        let tail_start = self.inner.size.saturating_sub(TAIL_PREFETCH_BYTES);
        self.inner.fetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|(start, _)| *start >= tail_start);
    }
}

fn read_local(path: &std::path::Path, file: &Mutex<Option<std::fs::File>>, range: Range<u64>) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if file.is_none() {
        *file = Some(std::fs::File::open(path)?);
    }
    let Some(file) = file.as_ref() else { return Err(std::io::Error::other("file not open")) };
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)?;
    Ok(Bytes::from(buf))
}

impl Length for RangeReader {
    fn len(&self) -> u64 {
        self.inner.size
    }
}

impl ChunkReader for RangeReader {
    type T = std::io::Cursor<Bytes>;

    // Only used without an offset index (files auditum did not write); a page header fits.
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let end = (start + 64 * 1024).min(self.inner.size);
        Ok(std::io::Cursor::new(self.fetch(start..end)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.fetch(start..start + length as u64)
    }
}

/// Parsed footers (with page index) of recently read batches, bounded by their size in memory.
pub struct FooterCache {
    budget_bytes: usize,
    state: Mutex<FooterState>,
}

#[derive(Default)]
struct FooterState {
    footers: HashMap<FooterKey, (ArrowReaderMetadata, usize)>,
    order: VecDeque<FooterKey>,
    bytes: usize,
}

type FooterKey = (String, Option<String>);

impl FooterCache {
    pub fn new(budget_bytes: usize) -> FooterCache {
        FooterCache { budget_bytes, state: Mutex::default() }
    }

    /// Whether the footer of `entry`'s batch is held.
    pub fn contains(&self, entry: &LedgerEntry) -> bool {
        let key = (entry.object.clone(), entry.version.clone());
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).footers.contains_key(&key)
    }

    fn get(&self, key: &FooterKey) -> Option<ArrowReaderMetadata> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).footers.get(key).map(|(metadata, _)| metadata.clone())
    }

    fn insert(&self, key: FooterKey, metadata: ArrowReaderMetadata) {
        let size = metadata.metadata().memory_size();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.footers.insert(key.clone(), (metadata, size)).is_none() {
            state.order.push_back(key);
            state.bytes += size;
        }
        while state.bytes > self.budget_bytes {
            let Some(oldest) = state.order.pop_front() else { break };
            if let Some((_, evicted)) = state.footers.remove(&oldest) {
                state.bytes -= evicted;
            }
        }
    }

    /// The footer of a batch, from the cache or read with ranged requests.
    pub fn load(&self, reader: &RangeReader) -> Result<ArrowReaderMetadata> {
        let key = (reader.inner.object.clone(), reader.inner.version.clone());
        if let Some(found) = self.get(&key) {
            return Ok(found);
        }
        let size = reader.inner.size;
        reader.fetch(size.saturating_sub(TAIL_PREFETCH_BYTES)..size).map_err(|error| reader.error(error))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load(reader, options).map_err(|error| reader.error(error))?;
        let names: Vec<&str> = metadata.schema().fields().iter().map(|field| field.name().as_str()).collect();
        if names != COLUMN_NAMES {
            return Err(Error::Archive {
                object: reader.object().to_string(),
                reason: format!("columns are {names:?}, not docs/FORMAT.md, Stored columns's"),
            });
        }
        self.insert(key, metadata.clone());
        Ok(metadata)
    }
}

pub(crate) fn column_index(name: &str) -> usize {
    COLUMN_NAMES.iter().position(|column| *column == name).unwrap_or(0)
}

/// A test on one text column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextTest {
    Equals(String),
    /// Any of the exact values, or any value starting with one of the prefixes.
    OneOf {
        exact: Vec<String>,
        prefixes: Vec<String>,
    },
}

impl TextTest {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TextTest::Equals(expected) => value == expected,
            TextTest::OneOf { exact, prefixes } => {
                exact.iter().any(|candidate| candidate == value) || prefixes.iter().any(|prefix| value.starts_with(prefix.as_str()))
            }
        }
    }

    /// Whether a value in [min, max] may pass (bounds inclusive; None is unbounded).
    fn may_match_range(&self, min: Option<&[u8]>, max: Option<&[u8]>) -> bool {
        let within = |value: &[u8]| min.is_none_or(|min| min <= value) && max.is_none_or(|max| value <= max);
        match self {
            TextTest::Equals(expected) => within(expected.as_bytes()),
            TextTest::OneOf { exact, prefixes } => {
                exact.iter().any(|value| within(value.as_bytes()))
                    || prefixes.iter().any(|prefix| {
                        // Values starting with the prefix form one contiguous range from the prefix.
                        let prefix = prefix.as_bytes();
                        max.is_none_or(|max| max >= prefix) && min.is_none_or(|min| min <= prefix || min.starts_with(prefix))
                    })
            }
        }
    }
}

/// The exact predicate over stored columns: text tests, a time range on `occurred_at`, and the
/// keyset bound of pagination on (`occurred_at`, `seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    /// (column name, test); `tenant_id` is always one of them.
    pub texts: Vec<(&'static str, TextTest)>,
    /// occurred_at in [start, end).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Rows strictly after (ascending) or before (descending) this (occurred_at, seq).
    pub cursor: Option<(i64, u64)>,
    pub descending: bool,
}

impl Predicate {
    /// Passes every row (internal followers filter on their own); use with the tenant "".
    pub fn match_all() -> Predicate {
        Predicate { texts: Vec::new(), start: None, end: None, cursor: None, descending: false }
    }

    /// The occurred_at range [low, high) that can hold a passing row.
    pub fn time_bounds(&self) -> (i64, i64) {
        let mut low = self.start.unwrap_or(i64::MIN);
        let mut high = self.end.unwrap_or(i64::MAX);
        if let Some((occurred_at, _)) = self.cursor {
            if self.descending {
                high = high.min(occurred_at.saturating_add(1));
            } else {
                low = low.max(occurred_at);
            }
        }
        (low, high)
    }

    fn time_may_overlap(&self, min: Option<i64>, max: Option<i64>) -> bool {
        let (low, high) = self.time_bounds();
        low < high && max.is_none_or(|max| max >= low) && min.is_none_or(|min| min < high)
    }

    /// Whether a row with these values passes.
    pub fn matches_key(&self, occurred_at: i64, seq: u64) -> bool {
        let (low, high) = self.time_bounds();
        if occurred_at < low || occurred_at >= high {
            return false;
        }
        match self.cursor {
            None => true,
            Some(cursor) if self.descending => (occurred_at, seq) < cursor,
            Some(cursor) => (occurred_at, seq) > cursor,
        }
    }

    /// Whether a ledger entry's batch may hold a passing row. A `tenant_id` of "" (never a valid
    /// tenant id) stands for every tenant: internal followers (deliveries) read them all.
    pub fn entry_may_match(&self, tenant_id: &str, entry: &LedgerEntry) -> bool {
        let tenant_listed = tenant_id.is_empty()
            || entry.tenants.as_ref().is_none_or(|tenants| tenants.binary_search_by(|t| t.as_str().cmp(tenant_id)).is_ok());
        tenant_listed && self.time_may_overlap(Some(entry.min_occurred_at), Some(entry.max_occurred_at))
    }

    fn row_group_may_match(&self, row_group: &RowGroupMetaData) -> bool {
        let rows = row_group.num_rows() as u64;
        let occurred_at = row_group.column(column_index("occurred_at")).statistics();
        let (min, max) = match occurred_at {
            Some(Statistics::Int64(stats)) => (stats.min_opt().copied(), stats.max_opt().copied()),
            _ => (None, None),
        };
        if !self.time_may_overlap(min, max) {
            return false;
        }
        self.texts.iter().all(|(name, test)| match row_group.column(column_index(name)).statistics() {
            Some(Statistics::ByteArray(stats)) => {
                if stats.null_count_opt() == Some(rows) {
                    return false;
                }
                test.may_match_range(stats.min_opt().map(|value| value.data()), stats.max_opt().map(|value| value.data()))
            }
            _ => true,
        })
    }

    /// Which columns the predicate is evaluated on.
    fn predicate_columns(&self) -> Vec<usize> {
        let mut columns: Vec<usize> = self.texts.iter().map(|(name, _)| column_index(name)).collect();
        columns.push(column_index("occurred_at"));
        if self.cursor.is_some() {
            columns.push(column_index("seq"));
        }
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// Evaluates the predicate over the decoded predicate columns.
    fn evaluate(&self, batch: &RecordBatch) -> std::result::Result<BooleanArray, arrow::error::ArrowError> {
        let missing = |name: &str| arrow::error::ArrowError::SchemaError(format!("column {name} is missing or mistyped"));
        let occurred_at = batch
            .column_by_name("occurred_at")
            .and_then(|array| array.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .ok_or_else(|| missing("occurred_at"))?;
        let seq = match self.cursor {
            Some(_) => Some(
                batch.column_by_name("seq").and_then(|array| array.as_any().downcast_ref::<UInt64Array>()).ok_or_else(|| missing("seq"))?,
            ),
            None => None,
        };
        let texts = self
            .texts
            .iter()
            .map(|(name, test)| {
                let array = batch
                    .column_by_name(name)
                    .and_then(|array| array.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| missing(name))?;
                Ok((array, test))
            })
            .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()?;
        let passing = (0..batch.num_rows()).map(|row| {
            let key_ok = self.matches_key(occurred_at.value(row), seq.map_or(0, |seq| seq.value(row)));
            Some(key_ok && texts.iter().all(|(array, test)| array.is_valid(row) && test.matches(array.value(row))))
        });
        Ok(passing.collect())
    }
}

/// What the pruning chain considered, pruned and read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanStats {
    pub batches_considered: u64,
    pub batches_pruned: u64,
    pub batches_opened: u64,
    pub row_groups_considered: u64,
    pub row_groups_pruned: u64,
    pub row_groups_pruned_by_bloom: u64,
    pub rows_considered: u64,
    pub rows_pruned: u64,
    pub rows_read: u64,
    pub rows_matched: u64,
    pub unsealed_considered: u64,
}

impl ScanStats {
    /// Adds another part's counters (a scan split across threads).
    pub fn add(&mut self, other: &ScanStats) {
        self.batches_considered += other.batches_considered;
        self.batches_pruned += other.batches_pruned;
        self.batches_opened += other.batches_opened;
        self.row_groups_considered += other.row_groups_considered;
        self.row_groups_pruned += other.row_groups_pruned;
        self.row_groups_pruned_by_bloom += other.row_groups_pruned_by_bloom;
        self.rows_considered += other.rows_considered;
        self.rows_pruned += other.rows_pruned;
        self.rows_read += other.rows_read;
        self.rows_matched += other.rows_matched;
        self.unsealed_considered += other.unsealed_considered;
    }
}

/// A contiguous run of rows of one row group to read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    row_group: usize,
    rows: Range<usize>,
}

fn intersect(left: &[Range<usize>], right: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < left.len() && j < right.len() {
        let start = left[i].start.max(right[j].start);
        let end = left[i].end.min(right[j].end);
        if start < end {
            out.push(start..end);
        }
        if left[i].end < right[j].end { i += 1 } else { j += 1 }
    }
    out
}

/// Row ranges of the pages of one column chunk that may hold a passing value.
fn page_ranges(
    metadata: &ArrowReaderMetadata,
    row_group: usize,
    column: usize,
    rows: usize,
    may_match: impl Fn(&ColumnIndexMetaData, usize) -> bool,
) -> Option<Vec<Range<usize>>> {
    let page_index = metadata.metadata().page_index_for_row_group(row_group);
    let index = page_index.column_index(column)?;
    let locations = page_index.offset_index(column)?.page_locations();
    if locations.len() as u64 != index.num_pages() {
        return None;
    }
    let mut out: Vec<Range<usize>> = Vec::new();
    for (page, location) in locations.iter().enumerate() {
        let start = usize::try_from(location.first_row_index).ok()?;
        let end = match locations.get(page + 1) {
            Some(next) => usize::try_from(next.first_row_index).ok()?,
            None => rows,
        };
        if start >= end || !may_match(index, page) {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => out.push(start..end),
        }
    }
    Some(out)
}

fn text_page_may_match(test: &TextTest, index: &ColumnIndexMetaData, page: usize) -> bool {
    if index.is_null_page(page) {
        return false;
    }
    match index {
        ColumnIndexMetaData::BYTE_ARRAY(index) => test.may_match_range(index.min_value(page), index.max_value(page)),
        _ => true,
    }
}

/// One batch opened for reading: its windows in scan order and the rows read so far.
pub struct BatchScan {
    entry: Arc<LedgerEntry>,
    reader: RangeReader,
    metadata: ArrowReaderMetadata,
    predicate: Arc<Predicate>,
    /// The columns the predicate is evaluated on (computed once per batch).
    predicate_columns: Vec<usize>,
    windows: VecDeque<Window>,
    decode_rows: usize,
    /// The columns read for matching rows, when not all of them (see [`BatchScan::project`]).
    projection: Option<Vec<usize>>,
    current: Option<ParquetRecordBatchReader>,
    buffer: VecDeque<StoredRow>,
}

impl BatchScan {
    /// Opens a batch: footer (cached), then prunes row groups by statistics and bloom filters
    /// and pages by the page index, leaving the windows to read.
    pub fn open(
        entry: Arc<LedgerEntry>,
        reader: RangeReader,
        footers: &FooterCache,
        predicate: Arc<Predicate>,
        decode_rows: usize,
        stats: &mut ScanStats,
    ) -> Result<BatchScan> {
        let metadata = footers.load(&reader)?;
        stats.batches_opened += 1;
        // Filter columns are fetched per window up front; the others, read only for matching
        // rows, are read ahead together on a miss.
        let predicate_columns = predicate.predicate_columns();
        reader.set_layout(&metadata, (0..COLUMN_NAMES.len()).map(|column| !predicate_columns.contains(&column)).collect());
        let mut windows = Vec::new();
        for (row_group, row_group_meta) in metadata.metadata().row_groups().iter().enumerate() {
            stats.row_groups_considered += 1;
            let rows = usize::try_from(row_group_meta.num_rows()).unwrap_or(0);
            if !predicate.row_group_may_match(row_group_meta) {
                stats.row_groups_pruned += 1;
                continue;
            }
            if bloom_excludes(&reader, row_group_meta, &predicate).map_err(|error| reader.error(error))? {
                stats.row_groups_pruned += 1;
                stats.row_groups_pruned_by_bloom += 1;
                continue;
            }
            stats.rows_considered += rows as u64;
            #[allow(clippy::single_range_in_vec_init)]
            let mut ranges = vec![0..rows];
            let time = page_ranges(&metadata, row_group, column_index("occurred_at"), rows, |index, page| {
                if index.is_null_page(page) {
                    return false;
                }
                match index {
                    ColumnIndexMetaData::INT64(index) => {
                        predicate.time_may_overlap(index.min_value(page).copied(), index.max_value(page).copied())
                    }
                    _ => true,
                }
            });
            if let Some(time) = time {
                ranges = intersect(&ranges, &time);
            }
            for (name, test) in &predicate.texts {
                if let Some(pages) =
                    page_ranges(&metadata, row_group, column_index(name), rows, |index, page| text_page_may_match(test, index, page))
                {
                    ranges = intersect(&ranges, &pages);
                }
            }
            let kept: usize = ranges.iter().map(|range| range.len()).sum();
            stats.rows_pruned += (rows - kept) as u64;
            for range in ranges {
                let mut start = range.start;
                while start < range.end {
                    let end = (start + WINDOW_ROWS).min(range.end);
                    windows.push(Window { row_group, rows: start..end });
                    start = end;
                }
            }
        }
        if predicate.descending {
            windows.reverse();
        }
        Ok(BatchScan {
            entry,
            reader,
            metadata,
            predicate,
            predicate_columns,
            windows: windows.into(),
            decode_rows: decode_rows.clamp(1, MAX_DECODE_ROWS),
            projection: None,
            current: None,
            buffer: VecDeque::new(),
        })
    }

    pub fn entry(&self) -> &Arc<LedgerEntry> {
        &self.entry
    }

    /// Reads only `columns` (indexes into `COLUMN_NAMES`) of the matching rows, which then come
    /// from [`BatchScan::next_batch`]: for a caller that needs a few columns (Summarize counts by
    /// `occurred_at` and one or two dimensions), not every column of every match.
    pub fn project(mut self, columns: Vec<usize>) -> BatchScan {
        let read_ahead =
            (0..COLUMN_NAMES.len()).map(|column| !self.predicate_columns.contains(&column) && columns.contains(&column)).collect();
        self.reader.set_layout(&self.metadata, read_ahead);
        self.projection = Some(columns);
        self
    }

    /// The rows of a window that pass the predicate, as runs of row numbers in the row group:
    /// only the predicate's columns are decoded.
    fn window_matches(&self, window: &Window) -> Result<Vec<Range<usize>>> {
        // No trailing skip: the reader stops where the selection ends.
        let selection = RowSelection::from(vec![RowSelector::skip(window.rows.start), RowSelector::select(window.rows.len())]);
        let schema = self.metadata.metadata().file_metadata().schema_descr();
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(self.reader.clone(), self.metadata.clone())
            .with_projection(ProjectionMask::leaves(schema, self.predicate_columns.iter().copied()))
            .with_row_groups(vec![window.row_group])
            .with_row_selection(selection)
            .with_batch_size(window.rows.len().max(1))
            .build()
            .map_err(|error| self.reader.error(error))?;
        let mut matches: Vec<Range<usize>> = Vec::new();
        let mut row = window.rows.start;
        for batch in reader {
            let batch = batch.map_err(|error| self.reader.error(error))?;
            let passing = self.predicate.evaluate(&batch).map_err(|error| self.reader.error(error))?;
            for offset in 0..batch.num_rows() {
                if passing.is_valid(offset) && passing.value(offset) {
                    let matched = row + offset;
                    match matches.last_mut() {
                        Some(last) if last.end == matched => last.end = matched + 1,
                        _ => matches.push(matched..matched + 1),
                    }
                }
            }
            row += batch.num_rows();
        }
        Ok(matches)
    }

    /// Every column of the given rows of a row group. Built only when some row matched: a
    /// reader opens a page reader (and a decompressor) per column chunk it touches, and a
    /// selective query's windows mostly match nothing.
    fn rows_reader(&self, row_group: usize, matches: &[Range<usize>]) -> Result<ParquetRecordBatchReader> {
        let mut selectors = Vec::with_capacity(matches.len() * 2);
        let mut position = 0;
        for run in matches {
            if run.start > position {
                selectors.push(RowSelector::skip(run.start - position));
            }
            selectors.push(RowSelector::select(run.len()));
            position = run.end;
        }
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(self.reader.clone(), self.metadata.clone())
            .with_row_groups(vec![row_group])
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(self.decode_rows);
        if let Some(columns) = &self.projection {
            let schema = self.metadata.metadata().file_metadata().schema_descr();
            builder = builder.with_projection(ProjectionMask::leaves(schema, columns.iter().copied()));
        }
        builder.build().map_err(|error| self.reader.error(error))
    }

    /// The next run of matching rows: the row group and its matching row ranges (sorted, not
    /// empty), or None when the batch is done. Windows of one row group are filtered until about
    /// a decode's worth of rows match, so a reader of the matches (a page reader per column) is
    /// built once per row group for a needle, not once per window.
    fn next_matches(&mut self, stats: &mut ScanStats) -> Result<Option<(usize, Vec<Range<usize>>)>> {
        while let Some(first) = self.windows.pop_front() {
            let row_group = first.row_group;
            let (mut matches, mut matched) = (Vec::new(), 0);
            let mut next = Some(first);
            while let Some(window) = next.take() {
                stats.rows_read += window.rows.len() as u64;
                self.reader.prefetch_rows(row_group, &window.rows, &self.predicate_columns).map_err(|error| self.reader.error(error))?;
                let found = self.window_matches(&window)?;
                matched += found.iter().map(|run| run.len()).sum::<usize>();
                matches.extend(found);
                if matched < self.decode_rows && self.windows.front().is_some_and(|window| window.row_group == row_group) {
                    next = self.windows.pop_front();
                }
            }
            stats.rows_matched += matched as u64;
            if matches.is_empty() {
                self.reader.release_pages();
                continue;
            }
            // Descending windows come last to first.
            matches.sort_unstable_by_key(|run| run.start);
            return Ok(Some((row_group, matches)));
        }
        Ok(None)
    }

    /// The next batch of matching rows with the projected columns only (see
    /// [`BatchScan::project`]); None when the batch is done. For callers that do not need the
    /// scan's order: a descending predicate's row groups come last to first, their rows in file
    /// order.
    pub fn next_batch(&mut self, stats: &mut ScanStats) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(reader) = self.current.as_mut() {
                match reader.next() {
                    Some(batch) => return batch.map(Some).map_err(|error| self.reader.error(error)),
                    None => {
                        self.current = None;
                        self.reader.release_pages();
                    }
                }
            }
            let Some((row_group, matches)) = self.next_matches(stats)? else { return Ok(None) };
            self.current = Some(self.rows_reader(row_group, &matches)?);
        }
    }

    /// The next passing row in scan order, or None when the batch is done.
    pub fn next_row(&mut self, stats: &mut ScanStats) -> Result<Option<StoredRow>> {
        loop {
            if let Some(row) = self.buffer.pop_front() {
                return Ok(Some(row));
            }
            if let Some(reader) = self.current.as_mut() {
                match reader.next() {
                    Some(batch) => {
                        let batch = batch.map_err(|error| self.reader.error(error))?;
                        let rows = batch::stored_rows(&batch).map_err(|error| self.reader.error(error))?;
                        self.buffer.extend(rows);
                        continue;
                    }
                    None => {
                        self.current = None;
                        self.reader.release_pages();
                    }
                }
            }
            let Some((row_group, matches)) = self.next_matches(stats)? else { return Ok(None) };
            let mut reader = self.rows_reader(row_group, &matches)?;
            if !self.predicate.descending {
                self.current = Some(reader);
                continue;
            }
            // Descending: the matched rows are read whole, then handed out from the end.
            let mut rows = Vec::new();
            for batch in reader.by_ref() {
                let batch = batch.map_err(|error| self.reader.error(error))?;
                rows.extend(batch::stored_rows(&batch).map_err(|error| self.reader.error(error))?);
            }
            self.reader.release_pages();
            self.buffer.extend(rows.into_iter().rev());
        }
    }
}

/// Whether a bloom filter proves that an equality test cannot pass in this row group.
fn bloom_excludes(reader: &RangeReader, row_group: &RowGroupMetaData, predicate: &Predicate) -> parquet::errors::Result<bool> {
    for (name, test) in &predicate.texts {
        let TextTest::Equals(value) = test else { continue };
        if !batch::BLOOM_FILTER_COLUMNS.contains(name) {
            continue;
        }
        if let Some(filter) = Sbbf::read_from_column_chunk(row_group.column(column_index(name)), reader)?
            && !filter.check(value.as_str())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        let test = TextTest::OneOf { exact: vec![], prefixes: vec!["user.".into()] };
        assert!(test.may_match_range(Some(b"a"), Some(b"z")));
        assert!(test.may_match_range(Some(b"user.a"), Some(b"user.b")));
        assert!(test.may_match_range(Some(b"user."), Some(b"user.")));
        assert!(!test.may_match_range(Some(b"userz"), Some(b"zzz")), "after every value with the prefix");
        assert!(!test.may_match_range(Some(b"a"), Some(b"user")), "before every value with the prefix");
        assert!(test.may_match_range(Some(b"a"), Some(b"user.x")));
        assert!(test.matches("user.login") && !test.matches("user") && !test.matches("users.x"));
    }

    #[test]
    fn neighbouring_ranges_share_a_request_within_the_gap_and_size_limits() {
        let kib = 1024;
        // Unsorted in, sorted out; overlapping and touching ranges merge; a gap at the limit merges.
        assert_eq!(coalesce(vec![300..400, 0..100, 100..200, 150..250]), vec![0..400]);
        assert_eq!(coalesce(vec![0..10, 10 + COALESCE_GAP_BYTES..20 + COALESCE_GAP_BYTES]), vec![0..20 + COALESCE_GAP_BYTES]);
        assert_eq!(coalesce(vec![0..10, 11 + COALESCE_GAP_BYTES..20 + COALESCE_GAP_BYTES]).len(), 2, "a gap past the limit");
        // A request stops growing at the size limit.
        let pages: Vec<Range<u64>> = (0..20).map(|page| page * 1024 * kib..(page + 1) * 1024 * kib).collect();
        let requests = coalesce(pages);
        assert_eq!(requests, vec![0..8 * 1024 * kib, 8 * 1024 * kib..16 * 1024 * kib, 16 * 1024 * kib..20 * 1024 * kib]);
        assert!(coalesce(Vec::new()).is_empty());
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn range_intersection() {
        assert_eq!(intersect(&[0..10, 20..30], &[5..25]), vec![5..10, 20..25]);
        assert_eq!(intersect(&[0..10], &[10..20]), Vec::<Range<usize>>::new());
        assert_eq!(intersect(&[0..100], &[0..100]), vec![0..100]);
    }
}
