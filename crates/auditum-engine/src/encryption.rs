//! Field encryption as the engine sees it (DESIGN §14): a log with a keyring encrypts its
//! `encrypt_fields` before the WAL and decrypts on every read path; erasure destroys keys, so
//! every hash, proof and checkpoint stays valid because they cover the ciphertext.

use crate::access::Call;
use crate::error::{Error, Result};
use crate::log::Log;
use crate::read::{FilterSpec, ScanRow};

pub use crate::log::Encryption;

/// The log's encryption as a read may reveal it: only to a caller who may reach `tenant_id`.
/// Any other caller goes on to the tenant check, which refuses it and records the refusal, and
/// learns nothing of the log's configuration (not even its name) on the way.
pub fn encryption_shown_to<'log>(call: &Call, log: &'log Log, tenant_id: &str) -> Option<&'log Encryption> {
    call.caller.require_tenant("filter.tenant_id", tenant_id).ok()?;
    log.encryption()
}

/// Filtering on an encrypted column cannot work (each value is its own ciphertext): refused,
/// naming the field, rather than answered with nothing.
pub fn refuse_encrypted_filters(call: &Call, log: &Log, tenant_id: &str, filter: &FilterSpec) -> Result<()> {
    let Some(encryption) = encryption_shown_to(call, log, tenant_id) else { return Ok(()) };
    if !filter.source_ip.is_empty() && encryption.columns.contains("source_ip") {
        return Err(Error::bad_request(
            "filter.source_ip",
            format!("source_ip is encrypted in log {} (encrypt_fields), so it cannot be filtered on", log.name()),
        ));
    }
    Ok(())
}

/// Decrypts the rows of a read in place (no-op for a log without a keyring).
pub async fn decrypt_rows(log: &Log, rows: &mut [ScanRow]) -> Result<()> {
    let Some(encryption) = log.encryption() else { return Ok(()) };
    // A named fn, not a closure: a closure's lifetimes are not general enough for a spawned future.
    encryption.keyring.decrypt_each(rows.iter_mut().map(ScanRow::record_mut)).await.map_err(|source| keyring_error(log, source))
}

pub(crate) fn keyring_error(log: &Log, source: auditum_keyring::Error) -> Error {
    Error::Log(crate::log::Error::Keyring { log: log.name().to_string(), source })
}
