//! Object storage behind one trait: the file store here, S3 beside it. Both are checked by the
//! same conformance suite (`conformance`, run by `tests/it/store_conformance.rs`).

pub mod conformance;
mod file;
pub mod lifecycle;
mod s3;

pub use file::FileStore;
pub use s3::{S3Options, S3Store, parse_url as parse_s3_url};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("object {key} already exists with other content")]
    AlreadyExists { key: String },
    #[error("object {key} changed since it was read (precondition failed)")]
    PreconditionFailed { key: String },
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("i/o error on {key}: {source}")]
    Io { key: String, source: std::io::Error },
    #[error("invalid store url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("store task failed: {0}")]
    Task(String),
    #[error("object store error on {key}: {message}")]
    Backend { key: String, message: String, transient: bool },
    #[error("store {url} cannot be used: {reason}")]
    Misconfigured { url: String, reason: String },
    /// The object is in an archive storage class and has no restored copy (S3 `InvalidObjectState`).
    #[error("object {key} is archived and must be restored before it can be read")]
    Archived { key: String },
    /// The store has no such feature (legal hold and restores on a file store).
    #[error("store {url} does not support {what}")]
    Unsupported { url: String, what: &'static str },
}

impl Error {
    /// Whether retrying the same call later may succeed (outages, not conflicts).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Task(_) => true,
            Error::Backend { transient, .. } => *transient,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    Governance,
    Compliance,
}

/// Object Lock retention of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    pub retain_until: DateTime<Utc>,
}

/// A log's retention: every immutable object is locked for `days` from its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub mode: RetentionMode,
    pub days: u32,
}

impl RetentionPolicy {
    /// Whole seconds: what S3 keeps of a retain-until date, so the date a ledger entry records
    /// is exactly the object's.
    pub fn put_options(policy: Option<RetentionPolicy>) -> PutOptions {
        use chrono::SubsecRound;
        PutOptions {
            retention: policy.map(|policy| Retention {
                mode: policy.mode,
                retain_until: (Utc::now() + chrono::Duration::days(i64::from(policy.days))).trunc_subsecs(0),
            }),
            ..PutOptions::default()
        }
    }
}

impl std::str::FromStr for RetentionMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "compliance" => Ok(RetentionMode::Compliance),
            "governance" => Ok(RetentionMode::Governance),
            other => Err(format!("{other:?} is not compliance or governance")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub retention: Option<Retention>,
    /// Object Lock legal hold ON from the start (a batch sealed inside an active hold's range).
    pub legal_hold: bool,
    /// Storage class of the object; None is the store's default (S3 Standard).
    pub storage_class: Option<StorageClass>,
}

/// The S3 storage classes a log may write batches in or archive them to (DESIGN §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub enum StorageClass {
    #[serde(rename = "STANDARD")]
    Standard,
    #[serde(rename = "STANDARD_IA")]
    StandardIa,
    #[serde(rename = "INTELLIGENT_TIERING")]
    IntelligentTiering,
    #[serde(rename = "GLACIER_IR")]
    GlacierIr,
    #[serde(rename = "GLACIER")]
    Glacier,
    #[serde(rename = "DEEP_ARCHIVE")]
    DeepArchive,
}

impl StorageClass {
    pub const ALL: [StorageClass; 6] = [
        StorageClass::Standard,
        StorageClass::StandardIa,
        StorageClass::IntelligentTiering,
        StorageClass::GlacierIr,
        StorageClass::Glacier,
        StorageClass::DeepArchive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::GlacierIr => "GLACIER_IR",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
        }
    }

    /// Glacier Flexible Retrieval and Deep Archive: readable only through a restored copy.
    /// Glacier Instant Retrieval is read like Standard.
    pub fn needs_restore(self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }
}

impl std::fmt::Display for StorageClass {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for StorageClass {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        StorageClass::ALL.into_iter().find(|class| class.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = StorageClass::ALL.iter().map(|class| class.as_str()).collect();
            format!("{text:?} is not one of {}", names.join(", "))
        })
    }
}

/// Where an archived object's restored copy stands (S3 `x-amz-restore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreState {
    /// A restore was requested and is not done yet.
    InProgress,
    /// A readable copy exists until `expiry` (RFC 1123 text, as S3 gives it).
    Restored { expiry: Option<String> },
}

/// How fast (and how dear) a restore is: S3's retrieval tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTier {
    Expedited,
    Standard,
    Bulk,
}

/// What a restore request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreRequested {
    /// A new restore was started.
    Started,
    /// One is already under way (S3 `RestoreAlreadyInProgress`).
    AlreadyInProgress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Version id on a versioned store; None on the file store.
    pub version: Option<String>,
    pub etag: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub version: Option<String>,
    pub etag: Option<String>,
    pub retention: Option<Retention>,
    /// Object Lock legal hold (HeadObject only).
    pub legal_hold: bool,
    /// None for the default class (S3 Standard, and every file store object).
    pub storage_class: Option<StorageClass>,
    /// The restored copy of an archived object (HeadObject only).
    pub restore: Option<RestoreState>,
}

impl ObjectMeta {
    /// In an archive class with no readable restored copy: a GET answers `InvalidObjectState`.
    pub fn is_archived(&self) -> bool {
        self.storage_class.is_some_and(StorageClass::needs_restore) && !matches!(self.restore, Some(RestoreState::Restored { .. }))
    }
}

/// What a log asks of its store at startup (docs/FORMAT.md, Object layout; DESIGN §12).
#[derive(Debug, Clone, Default)]
pub struct ReadyCheck {
    pub keys: lifecycle::LogKeys,
    /// The log writes Object Lock retention: the bucket must have Object Lock on.
    pub object_lock_required: bool,
    /// The log's retention: no bucket lifecycle rule may delete a batch before it ends.
    pub retention_days: Option<u32>,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + Debug {
    /// The URL the store was opened from.
    fn url(&self) -> &str;

    /// Startup check (docs/FORMAT.md, Object layout): the store can hold this log, with Object
    /// Lock when required, and no lifecycle rule deletes its objects before their retention ends.
    async fn check_ready(&self, _check: &ReadyCheck) -> Result<()> {
        Ok(())
    }

    /// Writes a new object; fails with [`Error::AlreadyExists`] when the key exists.
    async fn put_create_only(&self, key: &str, body: Bytes, options: &PutOptions) -> Result<PutResult>;

    /// Replaces a mutable object if its etag is still `expected_etag`; `None` means it must not exist.
    async fn put_if_match(&self, key: &str, body: Bytes, expected_etag: Option<&str>) -> Result<PutResult>;

    /// Removes an object (its current version); removing a missing object succeeds. Only the
    /// keyring deletes (erasure destroys keys): the log's own objects are never deleted.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Startup check of a keyring store: a deleted key must be gone, so no versioning (an old
    /// version would keep it) and no Object Lock.
    async fn check_keyring_ready(&self) -> Result<()> {
        Ok(())
    }

    /// Reads a whole object, at a version when given.
    async fn get(&self, key: &str, version: Option<&str>) -> Result<Bytes>;

    /// Reads `range` of an object, at a version when given.
    async fn get_range(&self, key: &str, version: Option<&str>, range: Range<u64>) -> Result<Bytes>;

    /// Metadata of one object, at a version when given.
    async fn head(&self, key: &str, version: Option<&str>) -> Result<ObjectMeta>;

    /// Every current object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Turns Object Lock legal hold on or off for one object version (the current one when
    /// `version` is None).
    async fn set_legal_hold(&self, _key: &str, _version: Option<&str>, _on: bool) -> Result<()> {
        Err(Error::Unsupported { url: self.url().to_string(), what: "Object Lock legal hold (it needs an S3 bucket with Object Lock)" })
    }

    /// Asks for a readable copy of an archived object version for `days`.
    async fn restore(&self, _key: &str, _version: Option<&str>, _days: u32, _tier: RestoreTier) -> Result<RestoreRequested> {
        Err(Error::Unsupported { url: self.url().to_string(), what: "restores (only S3 has archive storage classes)" })
    }

    /// The local file holding an object, when the store is a file system: readers already on
    /// the blocking pool (queries) then read ranges directly instead of through the runtime.
    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
}

/// Create-only put that treats an existing object with identical bytes as success: a retry of
/// a put whose answer was lost must not look like a conflict.
pub async fn put_immutable(store: &dyn ObjectStore, key: &str, body: Bytes, options: &PutOptions) -> Result<PutResult> {
    match store.put_create_only(key, body.clone(), options).await {
        Err(Error::AlreadyExists { .. }) => {
            let existing = store.get(key, None).await?;
            if existing != body {
                return Err(Error::AlreadyExists { key: key.to_string() });
            }
            let meta = store.head(key, None).await?;
            Ok(PutResult { version: meta.version, etag: meta.etag.unwrap_or_default() })
        }
        other => other,
    }
}

/// Opens a store from its URL: `file:///path` (or a plain path) or `s3://bucket/prefix`.
pub async fn open(url: &str, s3: &S3Options) -> Result<Arc<dyn ObjectStore>> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Arc::new(FileStore::open(url, path)?));
    }
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3Store::open(url, s3).await?));
    }
    if url.contains("://") {
        return Err(Error::InvalidUrl { url: url.to_string(), reason: "expected file:///path or s3://bucket/prefix".into() });
    }
    Ok(Arc::new(FileStore::open(&format!("file://{url}"), url)?))
}

/// Checks a key is relative, has no empty, `.` or `..` segments: it must never leave the root.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    let invalid = |reason| Err(Error::InvalidKey { key: key.to_string(), reason });
    if key.is_empty() {
        return invalid("empty");
    }
    if key.starts_with('/') {
        return invalid("absolute");
    }
    for segment in key.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return invalid("empty, '.' or '..' segment");
        }
        if segment.starts_with(file::TEMP_PREFIX) {
            return invalid("reserved temporary-file prefix");
        }
    }
    Ok(())
}
