//! The pure crypto: kid derivation, the stored value format of an encrypted column, and the
//! wrapped-key object format. No I/O here.

use crate::kek::Kek;
use crate::{Error, Result};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Prefix of an encrypted column value: `auditum:enc:v1:<kid>:<base64>`.
pub const VALUE_PREFIX: &str = "auditum:enc:v1:";
/// Hex chars of a kid.
pub const KID_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// An AES-256-GCM key from 32 bytes.
pub(crate) fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    match UnboundKey::new(&AES_256_GCM, bytes) {
        Ok(key) => LessSafeKey::new(key),
        Err(_) => unreachable!("any 32 bytes are an aes-256 key"),
    }
}

/// The HMAC key of a tenant secret.
pub(crate) fn secret_key(secret: &[u8; 32]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// `hex(HMAC-SHA256(tenant_secret, "auditum/subject/v1\n" ‖ subject ‖ "\n" ‖ generation))[0..32]`.
pub(crate) fn derive_kid(secret: &hmac::Key, subject: &str, generation: u64) -> String {
    let mut context = hmac::Context::with_key(secret);
    context.update(b"auditum/subject/v1\n");
    context.update(subject.as_bytes());
    context.update(b"\n");
    context.update(generation.to_string().as_bytes());
    let tag = context.sign();
    hex::encode(&tag.as_ref()[..KID_LEN / 2])
}

/// Associated data of one column value: `"auditum/field/v1\n" ‖ tenant ‖ "\n" ‖ id ‖ "\n" ‖ column`.
pub(crate) fn field_aad(buf: &mut Vec<u8>, tenant: &str, id: &str, column: &str) {
    buf.clear();
    buf.extend_from_slice(b"auditum/field/v1\n");
    buf.extend_from_slice(tenant.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(id.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(column.as_bytes());
}

/// Random nonces drawn in bulk: one call to the generator costs about as much as sealing a
/// value, a few bytes more cost almost nothing. Each nonce is handed out once.
pub(crate) struct Nonces {
    pool: Vec<u8>,
    used: usize,
    /// Nonces the next fill draws.
    next_fill: usize,
}

impl Nonces {
    const PER_FILL: usize = 256;

    /// `expected`: how many the first fill draws (at most `PER_FILL`); later fills draw `PER_FILL`.
    pub fn new(expected: usize) -> Nonces {
        Nonces { pool: Vec::new(), used: 0, next_fill: expected.clamp(1, Self::PER_FILL) }
    }

    pub fn next(&mut self) -> Result<[u8; NONCE_LEN]> {
        if self.used == self.pool.len() {
            self.pool.resize(NONCE_LEN * self.next_fill, 0);
            self.next_fill = Self::PER_FILL;
            aws_lc_rs::rand::fill(&mut self.pool).map_err(|_| Error::Crypto("random nonce"))?;
            self.used = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&self.pool[self.used..self.used + NONCE_LEN]);
        self.used += NONCE_LEN;
        Ok(nonce)
    }
}

/// Encrypts one value: `auditum:enc:v1:<kid>:<base64(nonce ‖ ciphertext ‖ tag)>`. `scratch` is
/// reused between calls.
pub(crate) fn seal_value(
    key: &LessSafeKey,
    kid: &str,
    aad: &[u8],
    plaintext: &str,
    nonce: [u8; NONCE_LEN],
    scratch: &mut Vec<u8>,
) -> Result<String> {
    scratch.clear();
    scratch.extend_from_slice(&nonce);
    scratch.extend_from_slice(plaintext.as_bytes());
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut scratch[NONCE_LEN..])
        .map_err(|_| Error::Crypto("seal"))?;
    scratch.extend_from_slice(tag.as_ref());
    let mut out = String::with_capacity(VALUE_PREFIX.len() + KID_LEN + 1 + scratch.len().div_ceil(3) * 4);
    out.push_str(VALUE_PREFIX);
    out.push_str(kid);
    out.push(':');
    STANDARD.encode_string(&scratch, &mut out);
    Ok(out)
}

/// Splits an encrypted value into its kid and decodes the sealed bytes into `sealed`.
/// Err is why the value is malformed.
pub(crate) fn parse_value<'v>(value: &'v str, sealed: &mut Vec<u8>) -> std::result::Result<&'v str, &'static str> {
    let rest = value.strip_prefix(VALUE_PREFIX).ok_or("no auditum:enc:v1: prefix")?;
    let (kid, encoded) = rest.split_once(':').ok_or("no ':' after the kid")?;
    if kid.len() != KID_LEN || !kid.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("the kid is not 32 lowercase hex chars");
    }
    sealed.clear();
    STANDARD.decode_vec(encoded, sealed).map_err(|_| "the ciphertext is not base64")?;
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err("the ciphertext is too short");
    }
    Ok(kid)
}

/// Decrypts bytes from `parse_value`; None when authentication fails or the plaintext is not text.
pub(crate) fn open_value(key: &LessSafeKey, aad: &[u8], sealed: &mut [u8]) -> Option<String> {
    let (nonce, in_out) = sealed.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plaintext = key.open_in_place(nonce, Aad::from(aad), in_out).ok()?;
    String::from_utf8(plaintext.to_vec()).ok()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Wrapped {
    v: u32,
    kek: String,
    nonce: String,
    sealed: String,
}

/// Associated data of a wrapped key: `"auditum/keyring/v1\n" ‖ object key`.
fn wrap_aad(object_key: &str) -> Vec<u8> {
    [b"auditum/keyring/v1\n".as_slice(), object_key.as_bytes()].concat()
}

/// The wrapped-key object: `{"v":1,"kek":…,"nonce":…,"sealed":…}`, bound to its object key.
pub(crate) fn wrap(kek: &Kek, object_key: &str, secret: &[u8; 32]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Crypto("random nonce"))?;
    let mut sealed = secret.to_vec();
    kek.aead()
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(wrap_aad(object_key)), &mut sealed)
        .map_err(|_| Error::Crypto("wrap"))?;
    let wrapped = Wrapped { v: 1, kek: kek.fingerprint(), nonce: STANDARD.encode(nonce), sealed: STANDARD.encode(&sealed) };
    serde_json::to_vec(&wrapped).map_err(|error| Error::Corrupt { key: object_key.to_string(), reason: error.to_string() })
}

fn parse_wrapped(object_key: &str, body: &[u8]) -> Result<Wrapped> {
    let corrupt = |reason: String| Error::Corrupt { key: object_key.to_string(), reason };
    let wrapped: Wrapped = serde_json::from_slice(body).map_err(|error| corrupt(format!("not a wrapped key: {error}")))?;
    if wrapped.v != 1 {
        return Err(corrupt(format!("unknown wrapped-key version {}", wrapped.v)));
    }
    Ok(wrapped)
}

/// The fingerprint of the KEK a wrapped-key object is wrapped under.
pub(crate) fn wrapped_fingerprint(object_key: &str, body: &[u8]) -> Result<String> {
    Ok(parse_wrapped(object_key, body)?.kek)
}

/// The 32 bytes of a wrapped-key object; the object must be wrapped under `kek` at `object_key`.
pub(crate) fn unwrap(kek: &Kek, object_key: &str, body: &[u8]) -> Result<[u8; 32]> {
    let corrupt = |reason: &str| Error::Corrupt { key: object_key.to_string(), reason: reason.to_string() };
    let wrapped = parse_wrapped(object_key, body)?;
    if wrapped.kek != kek.fingerprint_str() {
        return Err(Error::WrongKek { key: object_key.to_string(), wrapped: wrapped.kek, configured: kek.fingerprint() });
    }
    let nonce = STANDARD.decode(&wrapped.nonce).map_err(|_| corrupt("the nonce is not base64"))?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| corrupt("the nonce is not 12 bytes"))?;
    let mut sealed = STANDARD.decode(&wrapped.sealed).map_err(|_| corrupt("the sealed key is not base64"))?;
    let opened = kek
        .aead()
        .open_in_place(nonce, Aad::from(wrap_aad(object_key)), &mut sealed)
        .map_err(|_| corrupt("authentication under the kek failed (altered, or moved from another object key)"))?;
    <[u8; 32]>::try_from(&*opened).map_err(|_| corrupt("the key is not 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bind_their_associated_data() {
        let key = aead_key(&[1u8; 32]);
        let (mut aad, mut scratch, mut sealed) = (Vec::new(), Vec::new(), Vec::new());
        field_aad(&mut aad, "acme", "evt-1", "reason");
        let kid = "0123456789abcdef0123456789abcdef";
        let mut nonces = Nonces::new(1);
        let value = seal_value(&key, kid, &aad, "because ✓", nonces.next().unwrap(), &mut scratch).unwrap();
        assert!(value.starts_with("auditum:enc:v1:0123456789abcdef0123456789abcdef:"), "{value}");
        assert_eq!(parse_value(&value, &mut sealed), Ok(kid));
        assert_eq!(open_value(&key, &aad, &mut sealed.clone()).as_deref(), Some("because ✓"));
        // Fresh nonce each time.
        assert_ne!(seal_value(&key, kid, &aad, "because ✓", nonces.next().unwrap(), &mut scratch).unwrap(), value);
        let drawn: std::collections::HashSet<_> = (0..1000).map(|_| nonces.next().unwrap()).collect();
        assert_eq!(drawn.len(), 1000, "nonces are never handed out twice");
        field_aad(&mut aad, "acme", "evt-2", "reason");
        assert_eq!(open_value(&key, &aad, &mut sealed.clone()), None);
        for bad in ["auditum:enc:v1:xyz:AAAA", "auditum:enc:v1:0123456789abcdef0123456789abcdef:!!", "auditum:enc:v1:nokid"] {
            assert!(parse_value(bad, &mut sealed).is_err(), "{bad}");
        }
    }

    #[test]
    fn wrapped_keys_bind_their_object_key_and_kek() {
        let kek = Kek::from_bytes([2u8; 32]);
        let body = wrap(&kek, "default/keys/acme/aa", &[3u8; 32]).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.starts_with(&format!("{{\"v\":1,\"kek\":\"{}\",\"nonce\":\"", kek.fingerprint())), "{text}");
        assert_eq!(unwrap(&kek, "default/keys/acme/aa", &body).unwrap(), [3u8; 32]);
        let moved = unwrap(&kek, "default/keys/acme/bb", &body).unwrap_err();
        assert!(matches!(moved, Error::Corrupt { .. }) && moved.to_string().contains("default/keys/acme/bb"), "{moved}");
        let other = Kek::from_bytes([4u8; 32]);
        let wrong = unwrap(&other, "default/keys/acme/aa", &body).unwrap_err().to_string();
        assert!(
            wrong.contains("default/keys/acme/aa")
                && wrong.contains(&format!("wrapped under kek {}; the configured kek is {}", kek.fingerprint(), other.fingerprint())),
            "{wrong}"
        );
    }
}
