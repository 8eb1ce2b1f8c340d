//! The S3 store (aws-sdk-s3): immutable objects written with `If-None-Match: *`, an
//! `x-amz-checksum-sha256` and, when the log has retention, Object Lock mode and retain-until;
//! the one mutable object replaced with `If-Match`; reads by recorded version id.

use super::{
    Error, ObjectMeta, ObjectStore, PutOptions, PutResult, ReadyCheck, RestoreRequested, RestoreState, RestoreTier, Result, Retention,
    RetentionMode, StorageClass, lifecycle, validate_key,
};
use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime as AwsDateTime};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, ChecksumAlgorithm, GlacierJobParameters, LifecycleRule, ObjectLockEnabled,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, RestoreRequest, Tier,
};
use base64::Engine;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::ops::Range;

/// How to reach S3; credentials always come from the standard AWS chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint override, e.g. `http://127.0.0.1:9000` for an S3-compatible server.
    pub endpoint: Option<String>,
    /// Region; default `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing; default on when an endpoint is set.
    pub force_path_style: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct S3Store {
    url: String,
    bucket: String,
    /// Key prefix inside the bucket, empty or ending with '/'.
    prefix: String,
    /// Puts, with timeouts long enough for a large batch upload.
    client: aws_sdk_s3::Client,
    /// Gets, heads, lists and the bucket checks, with short timeouts.
    read_client: aws_sdk_s3::Client,
}

/// Maps an SDK error to the store's: conflicts and absences are answers, outages are transient.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(
    store: &str,
    key: &str,
    error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Error {
    let status = error.raw_response().map(|response| response.status().as_u16());
    let code = error.as_service_error().and_then(|service| service.code().map(str::to_string));
    let message = match (&code, error.as_service_error().and_then(|service| service.message().map(str::to_string))) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        _ => format!("{error:?}").chars().take(300).collect(),
    };
    let key = key.to_string();
    match status {
        Some(412) => Error::PreconditionFailed { key },
        Some(403) if code.as_deref() == Some("InvalidObjectState") => Error::Archived { key },
        Some(404) => Error::NotFound { key },
        // Throttling and server errors pass; so do failures to connect or read a response,
        // which name the store: the operator's first question is which one is unreachable.
        Some(429) | Some(500..=599) => Error::Backend { key, message, transient: true },
        None => Error::Backend { key, message: format!("store {store} did not answer: {message}"), transient: true },
        Some(_) => Error::Backend { key, message, transient: matches!(code.as_deref(), Some("RequestTimeout") | Some("SlowDown")) },
    }
}

fn aws_time(time: chrono::DateTime<Utc>) -> AwsDateTime {
    AwsDateTime::from_millis(time.timestamp_millis())
}

fn retention_from(mode: Option<&ObjectLockMode>, until: Option<&AwsDateTime>) -> Option<Retention> {
    let mode = match mode? {
        ObjectLockMode::Compliance => RetentionMode::Compliance,
        ObjectLockMode::Governance => RetentionMode::Governance,
        _ => return None,
    };
    let until = until?;
    let retain_until = Utc.timestamp_opt(until.secs(), until.subsec_nanos()).single()?;
    Some(Retention { mode, retain_until })
}

/// `x-amz-restore`: `ongoing-request="true"`, or `ongoing-request="false", expiry-date="…"`.
fn restore_from(header: Option<&str>) -> Option<RestoreState> {
    let header = header?;
    if header.contains("ongoing-request=\"true\"") {
        return Some(RestoreState::InProgress);
    }
    let expiry = header.split_once("expiry-date=\"").and_then(|(_, rest)| rest.split_once('"')).map(|(date, _)| date.to_string());
    Some(RestoreState::Restored { expiry })
}

/// The class S3 names (HeadObject and ListObjects use different types); None for Standard.
fn storage_class_named(name: Option<&str>) -> Option<StorageClass> {
    name.and_then(|name| name.parse().ok()).filter(|class| *class != StorageClass::Standard)
}

/// `s3://bucket/prefix` → (bucket, key prefix empty or ending with '/').
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let invalid = |reason: &str| Error::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
    let rest = url.strip_prefix("s3://").ok_or_else(|| invalid("expected s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.len() < 3 || !bucket.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'.') {
        return Err(invalid("the bucket name must be 3+ characters of a-z, 0-9, '-' and '.'"));
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    Ok((bucket.to_string(), prefix))
}

/// One try of a read, up to its response headers.
const READ_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// A read with its retries.
const READ_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7);

impl S3Store {
    /// `s3://bucket/prefix`.
    pub async fn open(url: &str, options: &S3Options) -> Result<S3Store> {
        let (bucket, prefix) = parse_url(url)?;
        // The region is always explicit, so the SDK never asks the instance metadata service.
        let region = options
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(region)).load().await;
        let client = |timeouts: aws_sdk_s3::config::timeout::TimeoutConfig| {
            let mut builder = aws_sdk_s3::config::Builder::from(&shared).timeout_config(timeouts);
            if let Some(endpoint) = &options.endpoint {
                builder = builder.endpoint_url(endpoint);
            }
            builder = builder.force_path_style(options.force_path_style.unwrap_or(options.endpoint.is_some()));
            aws_sdk_s3::Client::from_conf(builder.build())
        };
        use aws_sdk_s3::config::timeout::TimeoutConfig;
        use std::time::Duration;
        // A stalled request must fail (and be retried with backoff), never hang: writes may
        // upload a large batch, so their attempts get a minute; reads (a query's ranged GETs,
        // a HEAD, a LIST) answer in milliseconds when the store is up, so a reader learns
        // within seconds that it is down.
        let writes = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(60))
            .operation_timeout(Duration::from_secs(180))
            .build();
        let reads = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(READ_ATTEMPT_TIMEOUT)
            .operation_timeout(READ_OPERATION_TIMEOUT)
            .build();
        Ok(S3Store { url: url.to_string(), bucket, prefix, client: client(writes), read_client: client(reads) })
    }

    fn full_key(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The key prefix inside the bucket, empty or ending with '/'.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bucket's lifecycle rules; none when it has no lifecycle configuration.
    pub async fn lifecycle_rules(&self) -> Result<Vec<LifecycleRule>> {
        let bucket = &self.bucket;
        match self.read_client.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
            Ok(output) => Ok(output.rules().to_vec()),
            Err(error) if error.as_service_error().and_then(|service| service.code()) == Some("NoSuchLifecycleConfiguration") => {
                Ok(Vec::new())
            }
            Err(error) => Err(classify(&self.url, bucket, error)),
        }
    }

    /// Replaces the bucket's lifecycle configuration; no rules deletes it.
    pub async fn put_lifecycle_rules(&self, rules: Vec<LifecycleRule>) -> Result<()> {
        let bucket = &self.bucket;
        if rules.is_empty() {
            self.client.delete_bucket_lifecycle().bucket(bucket).send().await.map_err(|error| classify(&self.url, bucket, error))?;
            return Ok(());
        }
        let configuration = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().map_err(|error| Error::Backend {
            key: bucket.clone(),
            message: error.to_string(),
            transient: false,
        })?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(configuration)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|error| classify(&self.url, bucket, error))?;
        Ok(())
    }

    /// Refuses a bucket whose lifecycle rules would delete this log's batches before their
    /// retention ends, or archive what the server reads at startup (DESIGN §12).
    async fn check_lifecycle(&self, check: &ReadyCheck) -> Result<()> {
        let rules = match self.lifecycle_rules().await {
            Ok(rules) => rules,
            // A role without s3:GetLifecycleConfiguration: say so, and serve.
            Err(Error::Backend { message, transient: false, .. }) if message.starts_with("AccessDenied") => {
                tracing::warn!(store = %self.url, log = %check.keys.log, "cannot read the bucket's lifecycle rules (access denied): they are not checked against the log's retention; allow s3:GetLifecycleConfiguration");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let problems = lifecycle::problems(&rules, &self.prefix, &check.keys, check.retention_days, chrono::Utc::now());
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Misconfigured {
            url: self.url.clone(),
            reason: format!(
                "{}; `auditum lifecycle plan --log {}` prints rules that respect the log's retention",
                problems.join("; "),
                check.keys.log
            ),
        })
    }

    /// The bucket must exist with versioning on (the ledger records version ids), and with
    /// Object Lock on when the log's retention asks for it.
    pub async fn check_bucket(&self, object_lock_required: bool) -> Result<()> {
        let bucket = &self.bucket;
        let misconfigured = |reason: String| Error::Misconfigured { url: self.url.clone(), reason };
        if let Err(error) = self.read_client.head_bucket().bucket(bucket).send().await {
            return Err(match classify(&self.url, bucket, error) {
                Error::NotFound { .. } => {
                    misconfigured(format!("bucket {bucket} does not exist: create it (with Object Lock enabled) first"))
                }
                other => other,
            });
        }
        let versioning_enabled = self.versioning_status().await?.as_deref() == Some(BucketVersioningStatus::Enabled.as_str());
        if !versioning_enabled {
            return Err(misconfigured(format!(
                "versioning is not enabled on bucket {bucket}: auditum records and reads version ids; enable it with `aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`"
            )));
        }
        if !object_lock_required {
            return Ok(());
        }
        if !self.object_lock_enabled().await? {
            return Err(misconfigured(format!(
                "Object Lock is not enabled on bucket {bucket}, but the log's retention needs it: create a bucket with `aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket` (Object Lock cannot be turned on for most existing buckets), or remove retention_mode from the log"
            )));
        }
        Ok(())
    }
}

impl S3Store {
    /// The bucket's versioning status (`Enabled`, `Suspended`), None when never enabled.
    async fn versioning_status(&self) -> Result<Option<String>> {
        let bucket = &self.bucket;
        match self.read_client.get_bucket_versioning().bucket(bucket).send().await {
            Ok(output) => Ok(output.status().map(|status| status.as_str().to_string())),
            // moto answers with the root element GetBucketVersioningResponse, which the SDK
            // refuses to decode: read the status from a successful response's raw body.
            Err(error) => {
                match error.raw_response().filter(|response| response.status().is_success()).and_then(|response| response.body().bytes()) {
                    Some(body) => {
                        let body = String::from_utf8_lossy(body);
                        Ok(["Enabled", "Suspended"]
                            .into_iter()
                            .find(|status| body.contains(&format!("<Status>{status}</Status>")))
                            .map(str::to_string))
                    }
                    None => Err(classify(&self.url, bucket, error)),
                }
            }
        }
    }

    /// Whether the bucket was created with Object Lock.
    async fn object_lock_enabled(&self) -> Result<bool> {
        let bucket = &self.bucket;
        match self.read_client.get_object_lock_configuration().bucket(bucket).send().await {
            Ok(output) => {
                Ok(output.object_lock_configuration().and_then(|config| config.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled))
            }
            Err(error) if error.as_service_error().and_then(|service| service.code()) == Some("ObjectLockConfigurationNotFoundError") => {
                Ok(false)
            }
            Err(error) => Err(classify(&self.url, bucket, error)),
        }
    }

    /// GetObject of a key (at a version, over an HTTP range when given), body collected.
    async fn get_object_bytes(&self, key: &str, version: Option<&str>, range: Option<String>) -> Result<Bytes> {
        let full = self.full_key(key)?;
        let output = self
            .read_client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .set_version_id(version.map(str::to_string))
            .set_range(range)
            .send()
            .await
            .map_err(|error| classify(&self.url, key, error))?;
        // The operation timeout ends at the response headers; a body that stops arriving must
        // fail too. Allow for a slow link: 10 s, and a second more per 4 MiB.
        let size = output.content_length().unwrap_or_default().max(0) as u64;
        let limit = std::time::Duration::from_secs(10 + size / (4 << 20));
        let body = match tokio::time::timeout(limit, output.body.collect()).await {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => return Err(Error::Backend { key: key.to_string(), message: error.to_string(), transient: true }),
            Err(_) => {
                let message = format!("store {} stopped sending the body within {} s", self.url, limit.as_secs());
                return Err(Error::Backend { key: key.to_string(), message, transient: true });
            }
        };
        Ok(body.into_bytes())
    }
}

fn sha256_base64(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
}

#[async_trait]
impl ObjectStore for S3Store {
    fn url(&self) -> &str {
        &self.url
    }

    async fn check_ready(&self, check: &ReadyCheck) -> Result<()> {
        self.check_bucket(check.object_lock_required).await?;
        self.check_lifecycle(check).await
    }

    async fn check_keyring_ready(&self) -> Result<()> {
        let bucket = &self.bucket;
        let misconfigured = |reason: String| Error::Misconfigured { url: self.url.clone(), reason };
        // Object Lock first: such a bucket is versioned too, and the lock is the more precise reason.
        if self.object_lock_enabled().await? {
            return Err(misconfigured(format!(
                "Object Lock is enabled on bucket {bucket}: keyring keys must be deletable; use a bucket without versioning or Object Lock for the keyring"
            )));
        }
        let status = self.versioning_status().await?;
        if let Some(status) = status.filter(|status| status == "Enabled" || status == "Suspended") {
            return Err(misconfigured(format!(
                "versioning is {} on bucket {bucket}: a deleted key would survive as an old version, so erasure would not erase; use a bucket without versioning for the keyring",
                status.to_lowercase()
            )));
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        match self.client.delete_object().bucket(&self.bucket).key(&full).send().await {
            Ok(_) => Ok(()),
            Err(error) => match classify(&self.url, key, error) {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn set_legal_hold(&self, key: &str, version: Option<&str>, on: bool) -> Result<()> {
        let full = self.full_key(key)?;
        let status = if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(&full)
            .set_version_id(version.map(str::to_string))
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|error| classify(&self.url, key, error))?;
        Ok(())
    }

    async fn restore(&self, key: &str, version: Option<&str>, days: u32, tier: RestoreTier) -> Result<RestoreRequested> {
        let full = self.full_key(key)?;
        let tier = match tier {
            RestoreTier::Expedited => Tier::Expedited,
            RestoreTier::Standard => Tier::Standard,
            RestoreTier::Bulk => Tier::Bulk,
        };
        let request = RestoreRequest::builder()
            .days(days.min(i32::MAX as u32) as i32)
            .glacier_job_parameters(GlacierJobParameters::builder().tier(tier).build().map_err(|error| Error::Backend {
                key: key.to_string(),
                message: error.to_string(),
                transient: false,
            })?)
            .build();
        let sent = self
            .client
            .restore_object()
            .bucket(&self.bucket)
            .key(&full)
            .set_version_id(version.map(str::to_string))
            .restore_request(request)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(RestoreRequested::Started),
            Err(error) if error.as_service_error().and_then(|service| service.code()) == Some("RestoreAlreadyInProgress") => {
                Ok(RestoreRequested::AlreadyInProgress)
            }
            Err(error) => Err(classify(&self.url, key, error)),
        }
    }

    async fn put_create_only(&self, key: &str, body: Bytes, options: &PutOptions) -> Result<PutResult> {
        let full = self.full_key(key)?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .if_none_match("*")
            // AWS requires an integrity header on Object Lock puts; the algorithm header is
            // what moto checks for, the value what AWS verifies.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sha256_base64(&body))
            .body(ByteStream::from(body));
        if let Some(retention) = &options.retention {
            let mode = match retention.mode {
                RetentionMode::Compliance => ObjectLockMode::Compliance,
                RetentionMode::Governance => ObjectLockMode::Governance,
            };
            request = request.object_lock_mode(mode).object_lock_retain_until_date(aws_time(retention.retain_until));
        }
        if options.legal_hold {
            request = request.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
        }
        if let Some(class) = options.storage_class {
            request = request.storage_class(aws_sdk_s3::types::StorageClass::from(class.as_str()));
        }
        match request.send().await {
            Ok(output) => {
                Ok(PutResult { version: output.version_id().map(str::to_string), etag: output.e_tag().unwrap_or_default().to_string() })
            }
            Err(error) => Err(match classify(&self.url, key, error) {
                Error::PreconditionFailed { key } => Error::AlreadyExists { key },
                other => other,
            }),
        }
    }

    async fn put_if_match(&self, key: &str, body: Bytes, expected_etag: Option<&str>) -> Result<PutResult> {
        let full = self.full_key(key)?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sha256_base64(&body))
            .body(ByteStream::from(body));
        request = match expected_etag {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        let output = request.send().await.map_err(|error| match classify(&self.url, key, error) {
            // If-Match on a key that does not exist: the object we expected is gone.
            Error::NotFound { key } => Error::PreconditionFailed { key },
            other => other,
        })?;
        Ok(PutResult { version: output.version_id().map(str::to_string), etag: output.e_tag().unwrap_or_default().to_string() })
    }

    async fn get(&self, key: &str, version: Option<&str>) -> Result<Bytes> {
        self.get_object_bytes(key, version, None).await
    }

    async fn get_range(&self, key: &str, version: Option<&str>, range: Range<u64>) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        self.get_object_bytes(key, version, Some(format!("bytes={}-{}", range.start, range.end - 1))).await
    }

    async fn head(&self, key: &str, version: Option<&str>) -> Result<ObjectMeta> {
        let full = self.full_key(key)?;
        let output = self
            .read_client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|error| classify(&self.url, key, error))?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size: output.content_length().unwrap_or_default().max(0) as u64,
            version: output.version_id().map(str::to_string),
            etag: output.e_tag().map(str::to_string),
            retention: retention_from(output.object_lock_mode(), output.object_lock_retain_until_date()),
            legal_hold: output.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
            storage_class: storage_class_named(output.storage_class().map(|class| class.as_str())),
            restore: restore_from(output.restore()),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut pages = self.read_client.list_objects_v2().bucket(&self.bucket).prefix(&full_prefix).into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| classify(&self.url, prefix, error))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|key| key.strip_prefix(&self.prefix)) else { continue };
                found.push(ObjectMeta {
                    key: key.to_string(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                    version: None,
                    etag: object.e_tag().map(str::to_string),
                    storage_class: storage_class_named(object.storage_class().map(|class| class.as_str())),
                    ..ObjectMeta::default()
                });
            }
        }
        found.sort_by(|left, right| left.key.cmp(&right.key));
        Ok(found)
    }
}
