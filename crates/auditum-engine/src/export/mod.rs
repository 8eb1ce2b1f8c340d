//! Exports (docs/API.md): rows of a scan encoded as JSONL, CSV or Parquet (`encode`), streamed in
//! chunks by a two-stage pipeline with bounded memory (`pipeline`).

mod encode;
pub mod pipeline;

pub use encode::{CHUNK_BYTES, Error, Exporter, Format};

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
}
pub use pipeline::{ExportItem, ExportSummary};
