//! One log (README, Architecture): WAL with group commit, the open batch, idempotency, and the sealer that
//! turns cut batches into Parquet objects, ledger entries and signed checkpoints.
//!
//! Threads: a dedicated OS thread owns the WAL file and the idempotency index; appends reach it
//! over a channel, and everything queued while it fsyncs is written and synced together (one
//! fdatasync per group; every waiter answered after it). The sealer is a tokio task that pushes
//! CPU work (Parquet, hashing) onto the blocking pool.

mod checkpoints;
pub mod holds;
/// Public only for its growth benchmark (`examples/idempotency_growth.rs`).
#[doc(hidden)]
pub mod idempotency;
mod recovery;
mod replica;
mod retry;
mod sealer;
mod unsealed;
pub mod wal;
mod writer;

pub use recovery::load_ledger;
pub use replica::ReplicaSettings;

use crate::read::OccurredWindow;
use auditum_batch as batch;
use auditum_format::checkpoint::{self, Signer, Verifier};
use auditum_format::event::{EventRecord, Seq};
use auditum_format::ledger::LedgerEntry;
use auditum_format::merkle::Hash;
use auditum_store::{self as store, ObjectStore, RetentionPolicy, StorageClass};
use holds::HoldRecord;
use idempotency::{IdempotencyIndex, idempotency_key};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use wal::WalFiles;
use writer::WalCommand;

pub type Result<T, E = Error> = std::result::Result<T, E>;

const COMMAND_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log {log}: {source}")]
    Wal { log: String, source: wal::Error },
    #[error("log {log}: {source}")]
    Store { log: String, source: store::Error },
    #[error("log {log}: {source}")]
    Key { log: String, source: checkpoint::Error },
    #[error("log {log}: {source}")]
    Lock { log: String, source: crate::dir_lock::Error },
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
    #[error("log {log}: the object store has not answered yet: {reason}")]
    StoreUnavailable { log: String, reason: String },
    #[error("log {log}: background task failed: {reason}")]
    Task { log: String, reason: String },
    #[error("log {log}: keyring: {source}")]
    Keyring { log: String, source: auditum_keyring::Error },
    #[error("log {log}: this is a read-only node (serve --read-only): {operation} is done by the log's writer")]
    ReadOnly { log: String, operation: &'static str },
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
    /// Storage class batch objects are written in; None is the store's default.
    pub batch_storage_class: Option<StorageClass>,
    /// The keyring and the columns encrypted before the WAL (DESIGN §14); None: nothing is.
    pub encryption: Option<Encryption>,
}

/// A log's keyring and the columns it encrypts (possibly none: a keyring without
/// `encrypt_fields` still decrypts what earlier settings encrypted, and still erases).
#[derive(Clone)]
pub struct Encryption {
    pub keyring: Arc<auditum_keyring::Keyring>,
    pub columns: auditum_keyring::EncryptedColumns,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Encryption").field("columns", &self.columns.names()).finish()
    }
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
    /// Started from its WAL while the store did not answer: appends are taken, reads and
    /// seals wait until the store answers and the ledger checks out.
    Pending(String),
    Fenced(String),
    Failed(String),
    ShuttingDown,
    /// A read-only node found a checkpoint that fails verification: it keeps serving the last
    /// verified state (DESIGN §13) and reports the log not serving until a valid one appears.
    Unverified(String),
}

impl LogStatus {
    /// The error an append meets in this status; None while serving.
    fn error(&self, log: &str) -> Option<Error> {
        let log = log.to_string();
        match self {
            LogStatus::Serving | LogStatus::Pending(_) | LogStatus::Unverified(_) => None,
            LogStatus::Fenced(reason) => Some(Error::Fenced { log, reason: reason.clone() }),
            LogStatus::Failed(reason) => Some(Error::Failed { log, reason: reason.clone() }),
            LogStatus::ShuttingDown => Some(Error::ShuttingDown { log }),
        }
    }
}

/// State shared by the writer thread, the sealer and readers. Critical sections are short.
struct Shared {
    open: VecDeque<Arc<EventRecord>>,
    open_bytes: usize,
    /// The cut batch being sealed: still unsealed for readers.
    sealing: Option<Arc<Vec<Arc<EventRecord>>>>,
    /// The batch committed last, kept a few seconds while followers run (see [`Log::tail`]).
    recently_sealed: Option<RecentlySealed>,
    /// The events of `sealing` and `open`, by tenant.
    unsealed_by_tenant: unsealed::UnsealedByTenant,
    entries: Vec<Arc<LedgerEntry>>,
    entry_hashes: Vec<Hash>,
    latest_checkpoint: Option<String>,
    checkpoint_etag: Option<String>,
    checkpoint_size: u64,
    status: LogStatus,
    wal_bytes: u64,
}

impl Shared {
    /// Every unsealed event in `window` (the batch being sealed, then the open one), in seq order.
    fn all_unsealed(&self, window: OccurredWindow) -> Vec<Arc<EventRecord>> {
        let sealing = self.sealing.iter().flat_map(|batch| batch.iter());
        sealing.chain(self.open.iter()).filter(|record| window.contains(record.occurred_at)).cloned().collect()
    }
}

/// The events of the batch committed last, still in memory: a follower a few events behind at
/// the commit reads them from here instead of reading and decoding the whole batch from the store.
struct RecentlySealed {
    entry: Arc<LedgerEntry>,
    /// In seq order, exactly the entry's events.
    records: Arc<Vec<Arc<EventRecord>>>,
}

/// How long a committed batch's events stay in memory for followers. At a high rate the next
/// commit replaces them sooner; a follower further behind reads the store, as before.
const RECENTLY_SEALED_KEPT: std::time::Duration = std::time::Duration::from_secs(5);

/// A follower counted by [`Log::register_follower`].
pub struct FollowerRegistration {
    inner: Arc<Inner>,
}

impl Drop for FollowerRegistration {
    fn drop(&mut self) {
        self.inner.followers.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A writer signs its checkpoints; a read-only node holds only the pinned key that checks them.
enum CheckpointKey {
    Signing(Signer),
    Pinned(Verifier),
}

struct Inner {
    settings: LogSettings,
    /// Held from open until shutdown has stopped the writer thread.
    wal_lock: Mutex<Option<crate::dir_lock::DirLock>>,
    key: CheckpointKey,
    /// Set on a read-only node: how it follows the writer's checkpoints.
    replica: Option<replica::ReplicaState>,
    commands: mpsc::Sender<WalCommand>,
    shared: Mutex<Shared>,
    committed: watch::Sender<Seq>,
    seal_wakeup: Notify,
    /// One sealer at a time: batches commit strictly in order.
    seal_lock: tokio::sync::Mutex<()>,
    stop: watch::Sender<Option<tokio::time::Instant>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    sealer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The seq after the last durable (acknowledged) event: subscribers wait on it.
    durable_end: watch::Sender<u64>,
    /// Active legal holds; the sealer reads them for every batch.
    holds: Mutex<Vec<HoldRecord>>,
    /// One hold change at a time: a clear must see every hold set before it.
    hold_changes: tokio::sync::Mutex<()>,
    /// Followers of this log now: a committed batch stays in memory only while there are some.
    followers: std::sync::atomic::AtomicUsize,
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

/// A log's key prefixes as lifecycle rules and their checks see them.
pub fn log_keys(log: &str) -> auditum_store::lifecycle::LogKeys {
    use auditum_format::paths;
    auditum_store::lifecycle::LogKeys {
        log: log.to_string(),
        batches: paths::batches_prefix(log),
        kept_forever: paths::kept_forever_prefixes(log),
    }
}

/// What a subscriber reads next (see [`Log::tail`]).
#[derive(Debug, Clone)]
pub enum TailView {
    /// The seq is in this committed batch.
    Sealed(Arc<LedgerEntry>),
    /// The seq is in this committed batch, whose events are still in memory: up to `max` of
    /// them from the seq on, in seq order.
    SealedInMemory { entry: Arc<LedgerEntry>, events: Vec<Arc<EventRecord>> },
    /// Durable events from the seq on (possibly none), and the seq after the last durable one.
    Unsealed { events: Vec<Arc<EventRecord>>, durable_end: u64 },
    /// The seq is not readable yet (the store has not answered since the start).
    NotYet,
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
        // First, before reading anything: one writer per WAL.
        let wal_lock =
            crate::dir_lock::DirLock::acquire(&settings.wal_dir).map_err(|source| Error::Lock { log: log_name.clone(), source })?;
        let (signer, generated) = Signer::load_or_generate(&settings.key_path, &settings.origin)
            .map_err(|source| Error::Key { log: log_name.clone(), source })?;
        if generated {
            tracing::info!(log = %log_name, key_path = %settings.key_path.display(), verifier_key = %signer.verifier_key(), "generated a new checkpoint signing key");
        }
        let wal_dir = settings.wal_dir.clone();
        let replay = tokio::task::spawn_blocking(move || wal::replay(&wal_dir))
            .await
            .map_err(|error| Error::Task { log: log_name.clone(), reason: error.to_string() })?
            .map_err(|source| Error::Wal { log: log_name.clone(), source })?;
        if replay.truncated_bytes > 0 {
            tracing::warn!(log = %log_name, bytes = replay.truncated_bytes, "dropped a torn wal tail (never acknowledged)");
        }
        let replay_first = replay.records.first().map(|record| record.seq);
        let window = settings.idempotency_window;
        let ready = recovery::ready_check(&settings);
        // The store's view first; if the store does not answer, the log starts from its WAL and
        // completes the start in the background (see `complete_pending_start`).
        let (store_state, pending) = match recovery::read_store_state(settings.store.as_ref(), &ready, window).await {
            Ok(state) => (Some(state), None),
            Err(Error::Store { source, .. }) if source.is_transient() => {
                let Some(end) = replay.end_seq else {
                    return Err(Error::StoreUnavailable {
                        log: log_name.clone(),
                        reason: format!(
                            "no local write-ahead log to continue from, and the store does not answer ({source}); start again once it does"
                        ),
                    });
                };
                tracing::warn!(log = %log_name, %source, wal_end_seq = %end, "the store does not answer: accepting appends from the wal's end, reads wait for the store");
                (None, Some((source.to_string(), end)))
            }
            Err(error) => return Err(error),
        };
        // Pending, the WAL is taken as it is: its first record is where the ledger must end.
        let ledger_next = match &store_state {
            Some(state) => state.ledger_next(),
            None => replay_first.or(replay.end_seq).unwrap_or_default(),
        };
        let (entries, entry_hashes) =
            store_state.as_ref().map(|state| (state.entries.clone(), state.entry_hashes.clone())).unwrap_or_default();
        let wal_dir = settings.wal_dir.clone();
        let segment_bytes = settings.wal_segment_bytes;
        let (replay, wal_files) = tokio::task::spawn_blocking(move || -> Result<_, wal::Error> {
            let files = WalFiles::open(&wal_dir, &replay, ledger_next, segment_bytes)?;
            Ok((replay, files))
        })
        .await
        .map_err(|error| Error::Task { log: log_name.clone(), reason: error.to_string() })?
        .map_err(|source| Error::Wal { log: log_name.clone(), source })?;

        let mut ids = IdempotencyIndex::new(settings.idempotency_window, settings.idempotency_max_ids);
        if let Some(state) = &store_state {
            state.apply_to(&mut ids);
        }
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
        let mut unsealed_by_tenant = unsealed::UnsealedByTenant::default();
        open.iter().for_each(|record| unsealed_by_tenant.push(record));

        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (committed, _) = watch::channel(ledger_next);
        let (durable_end, _) = watch::channel(open.back().map(|record: &Arc<EventRecord>| record.seq.0 + 1).unwrap_or(ledger_next.0));
        let (stop, _) = watch::channel(None);
        let wal_bytes = wal_files.total_bytes();
        let inner = Arc::new(Inner {
            wal_lock: Mutex::new(Some(wal_lock)),
            key: CheckpointKey::Signing(signer),
            replica: None,
            commands,
            shared: Mutex::new(Shared {
                open,
                open_bytes,
                sealing: None,
                recently_sealed: None,
                unsealed_by_tenant,
                entries,
                entry_hashes,
                latest_checkpoint: None,
                checkpoint_etag: None,
                checkpoint_size: 0,
                status: match &pending {
                    Some((reason, _)) => LogStatus::Pending(reason.clone()),
                    None => LogStatus::Serving,
                },
                wal_bytes,
            }),
            committed,
            seal_wakeup: Notify::new(),
            seal_lock: tokio::sync::Mutex::new(()),
            stop,
            writer_thread: Mutex::new(None),
            sealer_task: Mutex::new(None),
            durable_end,
            holds: Mutex::new(store_state.as_ref().map(|state| state.holds.clone()).unwrap_or_default()),
            hold_changes: tokio::sync::Mutex::new(()),
            followers: Default::default(),
            settings,
        });
        let log = Log { inner };
        if pending.is_none() {
            log.repair_checkpoints().await?;
        }

        let writer_inner = log.inner.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wal-{log_name}"))
            .spawn(move || writer::run_writer(writer_inner, wal_files, ids, receiver))
            .map_err(|error| Error::Task { log: log_name.clone(), reason: error.to_string() })?;
        *log.inner.writer_thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(thread);
        // Subscribed before the task exists, so a stop sent before it first runs is not missed.
        let stop = log.inner.stop.subscribe();
        let sealer = tokio::spawn(sealer::run_sealer(log.clone(), stop));
        tokio::spawn(writer::run_recovery_probe(log.clone(), log.inner.stop.subscribe()));
        if let Some((_, wal_end)) = pending {
            tokio::spawn(recovery::complete_pending_start(log.clone(), replay_first, wal_end));
        }
        *log.inner.sealer_task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sealer);
        Ok(log)
    }

    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    pub fn verifier_key(&self) -> String {
        match &self.inner.key {
            CheckpointKey::Signing(signer) => signer.verifier_key(),
            CheckpointKey::Pinned(verifier) => verifier.verifier_key(),
        }
    }

    /// Whether this is a read-only node's view of the log (DESIGN §13).
    pub fn is_read_only(&self) -> bool {
        self.inner.replica.is_some()
    }

    /// Refuses what only the log's writer does, on a read-only node.
    pub fn require_writer(&self, operation: &'static str) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly { log: self.name().to_string(), operation });
        }
        Ok(())
    }

    /// Object Lock retention of the log's immutable objects.
    pub fn retention(&self) -> Option<RetentionPolicy> {
        self.inner.settings.retention
    }

    /// The log's active legal holds, oldest first.
    pub fn active_holds(&self) -> Vec<HoldRecord> {
        self.inner.holds.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Waits for an in-flight seal to commit and keeps the next from starting while held: a hold
    /// change takes it so that no batch is put with a stale view of the active holds.
    pub async fn pause_sealing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.seal_lock.lock().await
    }

    /// Serializes hold changes: held while one is written and applied.
    pub async fn hold_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.hold_changes.lock().await
    }

    /// A hold just recorded: batches sealed from now on in its range are put held.
    pub fn add_hold(&self, record: HoldRecord) {
        self.inner.holds.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(record);
    }

    /// Holds just cleared.
    pub fn remove_holds(&self, ids: &[String]) {
        self.inner.holds.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|hold| !ids.contains(&hold.id));
    }

    /// Whether an active hold covers a batch with these bounds and tenants.
    fn held(&self, min_occurred_at: i64, max_occurred_at: i64, tenants: Option<&[String]>) -> bool {
        let holds = self.inner.holds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        holds.iter().any(|hold| hold.covers(min_occurred_at, max_occurred_at, tenants))
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.settings.store
    }

    /// The log's keyring and encrypted columns, when it has a keyring.
    pub fn encryption(&self) -> Option<&Encryption> {
        self.inner.settings.encryption.as_ref()
    }

    /// Reads need the store's ledger: refused while the log's start is pending.
    pub fn require_store(&self) -> Result<()> {
        if self.is_read_only() {
            return self.require_verified();
        }
        match self.status() {
            LogStatus::Pending(reason) => Err(Error::StoreUnavailable { log: self.name().to_string(), reason }),
            _ => Ok(()),
        }
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

    /// Committed entries and the unsealed events of `tenant_id` ("" for every tenant) that may
    /// fall in `window` (every one that does, possibly others), taken under one lock: a batch
    /// moves from one to the other atomically, so a reader sees every event exactly once.
    pub fn read_snapshot(&self, tenant_id: &str, window: OccurredWindow) -> crate::read::ReadSnapshot {
        let shared = lock(&self.inner.shared);
        let unsealed = if tenant_id.is_empty() { shared.all_unsealed(window) } else { shared.unsealed_by_tenant.of(tenant_id, window) };
        crate::read::ReadSnapshot {
            log: self.name().to_string(),
            entries: shared.entries.clone(),
            unsealed,
            checkpoint: shared.latest_checkpoint.clone(),
            checkpoint_size: (shared.checkpoint_size as usize).min(shared.entries.len()),
        }
    }

    /// What a subscriber reads next from seq `from` (DESIGN §10): the committed batch holding it,
    /// or up to `max` durable unsealed events from it on.
    pub fn tail(&self, from: u64, max: usize) -> TailView {
        let shared = lock(&self.inner.shared);
        let ledger_end = shared.entries.last().map(|entry| entry.end_seq().0).unwrap_or(0);
        if from < ledger_end {
            let position = shared.entries.partition_point(|entry| entry.end_seq().0 <= from);
            if let Some(entry) = shared.entries.get(position) {
                if let Some(recent) = shared.recently_sealed.as_ref().filter(|recent| recent.entry.index == entry.index) {
                    let start = recent.records.partition_point(|record| record.seq.0 < from);
                    let events = recent.records[start..].iter().take(max).cloned().collect();
                    return TailView::SealedInMemory { entry: entry.clone(), events };
                }
                return TailView::Sealed(entry.clone());
            }
        }
        let sealing = shared.sealing.iter().flat_map(|batch| batch.iter());
        let mut unsealed = sealing.chain(shared.open.iter()).peekable();
        let first = unsealed.peek().map(|record| record.seq.0).unwrap_or(ledger_end);
        if from < first {
            // Seqs between the ledger's end and the WAL's first record are not known yet (a
            // log started while its store did not answer).
            return TailView::NotYet;
        }
        let events: Vec<Arc<EventRecord>> = unsealed.skip((from - first) as usize).take(max).cloned().collect();
        let last = shared.open.back().or_else(|| shared.sealing.as_ref().and_then(|batch| batch.last()));
        let durable_end = last.map(|record| record.seq.0 + 1).unwrap_or(ledger_end);
        TailView::Unsealed { events, durable_end: durable_end.max(from) }
    }

    /// Counts a follower of this log while the registration lives.
    pub fn register_follower(&self) -> FollowerRegistration {
        self.inner.followers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        FollowerRegistration { inner: self.inner.clone() }
    }

    /// Keeps a just-committed batch's events in memory while the log has followers; returns the
    /// batch it replaces, for the caller to drop after releasing the lock (dropping a batch frees
    /// its events, too long to do under it), and whether it kept this one (then the caller calls
    /// [`Log::forget_recently_sealed_later`]).
    fn keep_recently_sealed(
        &self,
        shared: &mut Shared,
        entry: Arc<LedgerEntry>,
        records: Option<Arc<Vec<Arc<EventRecord>>>>,
    ) -> (Option<RecentlySealed>, bool) {
        let followed = self.inner.followers.load(std::sync::atomic::Ordering::Relaxed) > 0;
        let Some(records) = records.filter(|_| followed) else { return (shared.recently_sealed.take(), false) };
        (shared.recently_sealed.replace(RecentlySealed { entry, records }), true)
    }

    /// Forgets the kept batch `index` after [`RECENTLY_SEALED_KEPT`], unless a later commit
    /// replaced it first.
    fn forget_recently_sealed_later(&self, index: u64) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(RECENTLY_SEALED_KEPT).await;
            let Some(inner) = inner.upgrade() else { return };
            let expired = {
                let mut shared = lock(&inner.shared);
                let current = shared.recently_sealed.as_ref().is_some_and(|recent| recent.entry.index == index);
                if current { shared.recently_sealed.take() } else { None }
            };
            drop(expired);
        });
    }

    /// Notified whenever events become durable.
    pub fn watch_durable(&self) -> watch::Receiver<u64> {
        self.inner.durable_end.subscribe()
    }

    /// Notified when the log begins to stop.
    pub fn watch_stop(&self) -> watch::Receiver<Option<tokio::time::Instant>> {
        self.inner.stop.subscribe()
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

    pub fn verifier(&self) -> checkpoint::Verifier {
        match &self.inner.key {
            CheckpointKey::Signing(signer) => signer.verifier(),
            CheckpointKey::Pinned(verifier) => verifier.clone(),
        }
    }

    /// Events acknowledged but not yet committed, in seq order.
    pub fn unsealed_events(&self) -> Vec<Arc<EventRecord>> {
        lock(&self.inner.shared).all_unsealed(OccurredWindow::default())
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
        status.error(self.name())
    }

    /// Appends validated events (seq and received_at are assigned here) and returns once they
    /// are fsync'd to the WAL.
    pub async fn append(&self, events: Vec<EventRecord>) -> Result<Vec<Appended>> {
        self.append_for_subjects(events, &[]).await
    }

    /// [`Log::append`], with the data subject of each event (`subjects[i]`, or the actor when
    /// absent) whose key encrypts its personal fields.
    pub async fn append_for_subjects(&self, mut events: Vec<EventRecord>, subjects: &[Option<String>]) -> Result<Vec<Appended>> {
        self.require_writer("append")?;
        if let Some(error) = self.status_error(&self.status()) {
            return Err(error);
        }
        // Before the WAL: the plaintext of an encrypted field never reaches disk. The keys stay
        // in use until the events are durable, so an erasure waits for them.
        let mut _keys_in_use = None;
        if let Some(encryption) = &self.inner.settings.encryption
            && !encryption.columns.is_empty()
        {
            // The server's own records (meta-audit, alerts, holds, erasures; clients cannot
            // send `auditum.*`) keep their metadata readable: it holds identifiers, counts and
            // reasons, never personal data, and must outlive a tenant's erasure as evidence.
            let server_records = events.iter().all(|event| event.action.starts_with(auditum_format::rules::RESERVED_ACTION_PREFIX));
            let columns = if server_records { encryption.columns.without("metadata") } else { encryption.columns };
            _keys_in_use = Some(
                encryption
                    .keyring
                    .encrypt_records(&mut events, subjects, columns)
                    .await
                    .map_err(|source| Error::Keyring { log: self.name().to_string(), source })?,
            );
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
        self.require_writer("sealing")?;
        self.seal_pending(false).await
    }

    /// Stops accepting appends, seals what is open (giving up after `timeout`: the events stay
    /// in the WAL for the next start) and stops the writer thread.
    pub async fn shutdown(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.inner.stop.send_replace(Some(deadline));
        // The sealer, or a read-only node's follower.
        let sealer = self.inner.sealer_task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(sealer) = sealer {
            let _ = sealer.await;
        }
        if self.is_read_only() {
            lock(&self.inner.shared).status = LogStatus::ShuttingDown;
            return Ok(());
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
        // Nothing writes the WAL any more: the next process may take it, even while handles to
        // this log are still being dropped.
        drop(self.inner.wal_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
        sealed
    }

    fn stop_deadline(&self) -> Option<tokio::time::Instant> {
        *self.inner.stop.borrow()
    }
}
