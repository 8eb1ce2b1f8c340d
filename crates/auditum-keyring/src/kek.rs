//! The key-encryption key: loaded from a file or a variable, never printed.

use crate::{Error, Result};
use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use base64::Engine;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// 32 random bytes. aws-lc aborts the process rather than let its generator fail, so the error
/// branch cannot be reached.
pub(crate) fn random_32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        unreachable!("aws-lc's random generator does not fail");
    }
    bytes
}

/// The key-encryption key. Debug prints only its fingerprint.
pub struct Kek {
    key: LessSafeKey,
    fingerprint: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Kek").field("fingerprint", &self.fingerprint).finish()
    }
}

/// First 16 lowercase hex chars of SHA-256("auditum/kek/v1\n" ‖ kek).
fn fingerprint_of(bytes: &[u8; 32]) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(b"auditum/kek/v1\n");
    context.update(bytes);
    let mut hex = hex::encode(context.finish().as_ref());
    hex.truncate(16);
    hex
}

/// 64 hex chars or base64 of 32 bytes (surrounding whitespace ignored).
fn parse_text(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let mut bytes = [0u8; 32];
    if text.len() == 64 && hex::decode_to_slice(text, &mut bytes).is_ok() {
        return Some(bytes);
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    bytes.copy_from_slice(decoded.get(..32).filter(|_| decoded.len() == 32)?);
    Some(bytes)
}

impl Kek {
    /// 32 raw bytes, or a text file holding 64 hex chars or base64 of 32 bytes (trailing
    /// newline ok). Refuses a file readable or writable by group or others.
    pub fn from_file(path: &Path) -> Result<Kek> {
        let error = |reason: String| Error::Kek { origin: format!("file {}", path.display()), reason };
        let metadata = std::fs::metadata(path).map_err(|source| error(format!("cannot read it: {source}")))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(error(format!("its mode is {mode:04o}, so group or others may read it: `chmod 600 {}`", path.display())));
        }
        let contents = std::fs::read(path).map_err(|source| error(format!("cannot read it: {source}")))?;
        if let Ok(raw) = <[u8; 32]>::try_from(contents.as_slice()) {
            return Ok(Kek::from_bytes(raw));
        }
        std::str::from_utf8(&contents)
            .ok()
            .and_then(parse_text)
            .map(Kek::from_bytes)
            .ok_or_else(|| error(format!("holds {} bytes: expected 32 raw bytes, 64 hex chars or base64 of 32 bytes", contents.len())))
    }

    /// The variable holds 64 hex chars or base64 of 32 bytes. Errors never show the value.
    pub fn from_env(variable: &str) -> Result<Kek> {
        let error = |reason: &str| Error::Kek { origin: format!("variable {variable}"), reason: reason.to_string() };
        let value = match std::env::var(variable) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => return Err(error("is not set")),
            Err(std::env::VarError::NotUnicode(_)) => return Err(error("is not valid text")),
        };
        if value.trim().is_empty() {
            return Err(error("is empty"));
        }
        parse_text(&value).map(Kek::from_bytes).ok_or_else(|| error("must hold 64 hex chars or base64 of 32 bytes"))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Kek {
        let fingerprint = fingerprint_of(&bytes);
        // AES-256 takes any 32 bytes: this cannot fail.
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).unwrap_or_else(|_| unreachable!("32-byte aes-256 key")));
        Kek { key, fingerprint }
    }

    /// Writes 32 raw random bytes to a new file with mode 0600; an existing file is refused.
    pub fn write_new_file(path: &Path) -> Result<Kek> {
        let error = |reason: String| Error::Kek { origin: format!("file {}", path.display()), reason };
        let bytes = random_32();
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                error("already exists: it is never overwritten".to_string())
            } else {
                error(format!("cannot create it: {source}"))
            }
        })?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|source| error(format!("cannot write it: {source}")))?;
        Ok(Kek::from_bytes(bytes))
    }

    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    pub(crate) fn fingerprint_str(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn from_file_refuses_a_readable_file_and_accepts_raw_hex_and_base64() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = [7u8; 32];
        let open = write(dir.path(), "open", &bytes, 0o644);
        let error = Kek::from_file(&open).unwrap_err().to_string();
        assert!(error.contains(&open.display().to_string()) && error.contains("0644") && error.contains("chmod 600"), "{error}");

        let expected = Kek::from_bytes(bytes).fingerprint();
        let raw = write(dir.path(), "raw", &bytes, 0o600);
        let hex = write(dir.path(), "hex", format!("{}\n", hex::encode(bytes)).as_bytes(), 0o600);
        let b64 = write(dir.path(), "b64", format!("{}\n", base64::engine::general_purpose::STANDARD.encode(bytes)).as_bytes(), 0o400);
        for path in [raw, hex, b64] {
            assert_eq!(Kek::from_file(&path).unwrap().fingerprint(), expected, "{}", path.display());
        }

        let short = write(dir.path(), "short", b"abc\n", 0o600);
        let error = Kek::from_file(&short).unwrap_err().to_string();
        assert!(error.contains(&short.display().to_string()) && error.contains("32 raw bytes"), "{error}");
        let missing = dir.path().join("missing");
        assert!(Kek::from_file(&missing).unwrap_err().to_string().contains(&missing.display().to_string()));
    }

    #[test]
    fn from_env_names_the_variable_never_the_value() {
        // SAFETY: a variable name no other test reads or writes.
        unsafe {
            std::env::remove_var("AUDITUM_TEST_KEK_MISSING");
            std::env::set_var("AUDITUM_TEST_KEK_EMPTY", "");
            std::env::set_var("AUDITUM_TEST_KEK_SHORT", "deadbeef");
            std::env::set_var("AUDITUM_TEST_KEK_HEX", hex::encode([9u8; 32]));
        }
        for (variable, said) in
            [("AUDITUM_TEST_KEK_MISSING", "is not set"), ("AUDITUM_TEST_KEK_EMPTY", "is empty"), ("AUDITUM_TEST_KEK_SHORT", "64 hex")]
        {
            let error = Kek::from_env(variable).unwrap_err().to_string();
            assert!(error.contains(variable) && error.contains(said) && !error.contains("deadbeef"), "{error}");
        }
        assert_eq!(Kek::from_env("AUDITUM_TEST_KEK_HEX").unwrap().fingerprint(), Kek::from_bytes([9u8; 32]).fingerprint());
    }

    #[test]
    fn write_new_file_is_private_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let kek = Kek::write_new_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Kek::from_file(&path).unwrap().fingerprint(), kek.fingerprint());
        assert!(Kek::write_new_file(&path).unwrap_err().to_string().contains("already exists"));
        assert_eq!(kek.fingerprint().len(), 16);
        assert!(!format!("{kek:?}").contains(&hex::encode(std::fs::read(&path).unwrap())));
    }
}
