//! One export part read and encoded: its batches (narrowed to the part's time range) and its
//! unsealed events merged in (occurred_at, seq) order, each row written straight from the
//! decoded Arrow arrays, no per-row record. The output comes in pieces of about
//! [`CHUNK_BYTES`] (text formats) or [`PARQUET_ROWS`] rows (Parquet).

use super::Failure;
use super::encode::{self, CHUNK_BYTES, Format, PARQUET_ROWS};
use super::plan::Part;
use crate::read::ScanContext;
use crate::scan::{self, BatchScan, Predicate, RangeReader, ScanStats};
use arrow::array::RecordBatch;
use auditum_batch::{self as batch, EventColumns};
use auditum_format::event::EventRecord;
use auditum_format::ledger::LedgerEntry;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

/// Rows of unsealed events put in one record batch.
const MEMORY_BATCH_ROWS: usize = 1024;

/// Encoded output of a part, in order.
pub struct Piece {
    pub data: PieceData,
    pub rows: u64,
    pub unsealed_rows: u64,
}

pub enum PieceData {
    /// JSONL or CSV bytes, whole rows.
    Text(Vec<u8>),
    /// Rows in the batch schema, for the Parquet writer.
    Rows(RecordBatch),
}

/// What every part of one export reads with.
pub struct PartReader<'a> {
    pub context: &'a ScanContext,
    pub predicate: &'a Predicate,
    pub format: Format,
    /// The log's keyring, unless the export is raw: rows are decrypted before encoding.
    pub decrypt: Option<&'a auditum_keyring::Keyring>,
}

enum Feed {
    Batch(Box<BatchScan>),
    Memory(std::vec::IntoIter<RecordBatch>),
}

/// One input of the merge: a batch file's matching rows or the part's unsealed events, a
/// decoded record batch at a time.
struct Source {
    feed: Feed,
    /// What errors name.
    object: String,
    unsealed: bool,
    current: Option<RecordBatch>,
}

impl<'a> PartReader<'a> {
    /// Reads `part`, handing its pieces to `emit` in order. None when `emit` answered false (the
    /// client went away); otherwise what the scan read.
    pub fn read(&self, part: &Part, emit: &mut dyn FnMut(Piece) -> bool) -> Result<Option<ScanStats>, Failure> {
        let mut stats = ScanStats::default();
        let predicate = Arc::new(part.predicate(self.predicate));
        let mut sources = Vec::with_capacity(part.batches.len() + 1);
        if !part.unsealed.is_empty() {
            stats.rows_matched += part.unsealed.len() as u64;
            let mut source = Source {
                feed: Feed::Memory(memory_batches(&part.unsealed)?.into_iter()),
                object: "unsealed events".into(),
                unsealed: true,
                current: None,
            };
            self.refill(&mut source, &mut stats)?;
            sources.push(source);
        }
        sources.retain(|source| source.current.is_some());
        let mut positions = vec![0usize; sources.len()];
        // Batches are opened only once the merge reaches their first time, like the plain scan:
        // a part of many overlapping batches (see `plan`) then holds few of them at once.
        let mut pending: std::collections::VecDeque<&Arc<LedgerEntry>> = part.batches.iter().collect();
        let mut output = Output { format: self.format, text: Vec::new(), slices: Vec::new(), rows: 0, unsealed_rows: 0, emit };
        loop {
            while let Some(entry) = pending.front() {
                let smallest = sources.iter().zip(&positions).filter_map(|(source, &position)| next_key(source, position)).min();
                if smallest.is_some_and(|(occurred_at, _)| occurred_at < entry.min_occurred_at) {
                    break;
                }
                let Some(entry) = pending.pop_front() else { break };
                let reader = RangeReader::new(self.context.store.clone(), entry, self.context.runtime.clone(), self.context.io.clone());
                let scan =
                    BatchScan::open(entry.clone(), reader, &self.context.footers, predicate.clone(), self.context.decode_rows, &mut stats)?;
                let mut source = Source { feed: Feed::Batch(Box::new(scan)), object: entry.object.clone(), unsealed: false, current: None };
                self.refill(&mut source, &mut stats)?;
                if source.current.is_some() {
                    sources.push(source);
                    positions.push(0);
                }
            }
            if sources.is_empty() {
                break;
            }
            // Rows at or after the next unopened batch's first time wait until it is open.
            let stop_before = pending.front().map(|entry| (entry.min_occurred_at, 0));
            let exhausted = match merge_until_exhausted(&sources, &mut positions, &mut output, stop_before)? {
                Merged::Exhausted(exhausted) => exhausted,
                Merged::ReachedUnopened => continue,
                Merged::ClientGone => return Ok(None),
            };
            let source = &mut sources[exhausted];
            self.refill(source, &mut stats)?;
            positions[exhausted] = 0;
            if source.current.is_none() {
                sources.remove(exhausted);
                positions.remove(exhausted);
            }
        }
        if !output.flush()? {
            return Ok(None);
        }
        Ok(Some(stats))
    }

    /// The source's next non-empty record batch (decrypted when asked), or None when it is done.
    fn refill(&self, source: &mut Source, stats: &mut ScanStats) -> Result<(), Failure> {
        source.current = None;
        let next = loop {
            let next = match &mut source.feed {
                Feed::Batch(scan) => scan.next_batch(stats)?,
                Feed::Memory(batches) => batches.next(),
            };
            match next {
                Some(rows) if rows.num_rows() == 0 => continue,
                other => break other,
            }
        };
        let Some(rows) = next else { return Ok(()) };
        // Unsealed events are decrypted like sealed rows (DESIGN §14).
        source.current = Some(match self.decrypt {
            Some(keyring) => self.decrypted(rows, keyring, &source.object)?,
            None => rows,
        });
        Ok(())
    }

    /// Decrypts the rows' encrypted fields (DESIGN §14); the stored leaf hashes stay.
    fn decrypted(&self, rows: RecordBatch, keyring: &auditum_keyring::Keyring, object: &str) -> Result<RecordBatch, Failure> {
        let unreadable =
            |error: batch::Error| Failure::Scan(scan::Error::Archive { object: object.to_string(), reason: error.to_string() });
        let mut stored = batch::stored_rows(&rows).map_err(unreadable)?;
        self.context.runtime.block_on(keyring.decrypt_each(stored.iter_mut().map(|row| &mut row.record)))?;
        let pairs: Vec<(&EventRecord, _)> = stored.iter().map(|row| (&row.record, row.stored_leaf_hash)).collect();
        batch::record_batch(&pairs).map_err(unreadable)
    }
}

/// The unsealed events as record batches in the batch schema.
fn memory_batches(records: &[Arc<EventRecord>]) -> Result<Vec<RecordBatch>, Failure> {
    records
        .chunks(MEMORY_BATCH_ROWS)
        .map(|chunk| {
            let rows: Vec<_> = chunk.iter().map(|record| (record.as_ref(), record.leaf_hash())).collect();
            batch::record_batch(&rows).map_err(|error| Failure::Encode(encode::Error::Encode(format!("unsealed events: {error}"))))
        })
        .collect()
}

/// How a merge round ended.
enum Merged {
    /// This source's current batch is used up.
    Exhausted(usize),
    /// The next row is at or after `stop_before`: a batch must be opened first.
    ReachedUnopened,
    ClientGone,
}

/// The (occurred_at, seq) of a source's next row; None for rows without the design's columns
/// (which the merge then reports).
fn next_key(source: &Source, position: usize) -> Option<(i64, u64)> {
    let rows = source.current.as_ref()?;
    let columns = EventColumns::new(rows).ok()?;
    (position < columns.len()).then(|| columns.key(position))
}

/// Writes rows in (occurred_at, seq) order across the sources' current batches, below
/// `stop_before`, until one of them is used up. Runs as long as one
/// source stays below the others are written in one go: with a single source, its whole batch.
/// Each source's rows come in (occurred_at, seq) order: a batch file is sorted by (tenant_id,
/// occurred_at, seq) and the predicate holds one tenant.
fn merge_until_exhausted(
    sources: &[Source],
    positions: &mut [usize],
    output: &mut Output<'_>,
    stop_before: Option<(i64, u64)>,
) -> Result<Merged, Failure> {
    let views = sources
        .iter()
        .map(|source| {
            let rows = source
                .current
                .as_ref()
                .ok_or_else(|| Failure::Incomplete("export merge lost a source; the export is incomplete".into()))?;
            EventColumns::complete(rows)
                .map_err(|error| Failure::Scan(scan::Error::Archive { object: source.object.clone(), reason: error.to_string() }))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    // The sources' next keys, smallest first: a part holds few sources, but a plan that fell
    // back to one part (see `plan`) may merge many.
    let mut next_keys: BinaryHeap<Reverse<((i64, u64), usize)>> =
        views.iter().enumerate().map(|(source, view)| Reverse((view.key(positions[source]), source))).collect();
    loop {
        let Some(Reverse((key, index))) = next_keys.pop() else {
            return Err(Failure::Incomplete("export merge has no source; the export is incomplete".into()));
        };
        if stop_before.is_some_and(|stop| key >= stop) {
            return Ok(Merged::ReachedUnopened);
        }
        let runner_up = match (next_keys.peek().map(|Reverse((key, _))| *key), stop_before) {
            (Some(next), Some(stop)) => Some(next.min(stop)),
            (next, stop) => next.or(stop),
        };
        let view = &views[index];
        let start = positions[index];
        // Rows of one source are sorted: those below every other source's next row go at once.
        let end = match runner_up {
            None => view.len(),
            Some(limit) => {
                let (mut low, mut high) = (start + 1, view.len());
                while low < high {
                    let middle = low + (high - low) / 2;
                    if view.key(middle) < limit { low = middle + 1 } else { high = middle }
                }
                low
            }
        };
        let Some(rows) = sources[index].current.as_ref() else {
            return Err(Failure::Incomplete("export merge lost a source; the export is incomplete".into()));
        };
        if !output.write(view, rows, start..end, sources[index].unsealed)? {
            return Ok(Merged::ClientGone);
        }
        positions[index] = end;
        if end == view.len() {
            return Ok(Merged::Exhausted(index));
        }
        next_keys.push(Reverse((view.key(end), index)));
    }
}

/// A part's output being cut into pieces.
struct Output<'e> {
    format: Format,
    text: Vec<u8>,
    slices: Vec<RecordBatch>,
    rows: u64,
    unsealed_rows: u64,
    emit: &'e mut dyn FnMut(Piece) -> bool,
}

impl Output<'_> {
    /// Writes rows `range` of one decoded batch; false when the client went away.
    fn write(&mut self, view: &EventColumns<'_>, rows: &RecordBatch, range: Range<usize>, unsealed: bool) -> Result<bool, Failure> {
        let count = range.len() as u64;
        match self.format {
            Format::Jsonl | Format::Csv => {
                for row in range {
                    if self.format == Format::Jsonl {
                        encode::write_json_row(&mut self.text, view.values(row));
                    } else {
                        encode::write_csv_row(&mut self.text, view.values(row));
                    }
                    self.rows += 1;
                    self.unsealed_rows += u64::from(unsealed);
                    if self.text.len() >= CHUNK_BYTES && !self.flush()? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Format::Parquet => {
                self.slices.push(rows.slice(range.start, range.len()));
                self.rows += count;
                self.unsealed_rows += if unsealed { count } else { 0 };
                let pending: usize = self.slices.iter().map(RecordBatch::num_rows).sum();
                if pending >= PARQUET_ROWS { self.flush() } else { Ok(true) }
            }
        }
    }

    /// Hands what is buffered on as a piece; false when the client went away.
    fn flush(&mut self) -> Result<bool, Failure> {
        if self.rows == 0 {
            return Ok(true);
        }
        let data = match self.format {
            Format::Jsonl | Format::Csv => PieceData::Text(std::mem::replace(&mut self.text, Vec::with_capacity(CHUNK_BYTES + 64 * 1024))),
            Format::Parquet => {
                let rows = arrow::compute::concat_batches(&batch::schema(), &self.slices)
                    .map_err(|error| Failure::Encode(encode::Error::Encode(error.to_string())))?;
                self.slices.clear();
                PieceData::Rows(rows)
            }
        };
        let piece = Piece { data, rows: std::mem::take(&mut self.rows), unsealed_rows: std::mem::take(&mut self.unsealed_rows) };
        Ok((self.emit)(piece))
    }
}
