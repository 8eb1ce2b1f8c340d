//! Every error a call can end in becomes a gRPC status here, and nowhere else.

use auditum_engine::auth::Denied;
use auditum_engine::{Error, export, log, proof};
use auditum_proto::validate::ValidationError;
use std::time::Duration;
pub use tonic::Status;

pub fn status_from_validation(error: ValidationError) -> Status {
    Status::invalid_argument(error.to_string())
}

pub fn status_from_engine(error: Error) -> Status {
    match error {
        Error::Denied(denied) => status_from_denied(denied),
        Error::Filter(_) | Error::BadRequest { .. } => Status::invalid_argument(error.to_string()),
        Error::Log(error) => status_from_log(error),
        Error::Scan(error) if error.is_transient() => Status::unavailable(format!("{error}; retry later")),
        Error::Export(export::Failure::Scan(error)) if error.is_transient() => Status::unavailable(format!("{error}; retry later")),
        Error::Export(export::Failure::Keyring(ref source)) if source.is_transient() => {
            Status::unavailable(format!("{error}; retry later"))
        }
        Error::Proof(error) => status_from_proof(error),
        Error::NoSuchLog { .. } => Status::not_found(error.to_string()),
        Error::NoCheckpoint { .. } => Status::failed_precondition(error.to_string()),
        Error::BeyondCheckpoint { .. } => Status::out_of_range(error.to_string()),
        Error::Unreachable(_) => Status::unavailable(error.to_string()),
        Error::MetaAuditForward(ref forward) if forward.permanent => Status::failed_precondition(error.to_string()),
        Error::MetaAuditForward(_) => Status::unavailable(error.to_string()),
        // A tenant this process holds no log for: its events go to another writer.
        Error::NoLogForTenant { .. } => Status::failed_precondition(error.to_string()),
        // The batches must be restored first: retrying as it is cannot help.
        Error::Archived(_) | Error::Export(export::Failure::Archived(_)) => Status::failed_precondition(error.to_string()),
        Error::NoSuchHold { .. } => Status::not_found(error.to_string()),
        Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
        Error::Store { ref source, .. } if source.is_transient() => Status::unavailable(format!("{error}; retry later")),
        Error::Store { source: auditum_store::Error::Unsupported { .. } | auditum_store::Error::Misconfigured { .. }, .. } => {
            Status::failed_precondition(error.to_string())
        }
        Error::Scan(_) | Error::Export(_) | Error::MetaAudit(_) | Error::Store { .. } | Error::Task { .. } | Error::Incomplete(_) => {
            tracing::error!(%error, "internal error");
            Status::internal(error.to_string())
        }
    }
}

pub(crate) fn status_from_denied(denied: Denied) -> Status {
    match denied {
        Denied::Unauthenticated(message) => Status::unauthenticated(message),
        Denied::PermissionDenied(message) => Status::permission_denied(message),
        Denied::RateLimited { .. } => rate_limited(&denied),
    }
}

/// RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` detail and a `retry-after` header (seconds).
fn rate_limited(denied: &Denied) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let Denied::RateLimited { wait, .. } = denied else { return Status::resource_exhausted(denied.to_string()) };
    let wait = (*wait).max(Duration::from_millis(1));
    let mut status =
        Status::with_error_details(tonic::Code::ResourceExhausted, denied.to_string(), ErrorDetails::with_retry_info(Some(wait)));
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(seconds.to_string()) {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// An export that stopped before its summary.
pub fn status_from_export(failure: export::Failure) -> Status {
    status_from_engine(Error::Export(failure))
}

pub fn status_from_log(error: log::Error) -> Status {
    match &error {
        // Retryable elsewhere or later; retries are safe because Append is idempotent on id.
        log::Error::Fenced { .. } | log::Error::Failed { .. } | log::Error::ShuttingDown { .. } | log::Error::StoreUnavailable { .. } => {
            Status::unavailable(error.to_string())
        }
        // The keyring did not answer: nothing was written, so a retry is safe.
        log::Error::Keyring { source, .. } if source.is_transient() => Status::unavailable(format!("{error}; retry later")),
        log::Error::Keyring { source: auditum_keyring::Error::InvalidTenant { .. }, .. } => Status::invalid_argument(error.to_string()),
        // Sent to a read-only node: only the log's writer takes it.
        log::Error::ReadOnly { .. } => Status::failed_precondition(error.to_string()),
        log::Error::WalFull { .. } => {
            let mut status = Status::resource_exhausted(error.to_string());
            // A hint for clients and proxies: sealing retries within seconds.
            status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from_static("5"));
            status
        }
        _ => {
            tracing::error!(%error, "internal error");
            Status::internal(error.to_string())
        }
    }
}

pub fn status_from_proof(error: proof::Error) -> Status {
    use proof::Error;
    match &error {
        Error::NotSealed { .. } | Error::NoCheckpoint { .. } => Status::failed_precondition(error.to_string()),
        Error::NoSuchSeq { .. } | Error::NoSuchId { .. } => Status::not_found(error.to_string()),
        Error::AmbiguousId { .. } => Status::failed_precondition(error.to_string()),
        Error::Store(store_error) if store_error.is_transient() => Status::unavailable(error.to_string()),
        Error::Archive(_) | Error::Store(_) => {
            tracing::error!(%error, "proof failed");
            Status::internal(error.to_string())
        }
    }
}
