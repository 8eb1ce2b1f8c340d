//! The export pipeline: the export is split into parts by time, read and encoded on up to
//! [`EXPORT_THREADS`] threads, and sent in order through a channel of two: a slow client slows
//! the reading instead of growing memory.

use super::encode::{self, CHUNK_BYTES, ParquetOutput};
use super::part::{PartReader, Piece, PieceData};
use super::{Failure as Error, Format, plan};
use crate::helper_threads::HelperThreads;
use crate::metrics::{METRICS, log_label};
use crate::read::{ReadSnapshot, ScanContext};
use crate::scan::{IoCounters, Predicate, ScanStats};
use auditum_format::event::EventRecord;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::mpsc;

/// The end of an export: what was sent, and the checkpoint that vouches for its sealed rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub rows: u64,
    /// SHA-256 of every chunk byte, in order (hex).
    pub sha256: String,
    pub checkpoint: String,
    pub unsealed_rows: u64,
}

#[derive(Debug)]
pub enum ExportItem {
    Chunk(Bytes),
    Summary(ExportSummary),
}

/// What one export reads.
pub struct ExportJob {
    pub context: ScanContext,
    pub io: Arc<IoCounters>,
    pub tenant_id: String,
    pub predicate: Predicate,
    pub snapshot: ReadSnapshot,
    pub include_unsealed: bool,
    pub format: Format,
    pub started: std::time::Instant,
    /// The log's keyring, unless the export is raw: rows are decrypted before encoding.
    pub decrypt: Option<Arc<auditum_keyring::Keyring>>,
}

/// Starts the export on the blocking pool; its chunks, then its summary (or an error), arrive on
/// the returned channel. Dropping the receiver cancels it.
pub fn start(job: ExportJob) -> mpsc::Receiver<Result<ExportItem, Error>> {
    let (sender, receiver) = mpsc::channel::<Result<ExportItem, Error>>(2);
    tokio::task::spawn_blocking(move || {
        let log = job.snapshot.log.clone();
        let (started, io) = (job.started, job.io.clone());
        let outcome = run(job, &sender);
        let label = log_label(&log);
        METRICS.export_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        METRICS.query_bytes_read.get_or_create(&label).inc_by(io.bytes.load(std::sync::atomic::Ordering::Relaxed));
        match outcome {
            Ok(Some(summary)) => {
                let _ = sender.blocking_send(Ok(ExportItem::Summary(summary)));
            }
            Ok(None) => tracing::info!(log = %log, "export cancelled by the client"),
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
            }
        }
    });
    receiver
}

/// Parts read at once, at most (fewer on a machine with fewer cores): the first on a thread of
/// the export's own, the others on helper threads.
const EXPORT_THREADS: usize = 4;
/// Text pieces (about [`CHUNK_BYTES`] each) a part being read may hold while an earlier part is
/// sent: what lets parts be read in parallel. Parquet pieces are record batches of
/// [`encode::PARQUET_ROWS`] rows or more, so fewer of them.
const TEXT_PIECES_AHEAD: usize = 16;
const PARQUET_PIECES_AHEAD: usize = 2;

enum PartMessage {
    Piece(Piece),
    /// The part is complete.
    Done,
    Failed(Error),
}

/// Which parts workers may read: the one being sent and up to `ahead - 1` after it (so the
/// memory read ahead is bounded by `ahead` parts' channels, however small the parts), none past
/// a part that failed, and none once the export stopped.
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
    ahead: usize,
}

struct GateState {
    sent: usize,
    last_needed: usize,
    stopped: bool,
}

impl Gate {
    fn new(ahead: usize) -> Gate {
        Gate { state: Mutex::new(GateState { sent: 0, last_needed: usize::MAX, stopped: false }), changed: Condvar::new(), ahead }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until part `index` may be read; false when it is not needed.
    fn admit(&self, index: usize) -> bool {
        let mut state = self.lock();
        loop {
            if state.stopped || index > state.last_needed {
                return false;
            }
            if index < state.sent + self.ahead {
                return true;
            }
            state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn part_sent(&self) {
        self.lock().sent += 1;
        self.changed.notify_all();
    }

    /// Part `index` failed: the export ends there, so later parts are not read.
    fn failed_at(&self, index: usize) {
        let mut state = self.lock();
        state.last_needed = state.last_needed.min(index);
        drop(state);
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// The export itself; None when the client went away.
///
/// The export is split into parts by time (see [`plan`]); worker threads take parts in order,
/// each reading and encoding one at a time into its own bounded channel, while this thread sends
/// the parts' pieces in order, hashing them. A part is taken before any later one and the part
/// being sent is always admitted by the [`Gate`], so it is always being read or done.
fn run(job: ExportJob, sender: &mpsc::Sender<Result<ExportItem, Error>>) -> Result<Option<ExportSummary>, Error> {
    let ExportJob { context, tenant_id, predicate, snapshot, include_unsealed, format, decrypt, .. } = job;
    // Sealed rows come only from batches the starting checkpoint covers, so the summary's
    // checkpoint vouches for every sealed row sent.
    let entries = &snapshot.entries[..snapshot.checkpoint_size];
    let unsealed: &[Arc<EventRecord>] = if include_unsealed { &snapshot.unsealed } else { &[] };
    let parts = plan::plan(&predicate, &tenant_id, entries, unsealed);
    let mut seen = std::collections::HashSet::new();
    crate::read::prefetch_footers(&context, parts.iter().flat_map(|part| &part.batches).filter(|entry| seen.insert(entry.index)));
    let reader = PartReader { context: &context, predicate: &predicate, format, decrypt: decrypt.as_deref() };
    let mut sink = Sink::new(format, sender)?;

    let wanted = std::thread::available_parallelism().map_or(1, |cores| cores.get()).min(EXPORT_THREADS).min(parts.len()).max(1);
    let helpers = HelperThreads::reserve(wanted - 1);
    let threads = 1 + helpers.count();
    let next_part = AtomicUsize::new(0);
    // One part more than threads: a lone worker reads the next part while the last pieces of
    // the one before are sent.
    let gate = Gate::new(threads + 1);
    let pieces_ahead = if format == Format::Parquet { PARQUET_PIECES_AHEAD } else { TEXT_PIECES_AHEAD };
    let (senders, receivers): (Vec<_>, Vec<_>) = parts
        .iter()
        .map(|_| {
            let (part_sender, part_receiver) = std::sync::mpsc::sync_channel::<PartMessage>(pieces_ahead);
            (Mutex::new(Some(part_sender)), part_receiver)
        })
        .collect();
    let work = || -> ScanStats {
        let mut scanned = ScanStats::default();
        loop {
            let index = next_part.fetch_add(1, Ordering::Relaxed);
            let (Some(part), Some(slot)) = (parts.get(index), senders.get(index)) else { break };
            let Some(part_sender) = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() else { break };
            if !gate.admit(index) {
                break;
            }
            let mut emit = |piece| part_sender.send(PartMessage::Piece(piece)).is_ok();
            match reader.read(part, &mut emit) {
                Ok(Some(stats)) => {
                    scanned.add(&stats);
                    let _ = part_sender.send(PartMessage::Done);
                }
                // The client went away.
                Ok(None) => break,
                Err(error) => {
                    gate.failed_at(index);
                    let _ = part_sender.send(PartMessage::Failed(error));
                    break;
                }
            }
        }
        // One reservation goes back per finished worker: while n workers run, n - 1 are held.
        helpers.release_one();
        scanned
    };
    let (outcome, scanned, panicked) = std::thread::scope(|scope| {
        let workers: Vec<_> =
            (0..threads).filter_map(|_| std::thread::Builder::new().name("auditum-export".into()).spawn_scoped(scope, work).ok()).collect();
        let outcome = if workers.is_empty() && !parts.is_empty() {
            Err(Error::Incomplete("no thread could be started to read the export; the export is incomplete".into()))
        } else {
            send_in_order(receivers, &mut sink, &gate)
        };
        // Workers waiting at the gate leave; those reading see their channel gone at their next
        // piece and stop.
        gate.stop();
        let mut scanned = ScanStats::default();
        let mut panicked = false;
        for worker in workers {
            match worker.join() {
                Ok(stats) => scanned.add(&stats),
                Err(_) => panicked = true,
            }
        }
        (outcome, scanned, panicked)
    });
    drop(helpers);
    // A part that died must not end in a summary that looks complete.
    if panicked && outcome.is_ok() {
        return Err(Error::Incomplete("export scan failed; the export is incomplete".into()));
    }
    if !outcome? {
        return Ok(None);
    }
    let Some((sha256, rows, unsealed_rows)) = sink.finish()? else { return Ok(None) };
    let label = log_label(&snapshot.log);
    METRICS.rows_scanned.get_or_create(&label).inc_by(scanned.rows_read);
    METRICS.export_rows.get_or_create(&label).inc_by(rows);
    Ok(Some(ExportSummary { rows, sha256, checkpoint: snapshot.checkpoint.clone().unwrap_or_default(), unsealed_rows }))
}

/// Sends every part's pieces, part after part; false when the client went away. Returning drops
/// the receivers of parts not sent, which stops their workers.
fn send_in_order(receivers: Vec<std::sync::mpsc::Receiver<PartMessage>>, sink: &mut Sink<'_>, gate: &Gate) -> Result<bool, Error> {
    for receiver in receivers {
        loop {
            match receiver.recv() {
                Ok(PartMessage::Piece(piece)) => {
                    if !sink.accept(piece)? {
                        return Ok(false);
                    }
                }
                Ok(PartMessage::Done) => {
                    gate.part_sent();
                    break;
                }
                Ok(PartMessage::Failed(error)) => return Err(error),
                Err(_) => return Err(Error::Incomplete("export scan failed; the export is incomplete".into())),
            }
        }
    }
    Ok(true)
}

/// The export's output: pieces joined or passed on as chunks of about [`CHUNK_BYTES`], counted
/// and hashed in the order sent.
struct Sink<'s> {
    out: Vec<u8>,
    parquet: Option<ParquetOutput>,
    hasher: Sha256,
    rows: u64,
    unsealed_rows: u64,
    sender: &'s mpsc::Sender<Result<ExportItem, Error>>,
}

impl<'s> Sink<'s> {
    fn new(format: Format, sender: &'s mpsc::Sender<Result<ExportItem, Error>>) -> Result<Sink<'s>, Error> {
        let mut out = Vec::new();
        let mut parquet = None;
        match format {
            Format::Csv => encode::csv_header(&mut out),
            Format::Parquet => parquet = Some(ParquetOutput::new()?),
            Format::Jsonl => {}
        }
        Ok(Sink { out, parquet, hasher: Sha256::new(), rows: 0, unsealed_rows: 0, sender })
    }

    /// False when the client went away.
    fn accept(&mut self, piece: Piece) -> Result<bool, Error> {
        self.rows += piece.rows;
        self.unsealed_rows += piece.unsealed_rows;
        match (piece.data, self.parquet.as_mut()) {
            (PieceData::Text(bytes), None) => {
                // A piece is about a chunk: passed on whole, without a copy, when nothing waits.
                if self.out.is_empty() && bytes.len() >= CHUNK_BYTES / 2 {
                    return Ok(self.send(bytes));
                }
                if self.out.len() + bytes.len() > 2 * CHUNK_BYTES {
                    let waiting = std::mem::take(&mut self.out);
                    if !self.send(waiting) {
                        return Ok(false);
                    }
                    if bytes.len() >= CHUNK_BYTES / 2 {
                        return Ok(self.send(bytes));
                    }
                }
                self.out.extend_from_slice(&bytes);
            }
            (PieceData::Rows(rows), Some(parquet)) => parquet.write(&rows, &mut self.out)?,
            _ => return Err(Error::Incomplete("export pieces of the wrong format; the export is incomplete".into())),
        }
        if self.out.len() >= CHUNK_BYTES {
            let full = std::mem::take(&mut self.out);
            return Ok(self.send(full));
        }
        Ok(true)
    }

    /// Hashes and sends bytes as chunks of at most twice [`CHUNK_BYTES`] (a Parquet row group
    /// comes out whole, and a client's default message limit is 4 MiB); false when the client
    /// went away.
    fn send(&mut self, bytes: Vec<u8>) -> bool {
        self.hasher.update(&bytes);
        let mut bytes = Bytes::from(bytes);
        while !bytes.is_empty() {
            let chunk = if bytes.len() > 2 * CHUNK_BYTES { bytes.split_to(CHUNK_BYTES) } else { std::mem::take(&mut bytes) };
            if self.sender.blocking_send(Ok(ExportItem::Chunk(chunk))).is_err() {
                return false;
            }
        }
        true
    }

    /// Sends the last bytes (the Parquet footer, CSV's header of an empty export) and returns the
    /// lowercase hex SHA-256 of everything sent, the rows and the unsealed rows; None when the
    /// client went away.
    fn finish(mut self) -> Result<Option<(String, u64, u64)>, Error> {
        if let Some(parquet) = self.parquet.take() {
            parquet.finish(&mut self.out)?;
        }
        let last = std::mem::take(&mut self.out);
        if !last.is_empty() && !self.send(last) {
            return Ok(None);
        }
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        Ok(Some((sha256, self.rows, self.unsealed_rows)))
    }
}
