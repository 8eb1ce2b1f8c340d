//! API keys (DESIGN §8): `authorization: Bearer <secret>` checked against configured SHA-256
//! hashes in constant time, scopes, tenant binding, and a token bucket per key.

use crate::config::{ApiKeyConfig, Config};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tonic::Status;

/// What a key may do. `admin` grants every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Append,
    Query,
    Export,
    Proof,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Append => "append",
            Scope::Query => "query",
            Scope::Export => "export",
            Scope::Proof => "proof",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        [Scope::Append, Scope::Query, Scope::Export, Scope::Proof, Scope::Admin].into_iter().find(|scope| scope.as_str() == text)
    }
}

/// A token bucket: `rate` tokens per second up to `burst`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket { rate, burst, tokens: burst, refilled_at: Instant::now() }
    }

    /// Takes `cost` tokens (at most a full bucket), or says how long until they are there.
    fn take(&mut self, cost: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled_at = now;
        // A call bigger than the bucket drains a full bucket rather than never passing.
        let cost = cost.min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(());
        }
        Err(Duration::from_secs_f64((cost - self.tokens) / self.rate))
    }
}

#[derive(Debug)]
pub struct ApiKey {
    pub id: String,
    secret_sha256: [u8; 32],
    /// None: a platform key (`tenant = "*"`).
    pub tenant: Option<String>,
    scopes: Vec<Scope>,
    bucket: Mutex<TokenBucket>,
}

impl ApiKey {
    fn from_config(key: &ApiKeyConfig, config: &Config) -> Option<ApiKey> {
        let mut secret_sha256 = [0u8; 32];
        hex::decode_to_slice(&key.secret_sha256, &mut secret_sha256).ok()?;
        let rate = key.rate_per_second.unwrap_or(config.key_rate_per_second);
        let burst = key.burst.unwrap_or(config.key_rate_burst);
        Some(ApiKey {
            id: key.id.clone(),
            secret_sha256,
            tenant: (key.tenant != "*").then(|| key.tenant.clone()),
            scopes: key.scopes.clone(),
            bucket: Mutex::new(TokenBucket::new(rate, burst)),
        })
    }

    fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// Checks the bearer secret of every call.
#[derive(Debug)]
pub struct Authenticator {
    keys: Vec<Arc<ApiKey>>,
}

pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Authenticator {
    /// Keys from a validated config; an empty list is development mode.
    pub fn from_config(config: &Config) -> Authenticator {
        let keys = config.api_keys.iter().filter_map(|key| ApiKey::from_config(key, config)).map(Arc::new).collect();
        Authenticator { keys }
    }

    pub fn development_mode(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller of a request: its key, or the anonymous caller of development mode.
    pub fn authenticate(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Caller, Status> {
        if self.development_mode() {
            return Ok(Caller { key: None });
        }
        let Some(header) = metadata.get("authorization") else {
            return Err(Status::unauthenticated("authorization: missing; send `authorization: Bearer <api key>`"));
        };
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| Status::unauthenticated("authorization: must be `Bearer <api key>`"))?;
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        // Every configured hash is compared, in constant time, whatever matches first.
        let mut found: Option<&Arc<ApiKey>> = None;
        for key in &self.keys {
            if bool::from(key.secret_sha256.ct_eq(&presented)) {
                found = Some(key);
            }
        }
        match found {
            Some(key) => Ok(Caller { key: Some(key.clone()) }),
            None => {
                // Secrets from `auditum keygen api-key` start with their key id: name it, never the secret.
                let claimed = secret.split_once('.').map(|(id, _)| id).filter(|id| self.keys.iter().any(|key| key.id == *id));
                match claimed {
                    Some(id) => tracing::warn!(key_id = %id, "api key refused: wrong secret"),
                    None => tracing::warn!("api key refused: unknown secret"),
                }
                Err(Status::unauthenticated("authorization: the api key is not valid"))
            }
        }
    }
}

/// Who is calling: a configured key, or nobody in development mode.
#[derive(Debug, Clone)]
pub struct Caller {
    key: Option<Arc<ApiKey>>,
}

impl Caller {
    /// The anonymous caller of development mode (and of in-process tools).
    pub fn anonymous() -> Caller {
        Caller { key: None }
    }

    pub fn key_id(&self) -> &str {
        self.key.as_ref().map(|key| key.id.as_str()).unwrap_or("anonymous")
    }

    pub fn is_anonymous(&self) -> bool {
        self.key.is_none()
    }

    /// The tenant the key is bound to; None for platform keys and development mode.
    pub fn tenant(&self) -> Option<&str> {
        self.key.as_ref().and_then(|key| key.tenant.as_deref())
    }

    pub fn require_scope(&self, scope: Scope) -> Result<(), Status> {
        match &self.key {
            Some(key) if !key.has(scope) => {
                Err(Status::permission_denied(format!("api key {:?} lacks the {:?} scope", key.id, scope.as_str())))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a tenant other than the key's own; `field` names where the tenant came from.
    pub fn require_tenant(&self, field: &str, tenant: &str) -> Result<(), Status> {
        match self.tenant() {
            Some(own) if own != tenant => Err(Status::permission_denied(format!(
                "{field}: api key {:?} is bound to tenant {own:?} and cannot reach tenant {tenant:?}",
                self.key_id()
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses calls that cover every tenant of a log to tenant-bound keys.
    pub fn require_platform(&self, what: &str) -> Result<(), Status> {
        match self.tenant() {
            Some(own) => Err(Status::permission_denied(format!(
                "{what} covers every tenant of the log: api key {:?} is bound to tenant {own:?}; use a key with tenant \"*\"",
                self.key_id()
            ))),
            None => Ok(()),
        }
    }

    /// Charges the key's token bucket; RESOURCE_EXHAUSTED with a retry delay when empty.
    pub fn charge(&self, cost: usize) -> Result<(), Status> {
        let Some(key) = &self.key else { return Ok(()) };
        let outcome = key.bucket.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take(cost as f64, Instant::now());
        let Err(wait) = outcome else { return Ok(()) };
        crate::metrics::METRICS.rate_limited.get_or_create(&crate::metrics::KeyLabel { key: key.id.clone() }).inc();
        Err(rate_limited(&key.id, wait))
    }
}

/// RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` detail and a `retry-after` header (seconds).
fn rate_limited(key_id: &str, wait: Duration) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let wait = wait.max(Duration::from_millis(1));
    let mut status = Status::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("api key {key_id:?}: rate limit exceeded; retry after {} ms", wait.as_millis().max(1)),
        ErrorDetails::with_retry_info(Some(wait)),
    );
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(seconds.to_string()) {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// A new secret for key `id`: `<id>.<43 base64url characters>` (256 random bits).
pub fn generate_secret(id: &str) -> String {
    use base64::Engine;
    let random: [u8; 32] = rand::random();
    format!("{id}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate_and_caps_at_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0);
        bucket.refilled_at = start;
        for _ in 0..5 {
            bucket.take(1.0, start).unwrap();
        }
        let wait = bucket.take(1.0, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        bucket.take(1.0, start + Duration::from_millis(100)).unwrap();
        // An hour idle refills only to the burst.
        let later = start + Duration::from_secs(3600);
        bucket.take(5.0, later).unwrap();
        assert!(bucket.take(1.0, later).is_err());
        // A call bigger than the bucket passes once the bucket is full.
        let full = later + Duration::from_secs(1);
        bucket.take(1000.0, full).unwrap();
        assert!(bucket.take(1.0, full).is_err());
    }

    #[test]
    fn secrets_name_their_key_and_hash_to_the_config_form() {
        let secret = generate_secret("billing");
        assert!(secret.starts_with("billing.") && secret.len() == "billing.".len() + 43);
        assert_ne!(secret, generate_secret("billing"));
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
