//! One log (DESIGN §1): WAL with group commit, the open batch, idempotency, and the sealer that
//! turns cut batches into Parquet objects, ledger entries and signed checkpoints.
//!
//! Threads: a dedicated OS thread owns the WAL file and the idempotency index; appends reach it
//! over a channel, and everything queued while it fsyncs is written and synced together (one
//! fdatasync per group; every waiter answered after it). The sealer is a tokio task that pushes
//! CPU work (Parquet, hashing) onto the blocking pool.

use crate::batch::{self, BuiltBatch};
use crate::checkpoint::{self, Signer};
use crate::event::{EventRecord, Seq};
use crate::ledger::{self, LedgerEntry};
use crate::merkle::{self, Hash};
use crate::metrics::{self, METRICS};
use crate::paths;
use crate::store::{self, ObjectStore, PutOptions, RetentionPolicy};
use crate::wal::{self, WalFiles};
use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Appends queued beyond this many events wait for the next group.
const MAX_GROUP_EVENTS: usize = 20_000;
const COMMAND_QUEUE: usize = 4096;
/// A fully committed active segment is rotated away once it holds this much.
const WAL_ROTATE_MIN_BYTES: u64 = 1024 * 1024;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log {log}: {source}")]
    Wal { log: String, source: wal::Error },
    #[error("log {log}: {source}")]
    Store { log: String, source: store::Error },
    #[error("log {log}: {source}")]
    Key { log: String, source: checkpoint::Error },
    #[error("log {log}: ledger entry {key} is invalid: {reason}")]
    Ledger { log: String, key: String, reason: String },
    #[error("log {log}: {reason}")]
    Archive { log: String, reason: String },
    #[error("log {log} is fenced: {reason}")]
    Fenced { log: String, reason: String },
    #[error("log {log} stopped accepting writes after a write-ahead-log failure: {reason}")]
    Failed { log: String, reason: String },
    #[error("log {log} is shutting down")]
    ShuttingDown { log: String },
    #[error("log {log}: sealing gave up: {reason}")]
    SealAborted { log: String, reason: String },
    #[error(
        "log {log}: the write-ahead log holds {wal_bytes} bytes, at its limit of {limit} (wal_max_bytes): sealing is behind, usually because the object store is unreachable; retry later"
    )]
    WalFull { log: String, wal_bytes: u64, limit: u64 },
    #[error("log {log}: background task failed: {reason}")]
    Task { log: String, reason: String },
}

/// Everything a log needs, resolved from the config.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub name: String,
    pub origin: String,
    pub store: Arc<dyn ObjectStore>,
    pub wal_dir: PathBuf,
    pub key_path: PathBuf,
    pub seal_interval: Duration,
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    pub batch_layout: batch::BatchLayout,
    pub wal_segment_bytes: u64,
    pub idempotency_window: Duration,
    pub idempotency_max_ids: usize,
    /// Object Lock applied to every immutable object; None writes unlocked objects.
    pub retention: Option<RetentionPolicy>,
    /// Appends are refused once the WAL holds this many bytes.
    pub wal_max_bytes: u64,
}

/// What Append answers for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: Seq,
    pub id: String,
    pub duplicate: bool,
    pub received_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogStatus {
    Serving,
    Fenced(String),
    Failed(String),
    ShuttingDown,
}

enum WalCommand {
    Append { events: Vec<EventRecord>, reply: oneshot::Sender<Result<Vec<Appended>>> },
    Committed { committed_next: Seq, sealed_at: i64 },
    Stop,
}

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// 128 bits of SHA-256(tenant ‖ 0 ‖ id): compact, and no tenant can craft a collision with another's id.
fn idempotency_key(tenant_id: &str, id: &str) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update(tenant_id.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(key)
}

/// Ids of events in the WAL or sealed within the window, for Append idempotency.
struct IdempotencyIndex {
    ids: HashMap<u128, (Seq, i64)>,
    /// (seq, key) in seq order, for expiry.
    order: VecDeque<(Seq, u128)>,
    /// (end seq, sealed_at) of committed batches, oldest first.
    sealed: VecDeque<(Seq, i64)>,
    window_micros: i64,
    max_ids: usize,
    warned_cap: bool,
}

impl IdempotencyIndex {
    fn new(window: Duration, max_ids: usize) -> Self {
        IdempotencyIndex {
            ids: HashMap::new(),
            order: VecDeque::new(),
            sealed: VecDeque::new(),
            window_micros: window.as_micros().min(i64::MAX as u128) as i64,
            max_ids,
            warned_cap: false,
        }
    }

    fn get(&self, key: u128) -> Option<(Seq, i64)> {
        self.ids.get(&key).copied()
    }

    fn insert(&mut self, key: u128, seq: Seq, received_at: i64) {
        if self.ids.insert(key, (seq, received_at)).is_none() {
            self.order.push_back((seq, key));
        }
        while self.ids.len() > self.max_ids {
            if !self.warned_cap {
                tracing::warn!(max_ids = self.max_ids, "idempotency index is full: forgetting the oldest ids early");
                self.warned_cap = true;
            }
            let Some((_, oldest)) = self.order.pop_front() else { break };
            self.ids.remove(&oldest);
        }
    }

    fn on_committed(&mut self, committed_next: Seq, sealed_at: i64) {
        self.sealed.push_back((committed_next, sealed_at));
    }

    fn expire(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.window_micros);
        while let Some(&(end, sealed_at)) = self.sealed.front() {
            if sealed_at >= horizon {
                break;
            }
            self.sealed.pop_front();
            while let Some(&(seq, key)) = self.order.front() {
                if seq >= end {
                    break;
                }
                self.order.pop_front();
                self.ids.remove(&key);
            }
        }
    }
}

/// State shared by the writer thread, the sealer and readers. Critical sections are short.
struct Shared {
    open: VecDeque<Arc<EventRecord>>,
    open_bytes: usize,
    /// The cut batch being sealed: still unsealed for readers.
    sealing: Option<Arc<Vec<Arc<EventRecord>>>>,
    entries: Vec<Arc<LedgerEntry>>,
    entry_hashes: Vec<Hash>,
    latest_checkpoint: Option<String>,
    checkpoint_etag: Option<String>,
    checkpoint_size: u64,
    status: LogStatus,
    wal_bytes: u64,
}

struct Inner {
    settings: LogSettings,
    signer: Signer,
    commands: mpsc::Sender<WalCommand>,
    shared: Mutex<Shared>,
    committed: watch::Sender<Seq>,
    seal_wakeup: Notify,
    /// One sealer at a time: batches commit strictly in order.
    seal_lock: tokio::sync::Mutex<()>,
    stop: watch::Sender<Option<tokio::time::Instant>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    sealer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Handle to a running log; cheap to clone.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Log").field("name", &self.inner.settings.name).finish()
    }
}

/// A read-only view of the committed ledger, for readers.
#[derive(Debug, Clone)]
pub struct LedgerSnapshot {
    pub entries: Vec<Arc<LedgerEntry>>,
    pub checkpoint: Option<String>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic elsewhere must not wedge every append: the state stays consistent between steps.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Log {
    /// Opens a log: loads and checks its ledger, repairs a missing checkpoint, replays the WAL,
    /// then starts the writer thread and the sealer task.
    pub async fn open(settings: LogSettings) -> Result<Log> {
        let log_name = settings.name.clone();
        let (signer, generated) = Signer::load_or_generate(&settings.key_path, &settings.origin)
            .map_err(|source| Error::Key { log: log_name.clone(), source })?;
        if generated {
            tracing::info!(log = %log_name, key_path = %settings.key_path.display(), verifier_key = %signer.verifier_key(), "generated a new checkpoint signing key");
        }
        let (entries, entry_hashes) = load_ledger(settings.store.as_ref(), &log_name).await?;
        let ledger_next = entries.last().map(|entry| entry.end_seq()).unwrap_or_default();

        let wal_dir = settings.wal_dir.clone();
        let segment_bytes = settings.wal_segment_bytes;
        let wal_error = |source| Error::Wal { log: log_name.clone(), source };
        let (replay, wal_files) = tokio::task::spawn_blocking(move || -> Result<_, wal::Error> {
            let replay = wal::replay(&wal_dir)?;
            let files = WalFiles::open(&wal_dir, &replay, ledger_next, segment_bytes)?;
            Ok((replay, files))
        })
        .await
        .map_err(|error| Error::Task { log: log_name.clone(), reason: error.to_string() })?
        .map_err(wal_error)?;
        if replay.truncated_bytes > 0 {
            tracing::warn!(log = %log_name, bytes = replay.truncated_bytes, "dropped a torn wal tail (never acknowledged)");
        }

        let mut ids = IdempotencyIndex::new(settings.idempotency_window, settings.idempotency_max_ids);
        preload_recent_ids(settings.store.as_ref(), &log_name, &entries, &mut ids, settings.idempotency_window).await?;
        let mut open = VecDeque::new();
        let mut open_bytes = 0;
        for record in replay.records {
            ids.insert(idempotency_key(&record.tenant_id, &record.id), record.seq, record.received_at);
            if record.seq >= ledger_next {
                open_bytes += record.encoded_len_hint();
                open.push_back(Arc::new(record));
            }
        }
        if !open.is_empty() {
            tracing::info!(log = %log_name, events = open.len(), first_seq = %open[0].seq, "replayed unsealed events from the wal");
        }

        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (committed, _) = watch::channel(ledger_next);
        let (stop, _) = watch::channel(None);
        let wal_bytes = wal_files.total_bytes();
        let inner = Arc::new(Inner {
            signer,
            commands,
            shared: Mutex::new(Shared {
                open,
                open_bytes,
                sealing: None,
                entries,
                entry_hashes,
                latest_checkpoint: None,
                checkpoint_etag: None,
                checkpoint_size: 0,
                status: LogStatus::Serving,
                wal_bytes,
            }),
            committed,
            seal_wakeup: Notify::new(),
            seal_lock: tokio::sync::Mutex::new(()),
            stop,
            writer_thread: Mutex::new(None),
            sealer_task: Mutex::new(None),
            settings,
        });
        let log = Log { inner };
        log.repair_checkpoints().await?;

        let writer_inner = log.inner.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wal-{log_name}"))
            .spawn(move || run_writer(writer_inner, wal_files, ids, receiver))
            .map_err(|error| Error::Task { log: log_name.clone(), reason: error.to_string() })?;
        *log.inner.writer_thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(thread);
        // Subscribed before the task exists, so a stop sent before it first runs is not missed.
        let stop = log.inner.stop.subscribe();
        let sealer = tokio::spawn(run_sealer(log.clone(), stop));
        *log.inner.sealer_task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sealer);
        Ok(log)
    }

    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    pub fn verifier_key(&self) -> String {
        self.inner.signer.verifier_key()
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.settings.store
    }

    pub fn status(&self) -> LogStatus {
        lock(&self.inner.shared).status.clone()
    }

    /// First seq not yet committed in the ledger and covered by a published checkpoint.
    pub fn committed_next(&self) -> Seq {
        *self.inner.committed.borrow()
    }

    pub fn ledger_snapshot(&self) -> LedgerSnapshot {
        let shared = lock(&self.inner.shared);
        LedgerSnapshot { entries: shared.entries.clone(), checkpoint: shared.latest_checkpoint.clone() }
    }

    /// Committed entries and unsealed events, taken under one lock: a batch moves from one to
    /// the other atomically, so a reader sees every event exactly once.
    pub fn read_snapshot(&self) -> crate::query::ReadSnapshot {
        let shared = lock(&self.inner.shared);
        let sealing = shared.sealing.iter().flat_map(|batch| batch.iter().cloned());
        crate::query::ReadSnapshot {
            log: self.name().to_string(),
            entries: shared.entries.clone(),
            unsealed: sealing.chain(shared.open.iter().cloned()).collect(),
            checkpoint: shared.latest_checkpoint.clone(),
            checkpoint_size: (shared.checkpoint_size as usize).min(shared.entries.len()),
        }
    }

    /// The committed entries covered by the latest published checkpoint, for proofs.
    pub fn proof_basis(&self) -> Option<crate::proof::ProofBasis> {
        let shared = lock(&self.inner.shared);
        let checkpoint = shared.latest_checkpoint.clone()?;
        Some(crate::proof::ProofBasis {
            log: self.name().to_string(),
            entries: shared.entries.clone(),
            entry_hashes: shared.entry_hashes.clone(),
            checkpoint,
            checkpoint_size: shared.checkpoint_size.min(shared.entries.len() as u64),
        })
    }

    pub fn verifier(&self) -> crate::checkpoint::Verifier {
        self.inner.signer.verifier()
    }

    /// Events acknowledged but not yet committed, in seq order.
    pub fn unsealed_events(&self) -> Vec<Arc<EventRecord>> {
        let shared = lock(&self.inner.shared);
        let sealing = shared.sealing.iter().flat_map(|batch| batch.iter().cloned());
        sealing.chain(shared.open.iter().cloned()).collect()
    }

    /// Total bytes of the log's WAL segments.
    pub fn wal_bytes(&self) -> u64 {
        lock(&self.inner.shared).wal_bytes
    }

    /// Whether the WAL is at its cap (appends are being refused).
    pub fn wal_full(&self) -> bool {
        self.wal_bytes() >= self.inner.settings.wal_max_bytes
    }

    /// Acknowledged events not yet committed.
    pub fn unsealed_count(&self) -> usize {
        let shared = lock(&self.inner.shared);
        shared.open.len() + shared.sealing.as_ref().map_or(0, |batch| batch.len())
    }

    fn status_error(&self, status: &LogStatus) -> Option<Error> {
        let log = self.name().to_string();
        match status {
            LogStatus::Serving => None,
            LogStatus::Fenced(reason) => Some(Error::Fenced { log, reason: reason.clone() }),
            LogStatus::Failed(reason) => Some(Error::Failed { log, reason: reason.clone() }),
            LogStatus::ShuttingDown => Some(Error::ShuttingDown { log }),
        }
    }

    /// Appends validated events (seq and received_at are assigned here) and returns once they
    /// are fsync'd to the WAL.
    pub async fn append(&self, events: Vec<EventRecord>) -> Result<Vec<Appended>> {
        if let Some(error) = self.status_error(&self.status()) {
            return Err(error);
        }
        let (reply, answer) = oneshot::channel();
        let shutting_down = || Error::ShuttingDown { log: self.name().to_string() };
        self.inner.commands.send(WalCommand::Append { events, reply }).await.map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }

    /// Waits until every seq below `end` is committed and covered by a published checkpoint.
    pub async fn wait_committed(&self, end: Seq) -> Result<()> {
        let mut committed = self.inner.committed.subscribe();
        loop {
            if *committed.borrow_and_update() >= end {
                return Ok(());
            }
            if let Some(error) = self.status_error(&self.status()) {
                return Err(error);
            }
            if committed.changed().await.is_err() {
                return Err(Error::ShuttingDown { log: self.name().to_string() });
            }
        }
    }

    /// Seals everything acknowledged so far, now.
    pub async fn seal_now(&self) -> Result<()> {
        self.seal_pending(false).await
    }

    /// Stops accepting appends, seals what is open (giving up after `timeout`: the events stay
    /// in the WAL for the next start) and stops the writer thread.
    pub async fn shutdown(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.inner.stop.send_replace(Some(deadline));
        let sealer = self.inner.sealer_task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(sealer) = sealer {
            let _ = sealer.await;
        }
        let sealed = self.seal_pending(false).await;
        {
            let mut shared = lock(&self.inner.shared);
            if shared.status == LogStatus::Serving {
                shared.status = LogStatus::ShuttingDown;
            }
        }
        let _ = self.inner.commands.send(WalCommand::Stop).await;
        let thread = self.inner.writer_thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        sealed
    }

    fn stop_deadline(&self) -> Option<tokio::time::Instant> {
        *self.inner.stop.borrow()
    }

    /// Cuts the front of the open batch, up to the caps.
    fn cut(&self, only_full: bool) -> Option<Arc<Vec<Arc<EventRecord>>>> {
        let settings = &self.inner.settings;
        let mut shared = lock(&self.inner.shared);
        if shared.sealing.is_some() || shared.open.is_empty() {
            return shared.sealing.clone();
        }
        let full = shared.open.len() >= settings.batch_max_events || shared.open_bytes >= settings.batch_max_bytes;
        if only_full && !full {
            return None;
        }
        let mut records = Vec::new();
        let mut bytes = 0;
        while let Some(record) = shared.open.front() {
            let size = record.encoded_len_hint();
            if !records.is_empty() && (records.len() >= settings.batch_max_events || bytes + size > settings.batch_max_bytes) {
                break;
            }
            bytes += size;
            if let Some(record) = shared.open.pop_front() {
                records.push(record);
            }
        }
        shared.open_bytes -= bytes;
        let batch = Arc::new(records);
        shared.sealing = Some(batch.clone());
        Some(batch)
    }

    /// Seals cut batches until nothing (or, with `only_full`, nothing full) is open.
    async fn seal_pending(&self, only_full: bool) -> Result<()> {
        let _sealing = self.inner.seal_lock.lock().await;
        loop {
            if let Some(error) = self.status_error(&self.status())
                && !matches!(error, Error::ShuttingDown { .. })
            {
                return Err(error);
            }
            let Some(records) = self.cut(only_full) else { return Ok(()) };
            self.seal_batch(records).await?;
        }
    }

    /// Retries `operation` with exponential backoff and jitter until it succeeds, fails for
    /// good, or the shutdown deadline passes.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, store::Error>>,
    {
        let mut delay = RETRY_MIN;
        let mut attempts = 0u32;
        loop {
            match operation().await {
                Ok(value) => {
                    if attempts > 0 {
                        tracing::info!(log = %self.name(), what, attempts, "object store recovered");
                    }
                    return Ok(value);
                }
                // Conflicts and bad requests are answers, not outages: the caller decides.
                Err(error) if !error.is_transient() => {
                    let operation = metrics::StoreOperation { log: self.name().to_string(), operation: what.to_string() };
                    METRICS.store_errors.get_or_create(&operation).inc();
                    return Err(Error::Store { log: self.name().to_string(), source: error });
                }
                Err(error) => {
                    attempts += 1;
                    let operation = metrics::StoreOperation { log: self.name().to_string(), operation: what.to_string() };
                    METRICS.store_errors.get_or_create(&operation).inc();
                    METRICS.store_retries.get_or_create(&operation).inc();
                    let backlog = lock(&self.inner.shared).open.len();
                    tracing::warn!(log = %self.name(), what, attempts, backlog_events = backlog, %error, retry_in_ms = delay.as_millis() as u64, "object store call failed, retrying");
                    if let Some(deadline) = self.stop_deadline()
                        && tokio::time::Instant::now() + delay > deadline
                    {
                        return Err(Error::SealAborted { log: self.name().to_string(), reason: format!("{what}: {error}") });
                    }
                    let jitter = Duration::from_millis(rand::random::<u64>() % (delay.as_millis() as u64 / 2 + 1));
                    tokio::time::sleep(delay + jitter).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn fence(&self, reason: String) -> Error {
        tracing::error!(log = %self.name(), %reason, "log fenced: another writer owns it; this process stops writing it");
        lock(&self.inner.shared).status = LogStatus::Fenced(reason.clone());
        METRICS.log_fenced.get_or_create(&metrics::log_label(self.name())).set(1);
        self.inner.committed.send_modify(|_| {});
        Error::Fenced { log: self.name().to_string(), reason }
    }

    async fn seal_batch(&self, records: Arc<Vec<Arc<EventRecord>>>) -> Result<()> {
        let log = self.name().to_string();
        let started = std::time::Instant::now();
        let sealed_at = Utc::now();
        let sealed_at_micros = sealed_at.timestamp_micros();
        let cpu_records = records.clone();
        let layout = self.inner.settings.batch_layout;
        let built: BuiltBatch = tokio::task::spawn_blocking(move || batch::build_batch(&cpu_records, layout))
            .await
            .map_err(|error| Error::Task { log: log.clone(), reason: error.to_string() })?
            .map_err(|error| Error::Archive { log: log.clone(), reason: format!("cannot encode batch: {error}") })?;
        let store = self.inner.settings.store.clone();
        let put_options = self.put_options();
        let (index, prev) = {
            let shared = lock(&self.inner.shared);
            (shared.entries.len() as u64, shared.entry_hashes.last().copied().unwrap_or(ledger::GENESIS_PREV))
        };

        // The batch object: a fresh random attempt id per try, so an orphan of an earlier try
        // (crash between the two puts) never collides.
        let (object, version) = loop {
            let key = paths::batch_key(&log, index, rand::random(), sealed_at);
            let result =
                self.with_retries("put batch", || store::put_immutable(store.as_ref(), &key, built.bytes.clone(), &put_options)).await;
            match result {
                Ok(put) => break (key, put.version),
                Err(Error::Store { source: store::Error::AlreadyExists { .. }, .. }) => continue,
                Err(error) => return Err(error),
            }
        };

        let entry = LedgerEntry {
            log: log.clone(),
            index,
            prev,
            object,
            version,
            sha256: built.sha256,
            size: built.bytes.len() as u64,
            first_seq: built.first_seq,
            count: built.count,
            root: built.root,
            min_occurred_at: built.min_occurred_at,
            max_occurred_at: built.max_occurred_at,
            min_received_at: built.min_received_at,
            max_received_at: built.max_received_at,
            sealed_at: sealed_at_micros,
            tenants: built.tenants.clone(),
        };
        let text = entry.to_json_text();
        let entry_key = paths::ledger_entry_key(&log, index);
        // The commit point: create-only, so a second writer's put of this index fails here.
        self.put_owned_object("ledger entry", &entry_key, bytes::Bytes::from(text.clone())).await?;
        let entry_hash = ledger::entry_hash(text.as_bytes());
        let end = entry.end_seq();
        {
            let mut shared = lock(&self.inner.shared);
            shared.entries.push(Arc::new(entry));
            shared.entry_hashes.push(entry_hash);
            shared.sealing = None;
        }
        let _ = self.inner.commands.send(WalCommand::Committed { committed_next: end, sealed_at: sealed_at_micros }).await;
        self.write_checkpoint(index + 1).await?;
        // Published only with its checkpoint, so a waiter can fetch a proof at once.
        self.inner.committed.send_replace(end);
        let label = metrics::log_label(&log);
        METRICS.sealed_batches.get_or_create(&label).inc();
        METRICS.sealed_events.get_or_create(&label).inc_by(built.count);
        METRICS.seal_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        METRICS.batch_events.get_or_create(&label).observe(built.count as f64);
        tracing::info!(
            log = %log, index, first_seq = %built.first_seq, count = built.count, bytes = built.bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64, "sealed batch"
        );
        Ok(())
    }

    /// Create-only put of an object only this log's writer may write (a ledger entry, a
    /// checkpoint note): other bytes already at the key mean another writer owns the log.
    async fn put_owned_object(&self, what: &str, key: &str, body: bytes::Bytes) -> Result<()> {
        let store = &self.inner.settings.store;
        let put_options = self.put_options();
        match self.with_retries(what, || store::put_immutable(store.as_ref(), key, body.clone(), &put_options)).await {
            Ok(_) => Ok(()),
            Err(Error::Store { source: store::Error::AlreadyExists { .. }, .. }) => {
                Err(self.fence(format!("{what} {key} was written by another process")))
            }
            Err(error) => Err(error),
        }
    }

    /// Retain-until is counted from each write.
    fn put_options(&self) -> PutOptions {
        RetentionPolicy::put_options(self.inner.settings.retention)
    }

    fn sign_checkpoint_at(&self, size: u64) -> String {
        let shared = lock(&self.inner.shared);
        let size = (size as usize).min(shared.entry_hashes.len());
        self.inner.signer.sign_checkpoint(size as u64, &merkle::root(&shared.entry_hashes[..size]))
    }

    /// Writes the immutable note for `size`, then moves `{log}/checkpoint` to it with If-Match.
    async fn write_checkpoint(&self, size: u64) -> Result<()> {
        let log = self.name().to_string();
        let store = self.inner.settings.store.clone();
        let note = self.sign_checkpoint_at(size);
        let note_key = paths::checkpoint_note_key(&log, size);
        let body = bytes::Bytes::from(note.clone());
        self.put_owned_object("checkpoint", &note_key, body.clone()).await?;
        let latest_key = paths::latest_checkpoint_key(&log);
        loop {
            let expected = lock(&self.inner.shared).checkpoint_etag.clone();
            let replaced =
                self.with_retries("replace latest checkpoint", || store.put_if_match(&latest_key, body.clone(), expected.as_deref())).await;
            match replaced {
                Ok(put) => {
                    let mut shared = lock(&self.inner.shared);
                    shared.checkpoint_etag = Some(put.etag);
                    shared.latest_checkpoint = Some(note);
                    shared.checkpoint_size = size;
                    return Ok(());
                }
                Err(Error::Store { source: store::Error::PreconditionFailed { .. }, .. }) => {
                    // Our previous answer may have been lost: re-read, and only move forward.
                    let (current, current_size) = self.read_latest_checkpoint().await?;
                    if current_size > size {
                        return Err(self.fence(format!("{latest_key} is at size {current_size}, beyond this writer's {size}")));
                    }
                    lock(&self.inner.shared).checkpoint_etag = current;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// (etag, size) of `{log}/checkpoint`, or (None, 0) when absent.
    async fn read_latest_checkpoint(&self) -> Result<(Option<String>, u64)> {
        let (etag, checkpoint) = self.read_latest_checkpoint_note().await?;
        Ok((etag, checkpoint.map(|checkpoint| checkpoint.size).unwrap_or(0)))
    }

    /// `{log}/checkpoint` with its etag, its signature checked against this log's key.
    async fn read_latest_checkpoint_note(&self) -> Result<(Option<String>, Option<checkpoint::Checkpoint>)> {
        let log = self.name().to_string();
        let store = self.inner.settings.store.clone();
        let key = paths::latest_checkpoint_key(&log);
        let fetched = self
            .with_retries("read latest checkpoint", || async {
                match store.get(&key, None).await {
                    Ok(body) => Ok(Some((body, store.head(&key, None).await?))),
                    Err(store::Error::NotFound { .. }) => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .await?;
        let Some((body, meta)) = fetched else { return Ok((None, None)) };
        let text =
            String::from_utf8(body.to_vec()).map_err(|_| Error::Archive { log: log.clone(), reason: format!("{key} is not utf-8") })?;
        let checkpoint = self
            .inner
            .signer
            .verifier()
            .verify_checkpoint(&text)
            .map_err(|error| Error::Archive { log: log.clone(), reason: format!("{key}: {error} (was the signing key replaced?)") })?;
        Ok((meta.etag, Some(checkpoint)))
    }

    /// After a crash between the ledger put and the checkpoint puts, writes what is missing.
    async fn repair_checkpoints(&self) -> Result<()> {
        let log = self.name().to_string();
        let (etag, stored) = self.read_latest_checkpoint_note().await?;
        let size = stored.as_ref().map(|checkpoint| checkpoint.size).unwrap_or(0);
        let ledger_size = lock(&self.inner.shared).entries.len() as u64;
        if size > ledger_size {
            return Err(Error::Archive {
                log,
                reason: format!(
                    "the latest checkpoint covers {size} ledger entries but only {ledger_size} exist: the ledger was truncated; run `auditum verify`"
                ),
            });
        }
        // The stored head must sign the ledger we loaded before either is trusted.
        if let Some(checkpoint) = &stored {
            let root = merkle::root(&lock(&self.inner.shared).entry_hashes[..size as usize]);
            if checkpoint.root != root {
                let key = paths::latest_checkpoint_key(&log);
                return Err(Error::Archive {
                    log,
                    reason: format!("{key} signs a root other than the ledger's at size {size}; run `auditum verify`"),
                });
            }
        }
        {
            let mut shared = lock(&self.inner.shared);
            shared.checkpoint_etag = etag;
            shared.checkpoint_size = size;
        }
        for missing in (size + 1)..=ledger_size {
            tracing::info!(log = %log, size = missing, "writing missing checkpoint");
            self.write_checkpoint(missing).await?;
        }
        if size == ledger_size && size > 0 {
            lock(&self.inner.shared).latest_checkpoint = Some(self.sign_checkpoint_at(size));
        }
        Ok(())
    }
}

/// Reads every ledger entry and checks the chain with the verifier's rules (indexes dense from
/// 0, `prev` links, seqs contiguous). A broken chain refuses to start: writing on top of it
/// would bury the evidence.
pub async fn load_ledger(store: &dyn ObjectStore, log: &str) -> Result<(Vec<Arc<LedgerEntry>>, Vec<Hash>)> {
    let mut report = crate::verify::Report::default();
    let (entries, hashes) =
        crate::verify::read_ledger(store, log, &mut report).await.map_err(|source| Error::Store { log: log.to_string(), source })?;
    if let Some(problem) = report.problems.into_iter().next() {
        return Err(Error::Ledger { log: log.to_string(), key: problem.object, reason: format!("{}: {}", problem.kind, problem.detail) });
    }
    Ok((entries.into_iter().map(Arc::new).collect(), hashes))
}

/// Loads ids of batches sealed within the idempotency window, so a client retrying after a
/// restart still gets its original seq.
async fn preload_recent_ids(
    store: &dyn ObjectStore,
    log: &str,
    entries: &[Arc<LedgerEntry>],
    ids: &mut IdempotencyIndex,
    window: Duration,
) -> Result<()> {
    let horizon = now_micros().saturating_sub(window.as_micros().min(i64::MAX as u128) as i64);
    for entry in entries.iter().filter(|entry| entry.sealed_at >= horizon) {
        let body =
            store.get(&entry.object, entry.version.as_deref()).await.map_err(|source| Error::Store { log: log.to_string(), source })?;
        let mut rows = tokio::task::spawn_blocking(move || batch::read_idempotency_columns(body))
            .await
            .map_err(|error| Error::Task { log: log.to_string(), reason: error.to_string() })?
            .map_err(|error| Error::Archive { log: log.to_string(), reason: format!("{}: {error}", entry.object) })?;
        rows.sort_by_key(|row| row.seq);
        for row in rows {
            ids.insert(idempotency_key(&row.tenant_id, &row.id), row.seq, row.received_at);
        }
    }
    for entry in entries {
        ids.on_committed(entry.end_seq(), entry.sealed_at);
    }
    ids.expire(now_micros());
    Ok(())
}

/// The writer thread: group commit over the WAL.
fn run_writer(inner: Arc<Inner>, mut wal: WalFiles, mut ids: IdempotencyIndex, mut receiver: mpsc::Receiver<WalCommand>) {
    let log = inner.settings.name.clone();
    let mut framed = Vec::with_capacity(1 << 20);
    while let Some(first) = receiver.blocking_recv() {
        let mut commands = vec![first];
        let mut queued_events = 0;
        while queued_events < MAX_GROUP_EVENTS {
            match receiver.try_recv() {
                Ok(command) => {
                    if let WalCommand::Append { events, .. } = &command {
                        queued_events += events.len();
                    }
                    commands.push(command);
                }
                Err(_) => break,
            }
        }
        framed.clear();
        let received_at = now_micros();
        let mut next = wal.next_seq();
        let mut new_records = Vec::new();
        let mut replies = Vec::new();
        let mut committed_updates = Vec::new();
        let mut stop = false;
        let mut duplicates = 0u64;
        let status = lock(&inner.shared).status.clone();
        for command in commands {
            match command {
                WalCommand::Append { events, reply } => {
                    if status != LogStatus::Serving {
                        let reason = match status {
                            LogStatus::Fenced(_) => "fenced",
                            LogStatus::Failed(_) => "wal_failed",
                            _ => "shutting_down",
                        };
                        METRICS.append_rejected.get_or_create(&metrics::Rejection { log: log.clone(), reason: reason.into() }).inc();
                        let _ = reply.send(Err(status_to_error(&log, &status)));
                        continue;
                    }
                    // Never acknowledge what the WAL cannot keep: while sealing is blocked
                    // (object store down) the WAL grows only to its cap.
                    let wal_bytes = wal.total_bytes() + framed.len() as u64;
                    if wal_bytes >= inner.settings.wal_max_bytes {
                        METRICS.append_rejected.get_or_create(&metrics::Rejection { log: log.clone(), reason: "wal_full".into() }).inc();
                        let _ = reply.send(Err(Error::WalFull { log: log.clone(), wal_bytes, limit: inner.settings.wal_max_bytes }));
                        continue;
                    }
                    let mut results = Vec::with_capacity(events.len());
                    for mut event in events {
                        let key = idempotency_key(&event.tenant_id, &event.id);
                        if let Some((seq, original_received_at)) = ids.get(key) {
                            duplicates += 1;
                            results.push(Appended { seq, id: event.id, duplicate: true, received_at: original_received_at });
                            continue;
                        }
                        event.seq = next;
                        event.received_at = received_at;
                        next = next.next();
                        ids.insert(key, event.seq, received_at);
                        wal::encode_record(&event, &mut framed);
                        results.push(Appended { seq: event.seq, id: event.id.clone(), duplicate: false, received_at });
                        new_records.push(event);
                    }
                    replies.push((reply, results));
                }
                WalCommand::Committed { committed_next, sealed_at } => committed_updates.push((committed_next, sealed_at)),
                WalCommand::Stop => stop = true,
            }
        }
        if !new_records.is_empty() {
            if let Err(error) = wal.append_synced(&framed, new_records.len() as u64) {
                // After a failed fsync the file's state is unknown (retrying fsync can report
                // success for lost data): stop writing this log until an operator restarts it.
                let reason = error.to_string();
                tracing::error!(log = %log, %reason, "wal write failed; the log stops accepting appends");
                let status = LogStatus::Failed(reason);
                lock(&inner.shared).status = status.clone();
                for (reply, _) in replies {
                    let _ = reply.send(Err(status_to_error(&log, &status)));
                }
                continue;
            }
            let label = metrics::log_label(&log);
            METRICS.append_events.get_or_create(&label).inc_by(new_records.len() as u64);
            METRICS.append_bytes.get_or_create(&label).inc_by(framed.len() as u64);
            let full = {
                let mut shared = lock(&inner.shared);
                for record in new_records {
                    shared.open_bytes += record.encoded_len_hint();
                    shared.open.push_back(Arc::new(record));
                }
                shared.wal_bytes = wal.total_bytes();
                shared.open.len() >= inner.settings.batch_max_events || shared.open_bytes >= inner.settings.batch_max_bytes
            };
            if full {
                inner.seal_wakeup.notify_one();
            }
        }
        if duplicates > 0 {
            METRICS.append_duplicates.get_or_create(&metrics::log_label(&log)).inc_by(duplicates);
        }
        for (reply, results) in replies {
            let _ = reply.send(Ok(results));
        }
        for (committed_next, sealed_at) in committed_updates {
            ids.on_committed(committed_next, sealed_at);
            ids.expire(now_micros());
            match wal.delete_committed(committed_next, WAL_ROTATE_MIN_BYTES) {
                Ok(deleted) if deleted > 0 => tracing::debug!(log = %log, deleted, "deleted committed wal segments"),
                Ok(_) => {}
                Err(error) => tracing::warn!(log = %log, %error, "cannot delete committed wal segments; will retry after the next seal"),
            }
            lock(&inner.shared).wal_bytes = wal.total_bytes();
        }
        if stop {
            break;
        }
    }
    tracing::debug!(log = %log, "wal writer stopped");
}

fn status_to_error(log: &str, status: &LogStatus) -> Error {
    let log = log.to_string();
    match status {
        LogStatus::Fenced(reason) => Error::Fenced { log, reason: reason.clone() },
        LogStatus::Failed(reason) => Error::Failed { log, reason: reason.clone() },
        LogStatus::Serving | LogStatus::ShuttingDown => Error::ShuttingDown { log },
    }
}

/// Next instant that is a whole multiple of `interval` since the epoch ("aligned to the minute").
fn next_aligned_tick(interval: Duration) -> tokio::time::Instant {
    let interval_micros = interval.as_micros().max(1) as i64;
    let now = now_micros();
    let next = (now.div_euclid(interval_micros) + 1) * interval_micros;
    tokio::time::Instant::now() + Duration::from_micros((next - now).max(0) as u64)
}

/// Seals on every aligned tick, and as soon as the open batch is full.
async fn run_sealer(log: Log, mut stop: watch::Receiver<Option<tokio::time::Instant>>) {
    let mut only_full = false; // replayed events are sealed at once, not a whole interval later
    loop {
        if stop.borrow_and_update().is_some() {
            break;
        }
        match log.seal_pending(only_full).await {
            Ok(()) => {}
            Err(Error::Fenced { .. }) | Err(Error::Failed { .. }) => break,
            Err(error) => tracing::error!(log = %log.name(), %error, "sealing failed; will retry at the next tick"),
        }
        let tick = next_aligned_tick(log.inner.settings.seal_interval);
        only_full = tokio::select! {
            _ = tokio::time::sleep_until(tick) => false,
            _ = log.inner.seal_wakeup.notified() => true,
            _ = stop.changed() => break,
        };
    }
}

/// UTC date-time from microseconds, for display.
pub fn micros_to_datetime(micros: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(micros).single()
}
