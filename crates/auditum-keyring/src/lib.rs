//! auditum's keyring (DESIGN §14): personal fields are encrypted at ingest under a key per data
//! subject, and a subject (or a whole tenant) is erased by destroying its keys.
//!
//! Why keys and not rows: every leaf hash, Merkle proof and signed checkpoint covers the
//! ciphertext, so destroying a key makes the plaintext unrecoverable while every hash stays
//! valid; nothing sealed is ever rewritten.
//!
//! Layout, relative to the keyring store (`paths`): per tenant a random secret; per (tenant,
//! subject, generation) a random data key under a kid derived from the tenant secret; both
//! wrapped under the key-encryption key (`Kek`). An erased kid leaves an empty tombstone, and is
//! never recreated: the subject's next event takes the next generation.

mod cache;
mod envelope;
mod kek;
mod keyring;
mod marker;
pub mod paths;
mod rotate;
#[cfg(test)]
mod tests;

pub use kek::Kek;
pub use keyring::{Keyring, KeysInUse};
pub use rotate::{RotateReport, rotate_kek};

use auditum_format::event::EventRecord;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("keyring store: {0}")]
    Store(#[from] auditum_store::Error),
    /// The KEK could not be loaded; `origin` names the file or the variable (never the value).
    #[error("kek {origin}: {reason}")]
    Kek { origin: String, reason: String },
    #[error("keyring object {key} is wrapped under kek {wrapped}; the configured kek is {configured}")]
    WrongKek { key: String, wrapped: String, configured: String },
    #[error("keyring object {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "tenant id {tenant:?} cannot name keyring objects: with encryption a tenant id is letters, digits and . _ : -, and not \".\", \"..\" or \".tmp-…\""
    )]
    InvalidTenant { tenant: String },
    #[error(
        "keyring {key}: a rotation from kek {from} to kek {to} did not finish: run `auditum keyring rotate-kek` again with the old kek configured and --new-kek-file the new one"
    )]
    RotationIncomplete { key: String, from: String, to: String },
    #[error("aes-256-gcm failed: {0}")]
    Crypto(&'static str),
}

impl Error {
    /// Whether retrying later may succeed: an unreachable keyring store.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store(error) if error.is_transient())
    }
}

/// The columns that may be encrypted, in the order of the stored columns.
pub const ENCRYPTABLE_COLUMNS: [&str; 8] =
    ["actor_name", "target_name", "reason", "source_ip", "user_agent", "before", "after", "metadata"];

/// Shown for a value whose key was destroyed.
pub const ERASED: &str = "[erased]";
/// Shown for a value whose authentication fails (moved or altered ciphertext): never plaintext.
pub const UNDECRYPTABLE: &str = "[undecryptable]";
/// Values starting with this are reserved for auditum's ciphertexts (the validator refuses them on ingest).
pub use auditum_format::rules::ENCRYPTED_VALUE_PREFIX as RESERVED_PREFIX;

/// The set of encrypted columns of a log (bit i = `ENCRYPTABLE_COLUMNS[i]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncryptedColumns(u8);

impl EncryptedColumns {
    /// Every encryptable column.
    pub const ALL: EncryptedColumns = EncryptedColumns(0xFF);

    pub fn parse(names: &[String]) -> std::result::Result<Self, String> {
        let mut bits = 0u8;
        for name in names {
            let Some(index) = ENCRYPTABLE_COLUMNS.iter().position(|column| column == name) else {
                return Err(format!("{name:?} is not an encryptable column: use {}", ENCRYPTABLE_COLUMNS.join(", ")));
            };
            bits |= 1 << index;
        }
        Ok(EncryptedColumns(bits))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn contains(&self, column: &str) -> bool {
        ENCRYPTABLE_COLUMNS.iter().position(|name| *name == column).is_some_and(|index| self.has(index))
    }

    pub fn names(&self) -> Vec<&'static str> {
        ENCRYPTABLE_COLUMNS.iter().enumerate().filter(|(index, _)| self.has(*index)).map(|(_, name)| *name).collect()
    }

    /// These columns but `column`.
    pub fn without(self, column: &str) -> EncryptedColumns {
        match ENCRYPTABLE_COLUMNS.iter().position(|name| *name == column) {
            Some(index) => EncryptedColumns(self.0 & !(1 << index)),
            None => self,
        }
    }

    pub(crate) fn has(&self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
}

/// Column `index` of `ENCRYPTABLE_COLUMNS` in a record.
pub(crate) fn column(record: &EventRecord, index: usize) -> Option<&str> {
    match index {
        0 => record.actor_name.as_deref(),
        1 => record.target_name.as_deref(),
        2 => record.reason.as_deref(),
        3 => record.source_ip.as_deref(),
        4 => record.user_agent.as_deref(),
        5 => record.before.as_deref(),
        6 => record.after.as_deref(),
        7 => record.metadata.as_deref(),
        _ => None,
    }
}

pub(crate) fn column_mut(record: &mut EventRecord, index: usize) -> Option<&mut Option<String>> {
    Some(match index {
        0 => &mut record.actor_name,
        1 => &mut record.target_name,
        2 => &mut record.reason,
        3 => &mut record.source_ip,
        4 => &mut record.user_agent,
        5 => &mut record.before,
        6 => &mut record.after,
        7 => &mut record.metadata,
        _ => return None,
    })
}
