//! Event proofs (docs/FORMAT.md, Proofs): the document the server builds and `auditum verify-proof` checks.
//!
//! Verification trusts nothing in the document but recomputes: leaf from the columns → batch
//! root via the path (== entry root, size == entry count) → entry hash → ledger root via the
//! path (size == checkpoint size) → checkpoint root, signed by the pinned key.

use crate::checkpoint::{Checkpoint, Verifier};
use crate::event::{COLUMN_NAMES, EventRecord, HASHED_COLUMNS};
use crate::ledger::{self, LedgerEntry};
use crate::merkle::{self, Hash, ProofError};
use serde::{Deserialize, Serialize};

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

pub fn hex_path(path: &[Hash]) -> Vec<String> {
    path.iter().map(hex::encode).collect()
}

/// The §7 document text (pretty JSON, newline-terminated) for `event` and its paths.
pub fn render(
    event: &EventRecord,
    batch: BatchProof,
    ledger_entry: String,
    ledger: LedgerProof,
    checkpoint: &str,
) -> serde_json::Result<String> {
    let document =
        ProofOut { event: OrderedEvent(event), leaf_hash: hex::encode(event.leaf_hash()), batch, ledger_entry, ledger, checkpoint };
    let mut text = serde_json::to_string_pretty(&document)?;
    text.push('\n');
    Ok(text)
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
