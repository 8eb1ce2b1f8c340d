//! auditum: a tamper-evident audit-log vault. See `README.md` and `../shared/DESIGN.md`.

pub mod api;
pub mod auth;
pub mod batch;
pub mod checkpoint;
pub mod client;
pub mod codec;
pub mod config;
pub mod event;
pub mod export;
pub mod ledger;
pub mod log;
pub mod merkle;
pub mod metrics;
pub mod paths;
pub mod pb;
pub mod proof;
pub mod query;
pub mod sample;
pub mod scan;
pub mod server;
pub mod store;
pub mod validate;
pub mod verify;
pub mod wal;
