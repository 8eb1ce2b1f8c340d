//! Exports (docs/API.md): rows encoded as JSONL, CSV or Parquet (`encode`) straight from the
//! decoded Arrow arrays, in parts split by time (`plan`) that are read in parallel (`part`) and
//! streamed in order, in chunks, with bounded memory (`pipeline`).

mod encode;
mod part;
pub mod pipeline;
mod plan;

pub use encode::{CHUNK_BYTES, Error, Format};

/// Why an export stopped before its summary.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Scan(#[from] crate::scan::Error),
    #[error(transparent)]
    Encode(#[from] Error),
    /// A stage died: what was sent is incomplete.
    #[error("{0}")]
    Incomplete(String),
    /// A batch the export needs is archived (DESIGN §12).
    #[error("{0}")]
    Archived(crate::archive::ArchivedBatches),
    /// The keyring could not be read to decrypt (DESIGN §14): what was sent is incomplete.
    #[error("keyring: {0}; the export is incomplete")]
    Keyring(#[from] auditum_keyring::Error),
}

impl Failure {
    /// Whether the store answered that a batch is archived.
    pub fn is_archived(&self) -> bool {
        matches!(self, Failure::Scan(crate::scan::Error::Store { source, .. }) if crate::archive::is_archived(source))
    }
}
pub use pipeline::{ExportItem, ExportSummary};
