//! Batches in an archive storage class (DESIGN §12): Glacier Flexible Retrieval and Deep Archive
//! objects are unreadable until restored. A read that meets one names every archived batch it
//! needs and the restore command; `restore` asks the store for the copies.

use auditum_format::ledger::LedgerEntry;
use auditum_store::{self as store, ObjectStore, RestoreRequested, RestoreState, RestoreTier, StorageClass};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// HEADs at once while looking for archived batches.
const CONCURRENT_HEADS: usize = 16;
/// At most this many candidates are checked when naming the archived batches of a failed read:
/// a client retrying a refused read must not cost thousands of HEADs each time.
const MAX_NAMING_HEADS: usize = 200;

/// A batch a call needs that cannot be read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedBatch {
    pub index: u64,
    pub object: String,
    pub storage_class: Option<StorageClass>,
    /// A restore was requested and is not done yet.
    pub restoring: bool,
    pub min_occurred_at: i64,
    pub max_occurred_at: i64,
}

/// Why a call could not read its batches (mapped to FAILED_PRECONDITION).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedBatches {
    pub log: String,
    pub batches: Vec<ArchivedBatch>,
    /// Candidates beyond the naming limit were not checked.
    pub more_unchecked: bool,
}

impl std::fmt::Display for ArchivedBatches {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = &self.log;
        if self.batches.is_empty() {
            return write!(
                formatter,
                "log {log}: a batch this call needs is in an archive storage class and not restored (it could not be named); run `auditum restore --log {log}` over the call's time range, and retry once the restore is done"
            );
        }
        let named: Vec<String> = self
            .batches
            .iter()
            .take(5)
            .map(|batch| {
                let class = batch.storage_class.map(StorageClass::as_str).unwrap_or("an archive class");
                let state = if batch.restoring { ", restore in progress" } else { "" };
                format!("batch {} ({}, {class}{state})", batch.index, batch.object)
            })
            .collect();
        let more = self.batches.len().saturating_sub(named.len());
        let since = self.batches.iter().map(|batch| batch.min_occurred_at).min().unwrap_or_default();
        let until = self.batches.iter().map(|batch| batch.max_occurred_at).max().unwrap_or_default().saturating_add(1);
        write!(
            formatter,
            "log {log}: {} batch{} this call needs {} in an archive storage class and not restored: {}{}{}; run `{}` and retry once the restore is done (minutes to hours, by tier)",
            self.batches.len(),
            if self.batches.len() == 1 { "" } else { "es" },
            if self.batches.len() == 1 { "is" } else { "are" },
            named.join(", "),
            if more > 0 { format!(", and {more} more") } else { String::new() },
            if self.more_unchecked { " (further batches were not checked)" } else { "" },
            auditum_verify::restore_command(log, since, until),
        )
    }
}

/// Whether a store error says an object is archived.
pub fn is_archived(error: &store::Error) -> bool {
    matches!(error, store::Error::Archived { .. })
}

/// HEADs the candidates and names those archived without a restored copy.
pub async fn name_archived(log: &str, store: &Arc<dyn ObjectStore>, candidates: &[Arc<LedgerEntry>]) -> ArchivedBatches {
    let checked = &candidates[..candidates.len().min(MAX_NAMING_HEADS)];
    let heads: Vec<Option<ArchivedBatch>> = futures::stream::iter(checked.iter().cloned())
        .map(|entry| {
            let store = store.clone();
            async move {
                // A batch that cannot be HEADed now is not named; the read's own error stands.
                let meta = store.head(&entry.object, entry.version.as_deref()).await.ok()?;
                meta.is_archived().then(|| ArchivedBatch {
                    index: entry.index,
                    object: entry.object.clone(),
                    storage_class: meta.storage_class,
                    restoring: meta.restore == Some(RestoreState::InProgress),
                    min_occurred_at: entry.min_occurred_at,
                    max_occurred_at: entry.max_occurred_at,
                })
            }
        })
        .buffered(CONCURRENT_HEADS)
        .collect()
        .await;
    ArchivedBatches {
        log: log.to_string(),
        batches: heads.into_iter().flatten().collect(),
        more_unchecked: checked.len() < candidates.len(),
    }
}

/// What a restore request did to each batch in its range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Batches whose restore was started now.
    pub started: Vec<String>,
    /// Already being restored.
    pub in_progress: u64,
    /// Already readable through a restored copy.
    pub already_restored: u64,
    /// Not in an archive class (readable as they are).
    pub not_archived: u64,
    /// Batch versions that no longer exist (expired after their retention).
    pub gone: u64,
}

enum RestoreStep {
    Started(String),
    InProgress,
    Restored,
    NotArchived,
    Gone,
}

/// Requests a restore of every archived batch among `entries` for `days`.
pub async fn restore(
    store: &Arc<dyn ObjectStore>,
    entries: &[Arc<LedgerEntry>],
    days: u32,
    tier: RestoreTier,
) -> store::Result<RestoreSummary> {
    let steps: Vec<RestoreStep> = futures::stream::iter(entries.iter().cloned())
        .map(|entry| {
            let store = store.clone();
            async move {
                let meta = match store.head(&entry.object, entry.version.as_deref()).await {
                    Ok(meta) => meta,
                    Err(store::Error::NotFound { .. }) => return Ok(RestoreStep::Gone),
                    Err(error) => return Err(error),
                };
                if !meta.storage_class.is_some_and(StorageClass::needs_restore) {
                    return Ok(RestoreStep::NotArchived);
                }
                match meta.restore {
                    Some(RestoreState::Restored { .. }) => Ok(RestoreStep::Restored),
                    Some(RestoreState::InProgress) => Ok(RestoreStep::InProgress),
                    None => match store.restore(&entry.object, entry.version.as_deref(), days, tier).await? {
                        RestoreRequested::Started => Ok(RestoreStep::Started(entry.object.clone())),
                        RestoreRequested::AlreadyInProgress => Ok(RestoreStep::InProgress),
                    },
                }
            }
        })
        .buffered(CONCURRENT_HEADS)
        .try_collect()
        .await?;
    let mut summary = RestoreSummary::default();
    for step in steps {
        match step {
            RestoreStep::Started(object) => summary.started.push(object),
            RestoreStep::InProgress => summary.in_progress += 1,
            RestoreStep::Restored => summary.already_restored += 1,
            RestoreStep::NotArchived => summary.not_archived += 1,
            RestoreStep::Gone => summary.gone += 1,
        }
    }
    Ok(summary)
}
