//! What independent programs check: auditum's formats, byte for byte (docs/FORMAT.md).
//!
//! Nothing here touches a store, a network or protobuf: an auditor's verifier can depend on this
//! crate alone. Parquet batch files are `auditum-batch`.

pub mod checkpoint;
pub mod event;
pub mod json;
pub mod ledger;
pub mod merkle;
pub mod paths;
pub mod proof;
pub mod rules;
pub mod time;
pub mod wal;
