//! Field encryption as the engine sees it (DESIGN §14): a log with a keyring encrypts its
//! `encrypt_fields` before the WAL and decrypts on every read path; erasure destroys keys, so
//! every hash, proof and checkpoint stays valid because they cover the ciphertext.

use crate::error::{Error, Result};
use crate::log::Log;
use crate::read::{FilterSpec, ScanRow};

pub use crate::log::Encryption;

/// Filtering on an encrypted column cannot work (each value is its own ciphertext): refused,
/// naming the field, rather than answered with nothing.
pub fn refuse_encrypted_filters(log: &Log, filter: &FilterSpec) -> Result<()> {
    let Some(encryption) = log.encryption() else { return Ok(()) };
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
