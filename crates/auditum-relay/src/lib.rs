//! Relays that move audit events from where applications write them to auditum.
//!
//! [`postgres`]: the transactional outbox. The application inserts the audit event into an outbox
//! table in the same transaction as the business change, so a committed change always has its
//! event and a rolled-back one never does; the relay moves committed rows to auditum and deletes
//! each row only after the server acknowledged it (durable). A row sent twice (a relay killed
//! between the acknowledgement and its commit) is stored once, because the row's id is the event
//! id, as long as it comes back within the server's `idempotency_window` (1 h by default).
//! Several relays may share one table (`FOR UPDATE SKIP LOCKED`).

mod outbox;
pub mod postgres;
mod send;
mod table;

pub use postgres::{RelayOptions, Totals};
pub use table::TableName;

/// Why a relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad options, or an outbox table the relay cannot work with.
    #[error("{0}")]
    Config(String),
    /// Postgres failed where the relay cannot go on (at startup, or a missing privilege).
    #[error("postgres: {0}")]
    Postgres(String),
    /// auditum refused the relay (its API key), or the client could not be set up.
    #[error(transparent)]
    Auditum(#[from] auditum_client::LogError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
