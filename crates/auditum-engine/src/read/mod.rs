//! Reads (docs/API.md): filters, keyset pagination on (occurred_at, seq), and the ordered merge of
//! sealed batches (pruned by the ledger catalog, read through [`crate::scan`]) with the events
//! still unsealed.
//!
//! The scan is synchronous and runs on the blocking pool; store reads block on the runtime.

pub mod counts;
pub mod filter;
pub mod merge;
pub mod page_token;

pub use filter::{Filter, FilterError, FilterSpec, OccurredWindow, page_size};
pub use merge::{Page, Scan, ScanContext, matches, prefetch_footers, run_page, text_column};
pub use page_token::{decode_page_token, encode_page_token};

use auditum_format::event::{EventRecord, LeafHash};
use auditum_format::ledger::LedgerEntry;
use std::sync::Arc;

/// What a read sees of one log: committed entries and unsealed events, taken atomically.
#[derive(Debug, Clone)]
pub struct ReadSnapshot {
    pub log: String,
    pub entries: Vec<Arc<LedgerEntry>>,
    pub unsealed: Vec<Arc<EventRecord>>,
    pub checkpoint: Option<String>,
    /// Entries covered by `checkpoint`.
    pub checkpoint_size: usize,
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRow {
    pub record: EventRecord,
    pub leaf_hash: LeafHash,
    /// The batch holding it; None while unsealed.
    pub batch_index: Option<u64>,
}

impl ScanRow {
    pub fn record_mut(&mut self) -> &mut EventRecord {
        &mut self.record
    }

    pub fn key(&self) -> (i64, u64) {
        (self.record.occurred_at, self.record.seq.0)
    }
}
