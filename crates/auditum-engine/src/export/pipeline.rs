//! The export pipeline: a blocking task runs the scan on one thread and encodes and hashes on
//! another, handing rows over a small channel, and sends chunks through a channel of two: a slow
//! client slows the scan instead of growing memory.

use super::{Exporter, Failure as Error, Format};
use crate::metrics::{METRICS, log_label};
use crate::read::{ReadSnapshot, Scan, ScanContext, ScanRow};
use crate::scan::{IoCounters, Predicate};
use auditum_format::event::EventRecord;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows handed from an export's scan thread to its encoder at a time.
const EXPORT_HANDOFF_ROWS: usize = 1024;

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

/// The export itself; None when the client went away.
fn run(job: ExportJob, sender: &mpsc::Sender<Result<ExportItem, Error>>) -> Result<Option<ExportSummary>, Error> {
    let ExportJob { context, tenant_id, predicate, snapshot, include_unsealed, format, decrypt, .. } = job;
    let runtime = context.runtime.clone();
    // Sealed rows come only from batches the starting checkpoint covers, so the summary's
    // checkpoint vouches for every sealed row sent.
    let entries = &snapshot.entries[..snapshot.checkpoint_size];
    let unsealed: &[Arc<EventRecord>] = if include_unsealed { &snapshot.unsealed } else { &[] };
    let mut exporter = Exporter::new(format)?;
    // Two stages on two threads: the scan decodes rows while this thread encodes and hashes the
    // previous ones. The small channel bounds what is in flight.
    let (outcome, rows_read) = std::thread::scope(|scope| {
        let (rows_sender, rows_receiver) = std::sync::mpsc::sync_channel::<Result<Vec<ScanRow>, Error>>(4);
        let scanner = scope.spawn(move || {
            let mut scan = Scan::new(context, &tenant_id, predicate, entries, unsealed);
            let mut rows = Vec::with_capacity(EXPORT_HANDOFF_ROWS);
            // Decrypted here, on the scan's thread, so encoding never waits on the keyring.
            let decrypted = |mut rows: Vec<ScanRow>| -> Result<Vec<ScanRow>, Error> {
                if let Some(keyring) = &decrypt {
                    runtime.block_on(keyring.decrypt_each(rows.iter_mut().map(ScanRow::record_mut)))?;
                }
                Ok(rows)
            };
            loop {
                match scan.next_row() {
                    Ok(Some(row)) => {
                        rows.push(row);
                        if rows.len() == EXPORT_HANDOFF_ROWS && rows_sender.send(decrypted(std::mem::take(&mut rows))).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        let _ = rows_sender.send(decrypted(rows));
                        break;
                    }
                    Err(error) => {
                        let _ = rows_sender.send(Err(Error::Scan(error)));
                        break;
                    }
                }
            }
            scan.stats.rows_read
        });
        let encode = || -> Result<bool, Error> {
            for rows in rows_receiver {
                for row in rows? {
                    exporter.push(row)?;
                    if let Some(bytes) = exporter.take_chunk()
                        && sender.blocking_send(Ok(ExportItem::Chunk(bytes))).is_err()
                    {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
        // Returning drops the receiver, which stops the scanner at its next send.
        let outcome = encode();
        (outcome, scanner.join())
    });
    // A scan that died must not end in a summary that looks complete.
    let rows_read = rows_read.map_err(|_| Error::Incomplete("export scan failed; the export is incomplete".into()))?;
    if !outcome? {
        return Ok(None);
    }
    let (last, sha256, exporter) = exporter.finish()?;
    if !last.is_empty() && sender.blocking_send(Ok(ExportItem::Chunk(last))).is_err() {
        return Ok(None);
    }
    let label = log_label(&snapshot.log);
    METRICS.rows_scanned.get_or_create(&label).inc_by(rows_read);
    METRICS.export_rows.get_or_create(&label).inc_by(exporter.rows);
    Ok(Some(ExportSummary {
        rows: exporter.rows,
        sha256,
        checkpoint: snapshot.checkpoint.clone().unwrap_or_default(),
        unsealed_rows: exporter.unsealed_rows,
    }))
}
