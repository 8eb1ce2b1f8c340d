//! The auditum client and Rust SDK (see the crate's README.md).
//!
//! The SDK (SDK.md's contract): [`AuditClient`] with `log()` (fire and forget, spooled, crash
//! safe), `log_durable()`, `flush`, `close` and counters; [`Options`]; [`Event`];
//! [`request_context`] (ambient context per task); the spool (`spool`, sdk/SPOOL.md's bytes).
//!
//! The building blocks, also used by the `auditum` CLI:
//! - [`connect`]: `http://` / `https://` channels with a CA bundle, client certificates and the
//!   API key;
//! - [`query`]: keyset paging; [`export`]: download to a file with the summary's hash checked;
//! - [`proof`]: fetching event proofs and verifying them offline against a pinned key;
//! - [`event_json`]: events from their JSON form.

mod client;
pub mod connect;
mod counters;
pub mod dead_letter;
pub mod event;
pub mod event_json;
pub mod export;
pub mod options;
pub mod proof;
pub mod query;
mod queue;
pub mod request_context;
pub mod spool;
mod wire;
mod worker;

pub use client::{AuditClient, LogError};
pub use connect::{AuthChannel, BearerToken, ConnectOptions, channel, connect};
pub use counters::Stats;
pub use event::{ActorType, Event, EventId, OutcomeResult};
pub use options::{OnFull, Options, Problem, SpoolFsync};
pub use request_context::RequestContext;

/// What a client call ends in when it fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached, or the options are wrong.
    #[error("{0}")]
    Connect(String),
    /// The server answered with an error status.
    #[error("{rpc} failed: {}: {}", status.code(), status.message())]
    Rpc { rpc: &'static str, status: tonic::Status },
    /// A local file could not be read or written.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// What the server sent does not hold together.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn rpc(rpc: &'static str) -> impl FnOnce(tonic::Status) -> Error {
        move |status| Error::Rpc { rpc, status }
    }

    pub(crate) fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |error| Error::File { path: path.display().to_string(), reason: error.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
