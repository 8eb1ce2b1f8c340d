//! auditum: a tamper-evident audit-log vault. See `README.md` and `../shared/DESIGN.md`.

pub mod batch;
pub mod checkpoint;
pub mod event;
pub mod ledger;
pub mod merkle;
pub mod paths;
pub mod pb;
pub mod store;
pub mod validate;
pub mod wal;
