//! What can go wrong in a call, in domain terms. The server maps each to a transport status in
//! one place (`auditum_server::status`).

use crate::auth::Denied;
use crate::read::FilterError;
use crate::{export, log, proof, scan};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused before running: no or bad key, missing scope, another tenant, rate limit.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// A filter, page size or page token the rules reject.
    #[error("{0}")]
    Filter(#[from] FilterError),
    /// Another request field the rules reject.
    #[error("{field}: {rule}")]
    BadRequest { field: String, rule: String },
    #[error(transparent)]
    Log(#[from] log::Error),
    #[error(transparent)]
    Scan(#[from] scan::Error),
    #[error(transparent)]
    Proof(#[from] proof::Error),
    #[error(transparent)]
    Export(#[from] export::Failure),
    #[error("log: no log named {}", auditum_format::rules::echo(name))]
    NoSuchLog { name: String },
    #[error("no log is configured for tenant {tenant:?} and there is no default log")]
    NoLogForTenant { tenant: String },
    #[error("log {log}: no batch has been sealed yet, so there is no checkpoint")]
    NoCheckpoint { log: String },
    #[error("new_size: {new_size} exceeds the latest checkpoint's size {checkpoint_size}")]
    BeyondCheckpoint { new_size: u64, checkpoint_size: u64 },
    #[error("meta-audit event: {0}")]
    MetaAudit(String),
    /// A read-only node could not record a read on the writer: the read is not served.
    #[error("the meta-audit record of this call could not be appended on the log's writer, so the call is not served: {0}")]
    MetaAuditForward(ForwardError),
    /// A background task died (a panic on the blocking pool): a bug, not an input.
    #[error("{what} task failed: {reason}")]
    Task { what: &'static str, reason: String },
    /// The store could not be read; retrying later may work.
    #[error("{0}")]
    Unreachable(String),
    /// A read died mid-way: what was sent is incomplete.
    #[error("{0}")]
    Incomplete(String),
    /// Batches the call needs are archived and not restored (DESIGN §12).
    #[error("{0}")]
    Archived(crate::archive::ArchivedBatches),
    /// `hold clear` named no active hold.
    #[error("log {log}: no active legal hold {scope}{}", if active.is_empty() { String::new() } else { format!("; active holds: {}", active.join("; ")) })]
    NoSuchHold { log: String, scope: String, active: Vec<String> },
    /// The call cannot work in this setup (e.g. a legal hold on a log without Object Lock).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A store call of an admin operation failed.
    #[error("log {log}: {source}")]
    Store { log: String, source: auditum_store::Error },
}

/// Why a read's meta-audit record was not appended on the writer (a read-only node).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct ForwardError {
    pub reason: String,
    /// The writer refused it for good (a wrong key, a missing scope, another log): retrying
    /// the read cannot help until the configuration is fixed.
    pub permanent: bool,
}

impl Error {
    pub fn bad_request(field: &str, rule: impl Into<String>) -> Error {
        Error::BadRequest { field: field.to_string(), rule: rule.into() }
    }
}
