//! The auditum client: what every program that talks to a server needs, and the base of the
//! Rust SDK.
//!
//! - [`connect`]: `http://` / `https://` channels with a CA bundle, client certificates and the
//!   API key;
//! - [`append`]: events cut into calls within the Append limits, ids assigned before the first
//!   try, transient failures retried (safe: the server deduplicates by id);
//! - [`query`]: keyset paging; [`export`]: download to a file with the summary's hash checked;
//! - [`proof`]: fetching event proofs and verifying them offline against a pinned key;
//! - [`event_json`]: events from their JSON form.

pub mod append;
pub mod connect;
pub mod event_json;
pub mod export;
pub mod proof;
pub mod query;

pub use connect::{AuthChannel, BearerToken, ConnectOptions, channel, connect};

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
