//! A batch file read by byte ranges through the object store: each range fetched once, pages
//! read ahead together and neighbouring ranges coalesced on a remote store, `pread` on a file
//! store.

use super::{Error, TAIL_PREFETCH_BYTES};
use auditum_format::ledger::LedgerEntry;
use auditum_store::{self as store, ObjectStore};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    pub(super) inner: Arc<RangeReaderInner>,
}

pub(super) struct RangeReaderInner {
    store: Arc<dyn ObjectStore>,
    pub(super) object: String,
    pub(super) version: Option<String>,
    pub(super) size: u64,
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
    pub(super) fn fetch(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
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
    pub(super) fn set_layout(&self, metadata: &ArrowReaderMetadata, read_ahead: Vec<bool>) {
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

    /// Fetches the pages of `columns` holding the runs of rows of a row group, concurrently.
    pub(super) fn prefetch_rows(&self, row_group: usize, runs: &[Range<usize>], columns: &[usize]) -> parquet::errors::Result<()> {
        let Some(layout) = self.layout() else { return Ok(()) };
        let ranges = layout
            .spans
            .iter()
            .filter(|span| {
                span.row_group == row_group
                    && columns.contains(&span.column)
                    && runs.iter().any(|rows| span.rows.start < rows.end && rows.start < span.rows.end)
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
    pub(super) fn error(&self, reason: impl std::fmt::Display) -> Error {
        let object = self.inner.object.clone();
        match self.inner.store_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            Some(source) => Error::Store { object, source },
            None => Error::Archive { object, reason: reason.to_string() },
        }
    }

    /// Forgets fetched pages (the tail with the footer stays): bounds what a long scan holds.
    pub(super) fn release_pages(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
