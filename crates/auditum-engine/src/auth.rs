//! API keys (docs/API.md): `authorization: Bearer <secret>` checked against configured SHA-256
//! hashes in constant time, scopes, tenant binding, and a token bucket per key.

use crate::metrics::{KeyLabel, METRICS};
use auditum_format::rules;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Why a call is refused, before it runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Denied {
    /// No key, or not a configured one.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known key without the scope or the tenant the call needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// The key's token bucket is empty for `wait`.
    #[error("api key {key_id:?}: rate limit exceeded; retry after {} ms", wait.as_millis().max(1))]
    RateLimited { key_id: String, wait: Duration },
}

impl Denied {
    /// The refusal's name in metrics and in meta-audit `error_code` (the gRPC code's name).
    pub fn code_name(&self) -> &'static str {
        match self {
            Denied::Unauthenticated(_) => "Unauthenticated",
            Denied::PermissionDenied(_) => "PermissionDenied",
            Denied::RateLimited { .. } => "ResourceExhausted",
        }
    }
}

/// What a key may do. `admin` grants every other scope but `meta_audit_forward`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Append,
    Query,
    Export,
    Proof,
    Admin,
    /// Append the meta-audit records of a read-only node's reads (DESIGN §13); never implied
    /// by `admin`: a key that can forge `auditum.*` records must be given this on purpose.
    MetaAuditForward,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Append => "append",
            Scope::Query => "query",
            Scope::Export => "export",
            Scope::Proof => "proof",
            Scope::Admin => "admin",
            Scope::MetaAuditForward => "meta_audit_forward",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        [Scope::Append, Scope::Query, Scope::Export, Scope::Proof, Scope::Admin, Scope::MetaAuditForward]
            .into_iter()
            .find(|scope| scope.as_str() == text)
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

/// One configured key, its defaults resolved: only the SHA-256 of its secret is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeySpec {
    pub id: String,
    /// Hex SHA-256 of the whole bearer secret.
    pub secret_sha256: String,
    /// A tenant id, or `*` for a platform key.
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub rate_per_second: f64,
    pub burst: f64,
}

impl ApiKey {
    fn new(key: &ApiKeySpec) -> Option<ApiKey> {
        let mut secret_sha256 = [0u8; 32];
        hex::decode_to_slice(&key.secret_sha256, &mut secret_sha256).ok()?;
        Some(ApiKey {
            id: key.id.clone(),
            secret_sha256,
            tenant: (key.tenant != "*").then(|| key.tenant.clone()),
            scopes: key.scopes.clone(),
            bucket: Mutex::new(TokenBucket::new(key.rate_per_second, key.burst)),
        })
    }

    fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || (scope != Scope::MetaAuditForward && self.scopes.contains(&Scope::Admin))
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
    pub fn new(keys: &[ApiKeySpec]) -> Authenticator {
        Authenticator { keys: keys.iter().filter_map(ApiKey::new).map(Arc::new).collect() }
    }

    pub fn development_mode(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller of a request from its `authorization` header (None when absent; a value that
    /// is not text arrives as ""): its key, or the anonymous caller of development mode.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Denied> {
        if self.development_mode() {
            return Ok(Caller { key: None });
        }
        let Some(header) = authorization else {
            return Err(Denied::Unauthenticated("authorization: missing; send `authorization: Bearer <api key>`".into()));
        };
        let secret = Some(header)
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| Denied::Unauthenticated("authorization: must be `Bearer <api key>`".into()))?;
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
                Err(Denied::Unauthenticated("authorization: the api key is not valid".into()))
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

    /// The scopes the key holds as configured (none listed for development mode's caller).
    pub fn scopes(&self) -> Vec<&'static str> {
        self.key.as_ref().map(|key| key.scopes.iter().map(|scope| scope.as_str()).collect()).unwrap_or_default()
    }

    pub fn require_scope(&self, scope: Scope) -> Result<(), Denied> {
        match &self.key {
            // Development mode accepts everything but forging the server's own records.
            None if scope == Scope::MetaAuditForward => Err(Denied::PermissionDenied(
                "forwarding meta-audit records needs an api key with the \"meta_audit_forward\" scope (there is none in development mode)"
                    .into(),
            )),
            Some(key) if !key.has(scope) => {
                Err(Denied::PermissionDenied(format!("api key {:?} lacks the {:?} scope", key.id, scope.as_str())))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a tenant other than the key's own; `field` names where the tenant came from.
    pub fn require_tenant(&self, field: &str, tenant: &str) -> Result<(), Denied> {
        match self.tenant() {
            Some(own) if own != tenant => Err(Denied::PermissionDenied(format!(
                "{field}: api key {:?} is bound to tenant {own:?} and cannot reach tenant {}",
                self.key_id(),
                rules::echo(tenant)
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses calls that cover every tenant of a log to tenant-bound keys.
    pub fn require_platform(&self, what: &str) -> Result<(), Denied> {
        match self.tenant() {
            Some(own) => Err(Denied::PermissionDenied(format!(
                "{what} covers every tenant of the log: api key {:?} is bound to tenant {own:?}; use a key with tenant \"*\"",
                self.key_id()
            ))),
            None => Ok(()),
        }
    }

    /// Charges the key's token bucket; RESOURCE_EXHAUSTED with a retry delay when empty.
    pub fn charge(&self, cost: usize) -> Result<(), Denied> {
        let Some(key) = &self.key else { return Ok(()) };
        let outcome = key.bucket.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take(cost as f64, Instant::now());
        let Err(wait) = outcome else { return Ok(()) };
        METRICS.rate_limited.get_or_create(&KeyLabel { key: key.id.clone() }).inc();
        Err(Denied::RateLimited { key_id: key.id.clone(), wait: wait.max(Duration::from_millis(1)) })
    }
}

/// A new secret for key `id`: `<id>.<43 base64url characters>` (256 random bits).
pub fn generate_secret(id: &str) -> String {
    use base64::Engine;
    let random: [u8; 32] = rand::random();
    format!("{id}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

/// A key's id and tenant rules, shared by the config and `auditum keygen api-key`: on failure,
/// the field (`id` or `tenant`) and why.
pub fn check_api_key_identity(id: &str, tenant: &str) -> std::result::Result<(), (&'static str, String)> {
    if !rules::is_valid_name(id) {
        return Err(("id", format!("{id:?} must be 1-64 characters of [a-z0-9_-]")));
    }
    if tenant != "*" && !rules::is_valid_tenant_id(tenant) {
        return Err(("tenant", format!("{tenant:?} is neither a valid tenant id nor \"*\"")));
    }
    Ok(())
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
