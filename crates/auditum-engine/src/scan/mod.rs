//! Reading sealed batches for queries and exports: ranged reads through the object store, cached
//! footers, and the pruning chain inside one batch file: row-group statistics → bloom filters →
//! page index → the exact predicate on the predicate columns → every column of the matched rows.
//!
//! Synchronous by design: it runs on the blocking pool (decoding is CPU work), and each
//! object-store read blocks on the async store through a runtime handle.

use arrow::array::{Array, RecordBatch};
use auditum_batch::{self as batch, StoredRow};
use auditum_format::event::COLUMN_NAMES;
use auditum_format::ledger::LedgerEntry;
use auditum_store as store;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

mod actor_lookup;
mod footers;
mod predicate;
mod range_reader;

pub use footers::FooterCache;
pub use predicate::{Predicate, TextTest};
pub use range_reader::{IoCounters, RangeReader};

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

pub(crate) fn column_index(name: &str) -> usize {
    COLUMN_NAMES.iter().position(|column| *column == name).unwrap_or(0)
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
    /// Of `row_groups_pruned`, those the actor index showed hold none of the actor's rows.
    pub row_groups_pruned_by_index: u64,
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
        self.row_groups_pruned_by_index += other.row_groups_pruned_by_index;
        self.rows_considered += other.rows_considered;
        self.rows_pruned += other.rows_pruned;
        self.rows_read += other.rows_read;
        self.rows_matched += other.rows_matched;
        self.unsealed_considered += other.unsealed_considered;
    }
}

/// Rows of one row group to read: one run of a scan, or the runs an actor index points to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    row_group: usize,
    /// Sorted, disjoint.
    runs: Vec<Range<usize>>,
}

impl Window {
    fn rows(&self) -> usize {
        self.runs.iter().map(|run| run.len()).sum()
    }
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
    /// The windows are the actor index's rows, a few per row group: every column of them is read
    /// at once and the predicate tested on the decoded rows, rather than decoding the predicate
    /// columns first (a second reader, with its decompressors, for a handful of rows).
    filter_after_read: bool,
    current: Option<ParquetRecordBatchReader>,
    buffer: VecDeque<StoredRow>,
}

impl BatchScan {
    /// Opens a batch: footer (cached), then prunes row groups by statistics and the actor index
    /// (a needle by actor) or bloom filters, and pages by the page index, leaving the windows to
    /// read.
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
        let indexed = match actor_lookup::actor_needle(&predicate) {
            Some((tenant_id, actor_id)) => actor_lookup::indexed_rows(&reader, footers, &metadata, tenant_id, actor_id)?,
            None => None,
        };
        let mut windows = Vec::new();
        let mut group_start = 0usize;
        for (row_group, row_group_meta) in metadata.metadata().row_groups().iter().enumerate() {
            stats.row_groups_considered += 1;
            let rows = usize::try_from(row_group_meta.num_rows()).unwrap_or(0);
            let group = group_start..group_start + rows;
            group_start += rows;
            if !predicate.row_group_may_match(row_group_meta) {
                stats.row_groups_pruned += 1;
                continue;
            }
            #[allow(clippy::single_range_in_vec_init)]
            let mut ranges = match &indexed {
                Some(indexed) => {
                    let runs = actor_lookup::runs_in_row_group(indexed, group);
                    if runs.is_empty() {
                        stats.row_groups_pruned += 1;
                        stats.row_groups_pruned_by_index += 1;
                        continue;
                    }
                    runs
                }
                None => {
                    if bloom_excludes(&reader, row_group_meta, &predicate).map_err(|error| reader.error(error))? {
                        stats.row_groups_pruned += 1;
                        stats.row_groups_pruned_by_bloom += 1;
                        continue;
                    }
                    vec![0..rows]
                }
            };
            stats.rows_considered += rows as u64;
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
            // The index's rows already hold the tenant and actor; other text tests prune by pages.
            let page_tests = predicate.texts.iter().filter(|(name, _)| indexed.is_none() || !matches!(*name, "tenant_id" | "actor_id"));
            for (name, test) in page_tests {
                if let Some(pages) =
                    page_ranges(&metadata, row_group, column_index(name), rows, |index, page| text_page_may_match(test, index, page))
                {
                    ranges = intersect(&ranges, &pages);
                }
            }
            let kept: usize = ranges.iter().map(|range| range.len()).sum();
            stats.rows_pruned += (rows - kept) as u64;
            if indexed.is_some() {
                // Single rows mostly: one window per row group, so one reader; at most WINDOW_ROWS
                // rows each, runs split where they cross it (an actor can own a row group).
                let mut window = Window { row_group, runs: Vec::new() };
                for mut run in ranges {
                    while !run.is_empty() {
                        let room = WINDOW_ROWS - window.rows();
                        let taken = run.start..run.end.min(run.start + room);
                        run.start = taken.end;
                        window.runs.push(taken);
                        if window.rows() == WINDOW_ROWS {
                            windows.push(std::mem::replace(&mut window, Window { row_group, runs: Vec::new() }));
                        }
                    }
                }
                if !window.runs.is_empty() {
                    windows.push(window);
                }
                continue;
            }
            for range in ranges {
                let mut start = range.start;
                while start < range.end {
                    let end = (start + WINDOW_ROWS).min(range.end);
                    #[allow(clippy::single_range_in_vec_init)]
                    windows.push(Window { row_group, runs: vec![start..end] });
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
            filter_after_read: indexed.is_some(),
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
        // The projection may leave out predicate columns: filter before reading.
        self.filter_after_read = false;
        self
    }

    /// The rows of a window that pass the predicate, as runs of row numbers in the row group:
    /// only the predicate's columns are decoded.
    fn window_matches(&self, window: &Window) -> Result<Vec<Range<usize>>> {
        let selection = selection_of(&window.runs);
        let schema = self.metadata.metadata().file_metadata().schema_descr();
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(self.reader.clone(), self.metadata.clone())
            .with_projection(ProjectionMask::leaves(schema, self.predicate_columns.iter().copied()))
            .with_row_groups(vec![window.row_group])
            .with_row_selection(selection)
            .with_batch_size(window.rows().max(1))
            .build()
            .map_err(|error| self.reader.error(error))?;
        let mut matches: Vec<Range<usize>> = Vec::new();
        let mut selected_rows = window.runs.iter().flat_map(|run| run.clone());
        for batch in reader {
            let batch = batch.map_err(|error| self.reader.error(error))?;
            let passing = self.predicate.evaluate(&batch).map_err(|error| self.reader.error(error))?;
            for offset in 0..batch.num_rows() {
                let Some(row) = selected_rows.next() else {
                    return Err(self.reader.error("the reader returned more rows than were selected"));
                };
                if passing.is_valid(offset) && passing.value(offset) {
                    match matches.last_mut() {
                        Some(last) if last.end == row => last.end = row + 1,
                        _ => matches.push(row..row + 1),
                    }
                }
            }
        }
        Ok(matches)
    }

    /// Every column of the given rows of a row group. Built only when some row matched: a
    /// reader opens a page reader (and a decompressor) per column chunk it touches, and a
    /// selective query's windows mostly match nothing.
    fn rows_reader(&self, row_group: usize, matches: &[Range<usize>]) -> Result<ParquetRecordBatchReader> {
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(self.reader.clone(), self.metadata.clone())
            .with_row_groups(vec![row_group])
            .with_row_selection(selection_of(matches))
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
        if self.filter_after_read {
            let Some(window) = self.windows.pop_front() else { return Ok(None) };
            stats.rows_read += window.rows() as u64;
            // On a remote store, every page holding these rows in one round of concurrent GETs.
            let every_column: Vec<usize> = (0..COLUMN_NAMES.len()).collect();
            self.reader.prefetch_rows(window.row_group, &window.runs, &every_column).map_err(|error| self.reader.error(error))?;
            return Ok(Some((window.row_group, window.runs)));
        }
        while let Some(first) = self.windows.pop_front() {
            let row_group = first.row_group;
            let (mut matches, mut matched) = (Vec::new(), 0);
            let mut next = Some(first);
            while let Some(window) = next.take() {
                stats.rows_read += window.rows() as u64;
                self.reader.prefetch_rows(row_group, &window.runs, &self.predicate_columns).map_err(|error| self.reader.error(error))?;
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

    /// The next batch of matching rows (the projected columns only, see [`BatchScan::project`];
    /// every column otherwise); None when the batch is done. Ascending, rows come in file order,
    /// which exports rely on: (occurred_at, seq) order within the tenant. Descending, the row
    /// groups come last to first, their rows still in file order (fine for counting).
    pub fn next_batch(&mut self, stats: &mut ScanStats) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(reader) = self.current.as_mut() {
                match reader.next() {
                    Some(batch) => {
                        let batch = batch.map_err(|error| self.reader.error(error))?;
                        return self.passing(batch, stats).map(Some);
                    }
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

    /// A decoded batch's passing rows: tested against the predicate when the windows were not
    /// filtered before reading (see `filter_after_read`).
    fn passing(&self, batch: RecordBatch, stats: &mut ScanStats) -> Result<RecordBatch> {
        if !self.filter_after_read {
            return Ok(batch);
        }
        let passing = self.predicate.evaluate(&batch).map_err(|error| self.reader.error(error))?;
        let passed = arrow::compute::filter_record_batch(&batch, &passing).map_err(|error| self.reader.error(error))?;
        stats.rows_matched += passed.num_rows() as u64;
        Ok(passed)
    }

    fn rows_of(&self, batch: RecordBatch, stats: &mut ScanStats) -> Result<Vec<StoredRow>> {
        let passed = self.passing(batch, stats)?;
        batch::stored_rows(&passed).map_err(|error| self.reader.error(error))
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
                        let rows = self.rows_of(batch, stats)?;
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
                rows.extend(self.rows_of(batch, stats)?);
            }
            self.reader.release_pages();
            self.buffer.extend(rows.into_iter().rev());
        }
    }
}

/// Selects the runs (sorted, disjoint) of a row group; no trailing skip: a reader stops where
/// the selection ends.
fn selection_of(runs: &[Range<usize>]) -> RowSelection {
    let mut selectors = Vec::with_capacity(runs.len() * 2);
    let mut position = 0;
    for run in runs {
        if run.start > position {
            selectors.push(RowSelector::skip(run.start - position));
        }
        selectors.push(RowSelector::select(run.len()));
        position = run.end;
    }
    RowSelection::from(selectors)
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
    #[allow(clippy::single_range_in_vec_init)]
    fn range_intersection() {
        assert_eq!(intersect(&[0..10, 20..30], &[5..25]), vec![5..10, 20..25]);
        assert_eq!(intersect(&[0..10], &[10..20]), Vec::<Range<usize>>::new());
        assert_eq!(intersect(&[0..100], &[0..100]), vec![0..100]);
    }
}
