//! A read-only node's view of a log (DESIGN §13): no WAL and no signing key. It follows the
//! writer by reading `{log}/checkpoint` every `follow_interval`, and serves a new state only once
//! the checkpoint's signature checks under the pinned verifier key, the new ledger entries chain
//! on from the ones it serves, their Merkle root is the signed one, and an RFC 9162 consistency
//! proof links it to the checkpoint served before. A checkpoint that fails is never served: the
//! node keeps the last verified state and reports the log not serving until a valid one appears.

use super::{CheckpointKey, Error, Inner, Log, LogSettings, LogStatus, Result, Shared, lock};
use crate::metrics::{METRICS, log_label};
use auditum_format::checkpoint::{Checkpoint, Verifier};
use auditum_format::ledger::LedgerEntry;
use auditum_format::merkle::{self, Hash};
use auditum_format::paths;
use auditum_store as store;
use futures::{StreamExt, TryStreamExt};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

/// Ledger entries fetched at once while catching up.
const ENTRY_FETCHES: usize = 16;

/// Checkpoint notes beyond the pointer looked for in one step.
const NOTES_AHEAD: u64 = 16;

/// What a read-only node needs beyond a log's settings.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// The writer's verifier key, pinned: checkpoints signed by any other key are refused.
    pub verifier: Verifier,
    /// How often `{log}/checkpoint` is read.
    pub follow_interval: Duration,
}

/// A read-only node's follow state.
pub(super) struct ReplicaState {
    follow_interval: Duration,
    progress: Mutex<Progress>,
}

struct Progress {
    /// The checkpoint served (verified), if any; None also before the first verified state.
    served: Option<Checkpoint>,
    /// Whether any state was verified yet (an empty log with no checkpoint counts): until then
    /// reads are refused rather than answered from nothing.
    verified: bool,
    /// When the node last found that it serves the store's latest checkpoint.
    confirmed_at: Instant,
    /// The last checkpoint refused, so each is logged once rather than every interval.
    last_refused: Option<String>,
}

/// Why a follow step did not move on.
enum StepError {
    /// The store did not answer: tried again next interval, nothing is reported.
    Store(store::Error),
    /// What the store holds fails verification.
    Refused { object: String, reason: String },
}

impl From<store::Error> for StepError {
    fn from(error: store::Error) -> StepError {
        StepError::Store(error)
    }
}

fn refused(object: impl Into<String>, reason: impl Into<String>) -> StepError {
    StepError::Refused { object: object.into(), reason: reason.into() }
}

impl Log {
    /// Opens a log read-only: no WAL, no signing key, no sealer; a follower task reads the
    /// writer's checkpoints. The first follow step runs before this returns, so a node whose
    /// store answers serves the verified state from the start.
    pub async fn open_read_only(settings: LogSettings, replica: ReplicaSettings) -> Result<Log> {
        // Appends never reach a writer thread: `append` refuses first. The channel only keeps
        // the type of a writer's log.
        let (commands, _) = mpsc::channel(1);
        let (committed, _) = watch::channel(auditum_format::event::Seq(0));
        let (durable_end, _) = watch::channel(0);
        let (stop, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            wal_lock: Mutex::new(None),
            key: CheckpointKey::Pinned(replica.verifier),
            replica: Some(ReplicaState {
                follow_interval: replica.follow_interval,
                progress: Mutex::new(Progress { served: None, verified: false, confirmed_at: Instant::now(), last_refused: None }),
            }),
            commands,
            shared: Mutex::new(Shared {
                open: VecDeque::new(),
                open_bytes: 0,
                sealing: None,
                recently_sealed: None,
                unsealed_by_tenant: Default::default(),
                entries: Vec::new(),
                entry_hashes: Vec::new(),
                latest_checkpoint: None,
                checkpoint_etag: None,
                checkpoint_size: 0,
                status: LogStatus::Pending("no checkpoint verified yet".into()),
                wal_bytes: 0,
            }),
            committed,
            seal_wakeup: Notify::new(),
            seal_lock: tokio::sync::Mutex::new(()),
            stop,
            writer_thread: Mutex::new(None),
            sealer_task: Mutex::new(None),
            durable_end,
            holds: Mutex::new(Vec::new()),
            hold_changes: tokio::sync::Mutex::new(()),
            followers: Default::default(),
            settings,
        });
        let log = Log { inner };
        log.follow_once().await;
        let follower = tokio::spawn(run_follower(log.clone(), log.inner.stop.subscribe()));
        *log.inner.sealer_task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(follower);
        Ok(log)
    }

    fn replica(&self) -> Option<&ReplicaState> {
        self.inner.replica.as_ref()
    }

    /// On a read-only node: reads are refused until a state is verified (an answer from nothing
    /// would read as "no such events").
    pub(super) fn require_verified(&self) -> Result<()> {
        let Some(replica) = self.replica() else { return Ok(()) };
        if replica.progress().verified {
            return Ok(());
        }
        let reason = match self.status() {
            LogStatus::Pending(reason) | LogStatus::Unverified(reason) => reason,
            other => format!("{other:?}"),
        };
        Err(Error::StoreUnavailable { log: self.name().to_string(), reason: format!("no verified checkpoint to serve yet: {reason}") })
    }

    /// On a read-only node: how long since it last found that it serves the writer's latest
    /// checkpoint (grows while the store does not answer or its checkpoint fails verification).
    pub fn replica_staleness(&self) -> Option<Duration> {
        Some(self.replica()?.progress().confirmed_at.elapsed())
    }

    /// One follow step, its outcome applied to the log's status and reported.
    async fn follow_once(&self) {
        let log = self.name().to_string();
        let Some(replica) = self.replica() else { return };
        match self.follow_step().await {
            Ok(()) => {
                let recovered = {
                    let mut progress = replica.progress();
                    progress.verified = true;
                    progress.confirmed_at = Instant::now();
                    progress.last_refused.take().is_some()
                };
                let mut shared = lock(&self.inner.shared);
                if !matches!(shared.status, LogStatus::Serving | LogStatus::ShuttingDown) {
                    shared.status = LogStatus::Serving;
                }
                drop(shared);
                METRICS.replica_refused.get_or_create(&log_label(&log)).set(0);
                if recovered {
                    tracing::info!(log = %log, "a valid checkpoint is in the store again: serving it");
                }
            }
            Err(StepError::Store(error)) => {
                tracing::warn!(log = %log, %error, "cannot read the writer's checkpoint now; serving the last verified state");
                if !replica.progress().verified {
                    lock(&self.inner.shared).status = LogStatus::Pending(format!("the store does not answer: {error}"));
                }
            }
            Err(StepError::Refused { object, reason }) => {
                let first_time = {
                    let mut progress = replica.progress();
                    let fingerprint = format!("{object}\n{reason}");
                    progress.last_refused.replace(fingerprint.clone()).as_deref() != Some(fingerprint.as_str())
                };
                if first_time {
                    tracing::error!(log = %log, %object, %reason, "checkpoint refused: it fails verification; serving the last verified state");
                    METRICS.replica_refusals.get_or_create(&log_label(&log)).inc();
                }
                METRICS.replica_refused.get_or_create(&log_label(&log)).set(1);
                let mut shared = lock(&self.inner.shared);
                if shared.status != LogStatus::ShuttingDown {
                    shared.status = LogStatus::Unverified(format!("{object}: {reason}"));
                }
            }
        }
    }

    /// Reads `{log}/checkpoint` and, when it moved on and verifies, serves it.
    async fn follow_step(&self) -> Result<(), StepError> {
        let log = self.name().to_string();
        let store = self.inner.settings.store.clone();
        let checkpoint_key = paths::latest_checkpoint_key(&log);
        let served = self.replica().and_then(|replica| replica.progress().served.clone());
        let served_size = served.as_ref().map_or(0, |checkpoint| checkpoint.size);
        let body = match store.get(&checkpoint_key, None).await {
            Ok(body) => body,
            // Nothing sealed yet: an empty log is a state too, unless it has history (a deleted
            // pointer, or this node served one): then an empty answer would be a lie.
            Err(store::Error::NotFound { .. }) if served.is_none() => {
                let first_note = paths::checkpoint_note_key(&log, 1);
                return match store.get(&first_note, None).await {
                    Err(store::Error::NotFound { .. }) => Ok(()),
                    Ok(_) => Err(refused(&checkpoint_key, format!("is missing, but {first_note} exists: the log has history"))),
                    Err(error) => Err(error.into()),
                };
            }
            Err(store::Error::NotFound { .. }) => {
                return Err(refused(&checkpoint_key, format!("is gone, after this node verified a checkpoint of size {served_size}")));
            }
            Err(error) => return Err(error.into()),
        };
        let text = String::from_utf8(body.to_vec()).map_err(|_| refused(&checkpoint_key, "is not utf-8"))?;
        if lock(&self.inner.shared).latest_checkpoint.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let checkpoint = self.verify_note(&checkpoint_key, &text)?;
        if let Some(served) = &served {
            if checkpoint.size < served.size {
                return Err(refused(
                    &checkpoint_key,
                    format!(
                        "covers {} ledger entries, but this node already verified {}: the log was rolled back",
                        checkpoint.size, served.size
                    ),
                ));
            }
            if checkpoint.size == served.size {
                if checkpoint.root != served.root {
                    return Err(refused(
                        &checkpoint_key,
                        format!("signs another root at size {} than the one served: a fork", served.size),
                    ));
                }
                return Ok(());
            }
        }
        // The pointer may lag the immutable notes (a writer between the two puts), or have been
        // rolled back before this node first read it: the newest signed note is what to serve.
        let (checkpoint, text) = self.newest_note(checkpoint, text).await?;
        let new_entries = self.fetch_entries(served_size, checkpoint.size).await?;
        let mut entry_hashes = lock(&self.inner.shared).entry_hashes.clone();
        entry_hashes.extend(new_entries.iter().map(|(_, hash)| *hash));
        // Hashing the whole ledger is CPU work: off the runtime.
        let checked = checkpoint.clone();
        let previous = served.clone();
        let verdict = tokio::task::spawn_blocking(move || check_root(&entry_hashes, &checked, previous.as_ref()))
            .await
            .map_err(|error| refused(&checkpoint_key, format!("verification task failed: {error}")))?;
        if let Err(reason) = verdict {
            return Err(refused(&checkpoint_key, reason));
        }
        let end = new_entries.last().map(|(entry, _)| entry.end_seq());
        {
            let mut shared = lock(&self.inner.shared);
            for (entry, hash) in new_entries {
                shared.entries.push(entry);
                shared.entry_hashes.push(hash);
            }
            shared.latest_checkpoint = Some(text);
            shared.checkpoint_size = checkpoint.size;
        }
        tracing::info!(log = %log, from_size = served_size, to_size = checkpoint.size, "verified and serving a new checkpoint");
        if let Some(replica) = self.replica() {
            replica.progress().served = Some(checkpoint);
        }
        if let Some(end) = end {
            self.inner.committed.send_replace(end);
            self.inner.durable_end.send_replace(end.0);
        }
        Ok(())
    }

    /// A checkpoint's signature under the pinned key, and its origin: this log's.
    fn verify_note(&self, key: &str, text: &str) -> Result<Checkpoint, StepError> {
        let checkpoint = self
            .verifier()
            .verify_checkpoint(text)
            .map_err(|error| refused(key, format!("{error} (signed by another key than the pinned verifier key?)")))?;
        if checkpoint.origin != self.inner.settings.origin {
            return Err(refused(key, format!("is of origin {:?}, not this log's {:?}", checkpoint.origin, self.inner.settings.origin)));
        }
        Ok(checkpoint)
    }

    /// The newest signed checkpoint note from `checkpoint` on (at most [`NOTES_AHEAD`] ahead).
    async fn newest_note(&self, mut checkpoint: Checkpoint, mut text: String) -> Result<(Checkpoint, String), StepError> {
        let store = self.inner.settings.store.clone();
        for _ in 0..NOTES_AHEAD {
            let key = paths::checkpoint_note_key(self.name(), checkpoint.size + 1);
            let body = match store.get(&key, None).await {
                Ok(body) => body,
                Err(store::Error::NotFound { .. }) => break,
                Err(error) => return Err(error.into()),
            };
            let next_text = String::from_utf8(body.to_vec()).map_err(|_| refused(&key, "is not utf-8"))?;
            let next = self.verify_note(&key, &next_text)?;
            if next.size != checkpoint.size + 1 {
                return Err(refused(&key, format!("covers {} ledger entries, not {}", next.size, checkpoint.size + 1)));
            }
            (checkpoint, text) = (next, next_text);
        }
        Ok((checkpoint, text))
    }

    /// Ledger entries `[from, to)`, each checked to chain on from the one before it.
    async fn fetch_entries(&self, from: u64, to: u64) -> Result<Vec<(Arc<LedgerEntry>, Hash)>, StepError> {
        let log = self.name().to_string();
        let store = self.inner.settings.store.clone();
        let bodies: Vec<(u64, String, bytes::Bytes)> = futures::stream::iter(from..to)
            .map(|index| {
                let store = store.clone();
                let key = paths::ledger_entry_key(&log, index);
                async move {
                    match store.get(&key, None).await {
                        Ok(body) => Ok((index, key, body)),
                        Err(store::Error::NotFound { .. }) => {
                            Err(refused(&key, format!("is missing, but the writer's checkpoint covers {to} ledger entries")))
                        }
                        Err(error) => Err(StepError::Store(error)),
                    }
                }
            })
            .buffered(ENTRY_FETCHES)
            .try_collect()
            .await?;
        let mut previous: Option<(Arc<LedgerEntry>, Hash)> = {
            let shared = lock(&self.inner.shared);
            shared.entries.last().cloned().zip(shared.entry_hashes.last().copied())
        };
        let mut checked = Vec::with_capacity(bodies.len());
        for (index, key, body) in bodies {
            let mut report = auditum_verify::Report::default();
            let previous_ref = previous.as_ref().map(|(entry, hash)| (entry.as_ref(), *hash));
            let Some((entry, hash)) = auditum_verify::check_next_entry(&log, &key, index, &body, previous_ref, &mut report) else {
                let reason = report.problems.first().map(|problem| problem.detail.clone()).unwrap_or_default();
                return Err(refused(key, reason));
            };
            if let Some(problem) = report.problems.first() {
                return Err(refused(key, format!("{}: {}", problem.kind, problem.detail)));
            }
            let entry = Arc::new(entry);
            previous = Some((entry.clone(), hash));
            checked.push((entry, hash));
        }
        Ok(checked)
    }
}

impl ReplicaState {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The signed root must be the ledger's, and (RFC 9162) the tree the node served before must be
/// a prefix of it.
fn check_root(entry_hashes: &[Hash], checkpoint: &Checkpoint, served: Option<&Checkpoint>) -> Result<(), String> {
    let size = checkpoint.size as usize;
    if merkle::root(&entry_hashes[..size]) != checkpoint.root {
        return Err(format!("signs a root other than that of the ledger's first {size} entries"));
    }
    let Some(served) = served.filter(|served| served.size > 0) else { return Ok(()) };
    let path = merkle::consistency_path(&entry_hashes[..size], served.size as usize).map_err(|error| error.to_string())?;
    merkle::verify_consistency(served.size, checkpoint.size, &served.root, &checkpoint.root, &path)
        .map_err(|error| format!("is not consistent with the checkpoint of size {} served before: {error}", served.size))
}

async fn run_follower(log: Log, mut stop: watch::Receiver<Option<tokio::time::Instant>>) {
    let Some(interval) = log.replica().map(|replica| replica.follow_interval) else { return };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        log.follow_once().await;
    }
}
