//! Building event proofs (docs/FORMAT.md, Proofs) from the store: the batch is read (and cached) to find the
//! event's leaf and Merkle path, the ledger path comes from the catalog's entry hashes. The
//! document itself and its verification are `auditum_format::proof`.

use auditum_batch as batch;
use auditum_format::ledger::LedgerEntry;
use auditum_format::merkle::{self, Hash};
use auditum_format::proof::{BatchProof, LedgerProof, hex_path};
use auditum_store::ObjectStore;
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
    Store(#[from] auditum_store::Error),
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
    let document_batch =
        BatchProof { index: entry.index, leaf_index: leaf_index as u64, size: batch.levels.size() as u64, path: hex_path(&batch_path) };
    let ledger = LedgerProof { size: basis.checkpoint_size, path: hex_path(&ledger_path) };
    auditum_format::proof::render(&event, document_batch, entry.to_json_text(), ledger, &basis.checkpoint)
        .map_err(|error| Error::Archive(error.to_string()))
}

/// Where an id was looked for.
#[derive(Debug, Default)]
pub struct FoundIds {
    /// Seqs of sealed events with the id.
    pub seqs: Vec<u64>,
    /// Batches that could not be read because they are archived (not restored).
    pub archived: Vec<Arc<LedgerEntry>>,
}

/// Seqs of sealed events with this id, only among `tenant`'s events when given (batches whose
/// catalog lists other tenants only are not read). Archived batches are skipped and listed.
pub async fn find_by_id(store: &dyn ObjectStore, basis: &ProofBasis, id: &str, tenant: Option<&str>) -> Result<FoundIds, Error> {
    let mut found = FoundIds::default();
    for entry in basis.entries[..basis.checkpoint_size as usize].iter().rev() {
        if let (Some(tenant), Some(tenants)) = (tenant, &entry.tenants)
            && !tenants.iter().any(|listed| listed == tenant)
        {
            continue;
        }
        let body = match store.get(&entry.object, entry.version.as_deref()).await {
            Ok(body) => body,
            Err(auditum_store::Error::Archived { .. }) => {
                found.archived.push(entry.clone());
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let rows = tokio::task::spawn_blocking(move || batch::read_idempotency_columns(body))
            .await
            .map_err(|error| Error::Archive(error.to_string()))?
            .map_err(|error| Error::Archive(error.to_string()))?;
        found.seqs.extend(
            rows.into_iter().filter(|row| row.id == id && tenant.is_none_or(|tenant| row.tenant_id == tenant)).map(|row| row.seq.0),
        );
    }
    Ok(found)
}
