//! Event proofs (DESIGN §7): the document the server builds and `auditum verify-proof` checks.
//!
//! Verification trusts nothing in the document but recomputes: leaf from the columns → batch
//! root via the path (== entry root, size == entry count) → entry hash → ledger root via the
//! path (size == checkpoint size) → checkpoint root, signed by the pinned key.

use crate::batch;
use crate::checkpoint::{Checkpoint, Verifier};
use crate::event::{COLUMN_NAMES, EventRecord, HASHED_COLUMNS};
use crate::ledger::{self, LedgerEntry};
use crate::merkle::{self, Hash, ProofError};
use crate::store::ObjectStore;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("event seq {seq} is not sealed yet (committed up to seq {committed_end}); retry after the next seal")]
    NotSealed { seq: u64, committed_end: u64 },
    #[error("no event with seq {seq} in log {log}")]
    NoSuchSeq { log: String, seq: u64 },
    #[error("no sealed event with id {id:?} in log {log}")]
    NoSuchId { log: String, id: String },
    #[error("event id {id:?} is used by {count} sealed events (seqs {seqs:?}); ask by seq")]
    AmbiguousId { id: String, count: usize, seqs: Vec<u64> },
    #[error("log {log} has no checkpoint yet")]
    NoCheckpoint { log: String },
    #[error("archive: {0}")]
    Archive(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::Error),
}

/// Why a proof document was rejected.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("proof is not a valid document: {0}")]
    Malformed(String),
    #[error("leaf_hash does not match the event's columns")]
    LeafMismatch,
    #[error("ledger entry: {0}")]
    Entry(String),
    #[error("batch: {0}")]
    Batch(String),
    #[error("batch path: {0}")]
    BatchPath(ProofError),
    #[error("ledger path: {0}")]
    LedgerPath(ProofError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::checkpoint::Error),
    #[error("ledger size {ledger} differs from the checkpoint's size {checkpoint}")]
    SizeMismatch { ledger: u64, checkpoint: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchProof {
    pub index: u64,
    pub leaf_index: u64,
    pub size: u64,
    pub path: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LedgerProof {
    pub size: u64,
    pub path: Vec<String>,
}

/// The §7 document as read back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofDocument {
    pub event: serde_json::Value,
    pub leaf_hash: String,
    pub batch: BatchProof,
    pub ledger_entry: String,
    pub ledger: LedgerProof,
    pub checkpoint: String,
}

/// The event's columns in §2.2 order (the document is for people too).
struct OrderedEvent<'a>(&'a EventRecord);

impl Serialize for OrderedEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let json = self.0.to_json();
        let mut map = serializer.serialize_map(Some(HASHED_COLUMNS))?;
        for name in &COLUMN_NAMES[..HASHED_COLUMNS] {
            map.serialize_entry(name, &json[*name])?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct ProofOut<'a> {
    event: OrderedEvent<'a>,
    leaf_hash: String,
    batch: BatchProof,
    ledger_entry: String,
    ledger: LedgerProof,
    checkpoint: &'a str,
}

fn hex_path(path: &[Hash]) -> Vec<String> {
    path.iter().map(hex::encode).collect()
}

/// A sealed batch kept for warm proofs: its file, its seqs in file order and its Merkle levels.
/// The one requested row is decoded from the file on demand (a row selection reads a few
/// pages), so a cached batch costs about its file size, not its decoded rows.
pub struct CachedBatch {
    pub bytes: bytes::Bytes,
    pub metadata: batch::FileMetadata,
    pub seqs: Vec<u64>,
    pub levels: merkle::Levels,
}

type BatchKey = (String, u64);

#[derive(Default)]
struct CacheState {
    batches: HashMap<BatchKey, Arc<CachedBatch>>,
    /// Insertion order, for eviction.
    order: VecDeque<BatchKey>,
}

/// A small cache of batches, shared by proof calls; the oldest insert is evicted first.
#[derive(Default)]
pub struct BatchCache {
    entries: Mutex<CacheState>,
}

const BATCH_CACHE_ENTRIES: usize = 4;

impl BatchCache {
    pub async fn get(&self, store: &dyn ObjectStore, entry: &LedgerEntry) -> Result<Arc<CachedBatch>, Error> {
        let key = (entry.log.clone(), entry.index);
        if let Some(found) = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).batches.get(&key) {
            return Ok(found.clone());
        }
        let bytes = store.get(&entry.object, entry.version.as_deref()).await?;
        let expected_root = entry.root;
        let decoded = tokio::task::spawn_blocking(move || -> Result<CachedBatch, Error> {
            let digest = batch::digest(bytes.clone()).map_err(|error| Error::Archive(error.to_string()))?;
            let levels = merkle::Levels::new(digest.leaves);
            // A proof over a tampered batch would not verify anyway; say so here instead.
            if levels.root() != expected_root {
                return Err(Error::Archive("batch rows do not recompute to the ledger's root: run `auditum verify`".into()));
            }
            let metadata = batch::file_metadata(&bytes).map_err(|error| Error::Archive(error.to_string()))?;
            Ok(CachedBatch { bytes, metadata, seqs: digest.seqs, levels })
        })
        .await
        .map_err(|error| Error::Archive(error.to_string()))??;
        let decoded = Arc::new(decoded);
        let mut state = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.batches.insert(key.clone(), decoded.clone());
        state.order.push_back(key);
        while state.order.len() > BATCH_CACHE_ENTRIES {
            if let Some(oldest) = state.order.pop_front() {
                state.batches.remove(&oldest);
            }
        }
        Ok(decoded)
    }
}

/// What a proof is built from: the committed entries covered by one signed checkpoint.
pub struct ProofBasis {
    pub log: String,
    pub entries: Vec<Arc<LedgerEntry>>,
    pub entry_hashes: Vec<Hash>,
    pub checkpoint: String,
    pub checkpoint_size: u64,
}

impl ProofBasis {
    /// The entry whose batch holds `seq`.
    pub fn entry_for_seq(&self, seq: u64) -> Result<&Arc<LedgerEntry>, Error> {
        let covered = &self.entries[..self.checkpoint_size as usize];
        let position = covered.partition_point(|entry| entry.end_seq().0 <= seq);
        match covered.get(position) {
            Some(entry) if entry.first_seq.0 <= seq => Ok(entry),
            _ => {
                let committed_end = covered.last().map(|entry| entry.end_seq().0).unwrap_or(0);
                Err(Error::NotSealed { seq, committed_end })
            }
        }
    }
}

/// Builds the §7 document for the sealed event `seq`.
pub async fn build(store: &dyn ObjectStore, cache: &BatchCache, basis: &ProofBasis, seq: u64) -> Result<String, Error> {
    let entry = basis.entry_for_seq(seq)?;
    let batch = cache.get(store, entry).await?;
    let leaf_index = batch
        .seqs
        .iter()
        .position(|candidate| *candidate == seq)
        .ok_or_else(|| Error::Archive(format!("seq {seq} missing from its batch")))?;
    let batch_path = batch.levels.path(leaf_index).map_err(|error| Error::Archive(error.to_string()))?;
    let ledger_path = merkle::inclusion_path(&basis.entry_hashes[..basis.checkpoint_size as usize], entry.index as usize)
        .map_err(|error| Error::Archive(error.to_string()))?;
    let (bytes, metadata) = (batch.bytes.clone(), batch.metadata.clone());
    let event = tokio::task::spawn_blocking(move || batch::read_row(bytes, metadata, leaf_index))
        .await
        .map_err(|error| Error::Archive(error.to_string()))?
        .map_err(|error| Error::Archive(error.to_string()))?;
    let leaf = event.leaf_hash();
    let document = ProofOut {
        event: OrderedEvent(&event),
        leaf_hash: hex::encode(leaf),
        batch: BatchProof {
            index: entry.index,
            leaf_index: leaf_index as u64,
            size: batch.levels.size() as u64,
            path: hex_path(&batch_path),
        },
        ledger_entry: entry.to_json_text(),
        ledger: LedgerProof { size: basis.checkpoint_size, path: hex_path(&ledger_path) },
        checkpoint: &basis.checkpoint,
    };
    let mut text = serde_json::to_string_pretty(&document).map_err(|error| Error::Archive(error.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// Every sealed seq in the basis whose event has `id`.
/// Seqs of sealed events with this id, only among `tenant`'s events when given.
pub async fn find_by_id(store: &dyn ObjectStore, basis: &ProofBasis, id: &str, tenant: Option<&str>) -> Result<Vec<u64>, Error> {
    let mut found = Vec::new();
    for entry in basis.entries[..basis.checkpoint_size as usize].iter().rev() {
        let body = store.get(&entry.object, entry.version.as_deref()).await?;
        let rows = tokio::task::spawn_blocking(move || batch::read_idempotency_columns(body))
            .await
            .map_err(|error| Error::Archive(error.to_string()))?
            .map_err(|error| Error::Archive(error.to_string()))?;
        found.extend(
            rows.into_iter().filter(|row| row.id == id && tenant.is_none_or(|tenant| row.tenant_id == tenant)).map(|row| row.seq.0),
        );
    }
    Ok(found)
}

/// The tenant of the event a §7 document proves.
pub fn event_tenant(proof_json: &str) -> Result<String, String> {
    let document: ProofDocument = serde_json::from_str(proof_json).map_err(|error| error.to_string())?;
    document
        .event
        .get("tenant_id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "event has no tenant_id".to_string())
}

/// What a verified proof establishes.
#[derive(Debug, Clone)]
pub struct Verified {
    pub event: EventRecord,
    pub entry: LedgerEntry,
    pub checkpoint: Checkpoint,
}

fn parse_path(path: &[String], what: &'static str) -> Result<Vec<Hash>, VerifyError> {
    path.iter()
        .map(|hash| {
            hex::decode(hash)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| VerifyError::Malformed(format!("{what} hash {hash:?} is not 32 hex bytes")))
        })
        .collect()
}

/// Verifies a §7 document against a pinned verifier key.
pub fn verify(text: &str, verifier: &Verifier) -> Result<Verified, VerifyError> {
    let document: ProofDocument = serde_json::from_str(text).map_err(|error| VerifyError::Malformed(error.to_string()))?;
    let event = EventRecord::from_json(&document.event).map_err(VerifyError::Malformed)?;
    let leaf = event.leaf_hash();
    if hex::encode(leaf) != document.leaf_hash {
        return Err(VerifyError::LeafMismatch);
    }
    let entry = LedgerEntry::parse(&document.ledger_entry).map_err(|error| VerifyError::Entry(error.to_string()))?;
    if document.batch.index != entry.index {
        return Err(VerifyError::Batch(format!("index {} is not the entry's index {}", document.batch.index, entry.index)));
    }
    if document.batch.size != entry.count {
        return Err(VerifyError::Batch(format!("size {} is not the entry's count {}", document.batch.size, entry.count)));
    }
    if event.seq < entry.first_seq || event.seq >= entry.end_seq() {
        return Err(VerifyError::Batch(format!("seq {} is outside the entry's [{}, {})", event.seq, entry.first_seq, entry.end_seq())));
    }
    let batch_path = parse_path(&document.batch.path, "batch path")?;
    merkle::verify_inclusion(&leaf, document.batch.leaf_index, document.batch.size, &batch_path, &entry.root)
        .map_err(VerifyError::BatchPath)?;
    let checkpoint = verifier.verify_checkpoint(&document.checkpoint)?;
    if document.ledger.size != checkpoint.size {
        return Err(VerifyError::SizeMismatch { ledger: document.ledger.size, checkpoint: checkpoint.size });
    }
    let entry_hash = ledger::entry_hash(document.ledger_entry.as_bytes());
    let ledger_path = parse_path(&document.ledger.path, "ledger path")?;
    merkle::verify_inclusion(&entry_hash, entry.index, document.ledger.size, &ledger_path, &checkpoint.root)
        .map_err(VerifyError::LedgerPath)?;
    Ok(Verified { event, entry, checkpoint })
}
