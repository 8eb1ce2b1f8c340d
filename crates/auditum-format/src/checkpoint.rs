//! Signed checkpoints (docs/FORMAT.md, Checkpoints and keys): a C2SP tlog-checkpoint in a C2SP signed note, Ed25519.

use crate::merkle::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

const ED25519_ALGORITHM: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed verifier key: {0}")]
    BadVerifierKey(String),
    #[error("malformed signing key in {path}: {reason}")]
    BadSigningKey { path: PathBuf, reason: String },
    #[error("cannot access key file {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("checkpoint has no valid signature by {key_name} (key id {key_id})")]
    BadSignature { key_name: String, key_id: String },
}

fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0x0A, ED25519_ALGORITHM]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(|ch| ch.is_whitespace() || ch.is_control())
}

/// A log's signing key and its note key name (the log's origin).
#[derive(Clone)]
pub struct Signer {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Signer").field("name", &self.name).field("key_id", &hex::encode(self.key_id())).finish()
    }
}

impl Signer {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Signer> {
        if !valid_key_name(name) {
            return Err(Error::BadVerifierKey(format!("key name {name:?} must be non-empty with no '+' or spaces")));
        }
        Ok(Signer { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// A new key, seeded straight from the operating system's RNG.
    pub fn generate(name: &str) -> Result<Signer> {
        use rand::RngCore;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Signer::from_seed(name, seed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.key.verifying_key().as_bytes())
    }

    /// `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self) -> String {
        let mut encoded = vec![ED25519_ALGORITHM];
        encoded.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.key_id()), BASE64.encode(encoded))
    }

    pub fn verifier(&self) -> Verifier {
        Verifier { name: self.name.clone(), key_id: self.key_id(), key: self.key.verifying_key() }
    }

    /// The signer-key text form: `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn to_private_key_text(&self) -> String {
        let mut encoded = vec![ED25519_ALGORITHM];
        encoded.extend_from_slice(&self.key.to_bytes());
        format!("{PRIVATE_KEY_PREFIX}{}+{}+{}", self.name, hex::encode(self.key_id()), BASE64.encode(encoded))
    }

    pub fn from_private_key_text(text: &str, path: &Path) -> Result<Signer> {
        let bad = |reason: &str| Error::BadSigningKey { path: path.to_path_buf(), reason: reason.to_string() };
        let rest = text.trim().strip_prefix(PRIVATE_KEY_PREFIX).ok_or_else(|| bad("expected PRIVATE+KEY+ prefix"))?;
        // Names never contain '+'; base64 may, so split from the left.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+<name>+<key id>+<key>"));
        };
        let bytes = BASE64.decode(encoded).map_err(|_| bad("key is not base64"))?;
        if bytes.len() != 33 || bytes[0] != ED25519_ALGORITHM {
            return Err(bad("expected an ed25519 key (0x01 followed by a 32-byte seed)"));
        }
        let seed: [u8; 32] = bytes[1..].try_into().map_err(|_| bad("bad seed length"))?;
        let signer = Signer::from_seed(name, seed)?;
        if hex::encode(signer.key_id()) != id_hex {
            return Err(bad("key id does not match the key"));
        }
        Ok(signer)
    }

    /// Loads the key at `path`, or generates one (mode 0600) with its `.vkey` beside it.
    pub fn load_or_generate(path: &Path, name: &str) -> Result<(Signer, bool)> {
        let key_error = |source| Error::KeyFile { path: path.to_path_buf(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let signer = Signer::from_private_key_text(&text, path)?;
                if signer.name() != name {
                    return Err(Error::BadSigningKey {
                        path: path.to_path_buf(),
                        reason: format!("key is named {:?} but the log's origin is {name:?}", signer.name()),
                    });
                }
                Ok((signer, false))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // A verifier key without its signing key is a lost key, not a first start: a new
                // key would not match the checkpoints already signed, and the auditors' copy of
                // the verifier key must never be overwritten.
                let verifier_path = path.with_extension("vkey");
                if verifier_path.exists() {
                    return Err(Error::BadSigningKey {
                        path: path.to_path_buf(),
                        reason: format!(
                            "missing, but its verifier key {} exists: restore the signing key (a new one would not match the checkpoints it signed)",
                            verifier_path.display()
                        ),
                    });
                }
                let signer = Signer::generate(name)?;
                signer.write_files(path).map_err(key_error)?;
                Ok((signer, true))
            }
            Err(error) => Err(key_error(error)),
        }
    }

    /// Writes the private key (0600, create-only) and the verifier key beside it (`.vkey`).
    pub fn write_files(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        file.write_all(format!("{}\n", self.to_private_key_text()).as_bytes())?;
        file.sync_all()?;
        // Create-only too: a verifier key handed to auditors is never replaced.
        let mut verifier = std::fs::OpenOptions::new().write(true).create_new(true).open(path.with_extension("vkey"))?;
        verifier.write_all(format!("{}\n", self.verifier_key()).as_bytes())?;
        verifier.sync_all()?;
        Ok(())
    }

    /// Signs the checkpoint for a ledger tree of `size` entries with root `root`.
    pub fn sign_checkpoint(&self, size: u64, root: &Hash) -> String {
        let body = checkpoint_body(&self.name, size, root);
        let signature = self.key.sign(body.as_bytes());
        let mut signed = self.key_id().to_vec();
        signed.extend_from_slice(&signature.to_bytes());
        format!("{body}\n{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(signed))
    }
}

/// `"<origin>\n<N>\n<base64 root>\n"`, the signed bytes.
pub fn checkpoint_body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", BASE64.encode(root))
}

/// A pinned verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub key_id: [u8; 4],
    key: VerifyingKey,
}

impl Verifier {
    pub fn parse(text: &str) -> Result<Verifier> {
        let text = text.trim();
        let bad = |reason: &str| Error::BadVerifierKey(format!("{reason} (expected <name>+<hex key id>+<base64 key>)"));
        // Names never contain '+'; base64 may, so split from the left.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("missing fields"));
        };
        if !valid_key_name(name) {
            return Err(bad("invalid key name"));
        }
        let id_bytes = hex::decode(id_hex).map_err(|_| bad("key id is not hex"))?;
        let key_id: [u8; 4] = id_bytes.try_into().map_err(|_| bad("key id is not 4 bytes"))?;
        let bytes = BASE64.decode(encoded).map_err(|_| bad("key is not base64"))?;
        if bytes.len() != 33 || bytes[0] != ED25519_ALGORITHM {
            return Err(bad("not an ed25519 key"));
        }
        let public: [u8; 32] = bytes[1..].try_into().map_err(|_| bad("bad key length"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("invalid ed25519 point"))?;
        if self::key_id(name, &public) != key_id {
            return Err(bad("key id does not match the key"));
        }
        Ok(Verifier { name: name.to_string(), key_id, key })
    }

    /// The key in its text form, as [`Signer::verifier_key`] writes it.
    pub fn verifier_key(&self) -> String {
        let mut encoded = vec![ED25519_ALGORITHM];
        encoded.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.key_id), BASE64.encode(encoded))
    }

    /// Parses a signed checkpoint and checks it carries a valid signature by this key.
    pub fn verify_checkpoint(&self, note: &str) -> Result<Checkpoint> {
        let checkpoint = Checkpoint::parse(note)?;
        let body = checkpoint_body(&checkpoint.origin, checkpoint.size, &checkpoint.root);
        let bad_signature = || Error::BadSignature { key_name: self.name.clone(), key_id: hex::encode(self.key_id) };
        for (name, signed) in &checkpoint.signatures {
            if name != &self.name || signed.len() != 68 || signed[..4] != self.key_id {
                continue;
            }
            let signature = ed25519_dalek::Signature::from_slice(&signed[4..]).map_err(|_| bad_signature())?;
            if self.key.verify(body.as_bytes(), &signature).is_ok() {
                return Ok(checkpoint);
            }
        }
        Err(bad_signature())
    }
}

/// A pinned verifier key given as its text (`name+id+key`) or as a file holding it: what
/// `--trusted-key` and a read-only node's `trusted_key` / `verifier_key` take.
pub fn read_verifier_key(text: &str) -> std::result::Result<Verifier, String> {
    let key_text = if Path::new(text).is_file() {
        std::fs::read_to_string(text).map_err(|error| format!("{text}: {error}"))?
    } else if !text.contains('+') {
        // Not a key's text: a path that does not exist.
        return Err(format!("{text}: no such file (and not a key, which reads name+id+key)"));
    } else {
        text.to_string()
    };
    Verifier::parse(&key_text).map_err(|error| error.to_string())
}

/// A parsed checkpoint; signatures not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// (key name, key id ‖ signature) of every signature line.
    pub signatures: Vec<(String, Vec<u8>)>,
}

impl Checkpoint {
    pub fn parse(note: &str) -> Result<Checkpoint> {
        let malformed = |reason: &str| Error::Malformed(reason.to_string());
        let (body, signature_block) = note.split_once("\n\n").ok_or_else(|| malformed("no blank line before the signatures"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() != 3 {
            return Err(malformed("body must be exactly origin, size and root"));
        }
        let origin = lines[0];
        if origin.is_empty() {
            return Err(malformed("empty origin"));
        }
        let size_text = lines[1];
        if size_text.is_empty()
            || !size_text.bytes().all(|byte| byte.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(malformed("size is not a decimal number"));
        }
        let size: u64 = size_text.parse().map_err(|_| malformed("size out of range"))?;
        let root_bytes = BASE64.decode(lines[2]).map_err(|_| malformed("root is not base64"))?;
        let root: Hash = root_bytes.try_into().map_err(|_| malformed("root is not 32 bytes"))?;
        if BASE64.encode(root) != lines[2] {
            return Err(malformed("root is not canonical base64"));
        }
        let signature_lines = signature_block.strip_suffix('\n').ok_or_else(|| malformed("note must end with a newline"))?;
        let mut signatures = Vec::new();
        for line in signature_lines.split('\n') {
            let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| malformed("signature line must start with an em dash"))?;
            let (name, encoded) = rest.split_once(' ').ok_or_else(|| malformed("signature line needs a name and a signature"))?;
            let signed = BASE64.decode(encoded).map_err(|_| malformed("signature is not base64"))?;
            signatures.push((name.to_string(), signed));
        }
        if signatures.is_empty() {
            return Err(malformed("no signature lines"));
        }
        Ok(Checkpoint { origin: origin.to_string(), size, root, signatures })
    }
}

/// Key file of a log under the data directory.
pub fn signing_key_path(data_dir: &Path, log: &str) -> PathBuf {
    data_dir.join("keys").join(format!("{log}.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_text_round_trips() {
        let signer = Signer::generate("auditum/test").unwrap();
        let again = Signer::from_private_key_text(&signer.to_private_key_text(), Path::new("k")).unwrap();
        assert_eq!(again.verifier_key(), signer.verifier_key());
        assert_eq!(
            Verifier::parse(&signer.verifier_key()).unwrap().verifier_key(),
            signer.verifier_key(),
            "a pinned key prints as it was given"
        );
    }

    #[test]
    fn checkpoint_signed_by_another_key_or_altered_is_rejected() {
        let signer = Signer::generate("auditum/default").unwrap();
        let note = signer.sign_checkpoint(3, &[7; 32]);
        let verifier = signer.verifier();
        assert_eq!(verifier.verify_checkpoint(&note).unwrap().size, 3);
        let other = Signer::generate("auditum/default").unwrap().verifier();
        assert!(matches!(other.verify_checkpoint(&note), Err(Error::BadSignature { .. })));
        let altered = note.replacen("\n3\n", "\n4\n", 1);
        assert!(verifier.verify_checkpoint(&altered).is_err());
        assert!(Checkpoint::parse("x\n01\nAAAA\n\n").is_err());
    }
}
