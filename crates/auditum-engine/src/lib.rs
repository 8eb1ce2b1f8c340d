//! auditum's engine: everything between the wire and the store, knowing neither tonic nor
//! protobuf.
//!
//! - `log`: one log's WAL writer (group commit), idempotency index, sealer, checkpoints;
//! - `router`: tenants → logs; `ingest`: Append over them;
//! - `read` + `scan`: filters, page tokens, the merge of sealed batches and unsealed events;
//!   `query`: Query and Export; `export`: encoding and the export pipeline; `subscribe`: the
//!   seq-ordered stream of durable events; `summarize`: counts by dimension and time bucket;
//! - `proof` + `proofs`: event and consistency proofs, server-side verification;
//! - `auth` + `access`: keys, scopes, tenant binding, rate limits, and the meta-audit record;
//! - `encryption` + `erasure`: per-subject field encryption (the keyring), decryption on reads,
//!   crypto-shredding;
//! - `admin`: legal holds, restores and erasures; `archive`: batches in archive storage classes;
//! - `helper_threads`: the cap on threads Summarize and Export add;
//! - `metrics`: the Prometheus registry; `error`: what can go wrong, in domain terms.

pub mod access;
pub mod admin;
pub mod archive;
pub mod auth;
mod background;
pub mod dir_lock;
pub mod encryption;
pub mod erasure;
pub mod error;
pub mod export;
pub mod follow;
mod helper_threads;
pub mod ingest;
pub mod log;
pub mod metrics;
pub mod proof;
pub mod proofs;
pub mod query;
pub mod read;
pub mod router;
pub mod scan;
pub mod subscribe;
pub mod summarize;

pub use error::{Error, Result};
