//! Configuration: a TOML file, overridden by `AUDITUM_*` variables and flags (see README).

use auditum_deliver::config::{AlertRule, SinkConfig, SinkFormat, StreamConfig};
use auditum_engine::auth::{ApiKeySpec, Scope};
use auditum_format::rules::{self, DEFAULT_REDACT_KEYS};
use auditum_store::{RetentionMode, RetentionPolicy, S3Options, StorageClass};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use auditum_engine::router::DEFAULT_LOG;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{source_name}: {message}")]
    Parse { source_name: String, message: String },
    #[error("config field {field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid { field: field.into(), reason: reason.into() }
}

use auditum_format::time::deserialize_duration;
mod roles;
mod validate;

pub use auditum_format::time::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One log (README, Architecture): its own WAL, sequence, ledger and signing key.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub name: String,
    /// Checkpoint origin and key name; default `auditum/<name>`.
    #[serde(default)]
    pub origin: Option<String>,
    /// Tenants routed to this log.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Store URL for this log; default: the top-level `store`.
    #[serde(default)]
    pub store: Option<String>,
    /// Object Lock mode for this log's objects; default: the top-level `retention_mode`.
    #[serde(default)]
    pub retention_mode: Option<RetentionMode>,
    /// Object Lock retention in days; default: the top-level `retention_days`.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Batches move to `archive_storage_class` this many days after they are written (S3
    /// lifecycle rules, `auditum lifecycle apply`).
    #[serde(default)]
    pub archive_after_days: Option<u32>,
    /// GLACIER_IR (default; read as usual), GLACIER or DEEP_ARCHIVE (reads need `auditum restore`).
    #[serde(default)]
    pub archive_storage_class: Option<StorageClass>,
    /// Batches are deleted this many days after they are written; at least `retention_days`.
    #[serde(default)]
    pub expire_after_days: Option<u32>,
    /// Storage class batches are written in (S3 only); default the bucket's (Standard).
    #[serde(default)]
    pub batch_storage_class: Option<StorageClass>,
    /// Columns encrypted per data subject (DESIGN §14); default: the top-level `encrypt_fields`.
    #[serde(default)]
    pub encrypt_fields: Option<Vec<String>>,
    /// Store URL of the keyring (no versioning, no Object Lock); default: the top-level `keyring`.
    #[serde(default)]
    pub keyring: Option<String>,
    /// File holding the 32-byte key-encryption key (mode 0600); default: the top-level one.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// Variable holding the key-encryption key (hex or base64); default: the top-level one.
    #[serde(default)]
    pub kek_env: Option<String>,
    /// Read-only nodes: the writer's verifier key (`name+id+key`, or a file holding it), pinned.
    #[serde(default)]
    pub verifier_key: Option<String>,
    /// Read-only nodes: this log's writer, when it is not the top-level `meta_audit_writer`
    /// (writers sharded by log).
    #[serde(default)]
    pub meta_audit_writer: Option<String>,
    /// Read-only nodes: the variable holding this log's writer key; default: the top-level one.
    #[serde(default)]
    pub meta_audit_writer_key_env: Option<String>,
}

/// One API key (docs/API.md): only the SHA-256 of its secret is configured.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Names the key in logs and as the actor of meta-audit events; `[a-z0-9_-]`, 1-64.
    pub id: String,
    /// Lower-case hex SHA-256 of the whole bearer secret.
    pub secret_sha256: String,
    /// The one tenant this key may write and read, or `*` for a platform key.
    pub tenant: String,
    pub scopes: Vec<Scope>,
    /// Token bucket refill per second (one token per appended event or per other call);
    /// default: the top-level `key_rate_per_second`.
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Token bucket size; default: the top-level `key_rate_burst`.
    #[serde(default)]
    pub burst: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listener; none when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// The web console and the JSON HTTP API (`/api/v1/`); `""` disables it. TLS as for gRPC.
    #[serde(deserialize_with = "deserialize_optional_listen")]
    pub http_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Default store for every log; default `file://<data_dir>/store`.
    pub store: Option<String>,
    #[serde(deserialize_with = "deserialize_duration")]
    pub seal_interval: Duration,
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    /// Rows per Parquet row group in batch files.
    pub row_group_rows: usize,
    /// Rows per Parquet data page at most (the page index's granularity).
    pub page_rows: usize,
    pub wal_segment_bytes: u64,
    #[serde(deserialize_with = "deserialize_duration")]
    pub idempotency_window: Duration,
    pub idempotency_max_ids: usize,
    /// How long shutdown keeps trying to seal what is open before leaving it in the WAL.
    #[serde(deserialize_with = "deserialize_duration")]
    pub shutdown_seal_timeout: Duration,
    pub redact_keys: Vec<String>,
    pub log_format: LogFormat,
    /// Appends are refused (RESOURCE_EXHAUSTED) once a log's WAL holds this many bytes.
    pub wal_max_bytes: u64,
    /// S3 endpoint override, for S3-compatible servers.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Path-style addressing; default on when `s3_endpoint` is set.
    pub s3_force_path_style: Option<bool>,
    /// Default Object Lock mode of every log (`compliance` or `governance`).
    pub retention_mode: Option<RetentionMode>,
    /// Default Object Lock retention of every log, in days.
    pub retention_days: Option<u32>,
    /// Columns encrypted per data subject in every log (DESIGN §14): a subset of actor_name,
    /// target_name, reason, source_ip, user_agent, before, after, metadata. Empty: none.
    pub encrypt_fields: Vec<String>,
    /// Store URL of the keyring: `file:///…`, or `s3://` on a bucket without versioning.
    pub keyring: Option<String>,
    /// File holding the 32-byte key-encryption key (mode 0600).
    pub kek_file: Option<PathBuf>,
    /// Environment variable holding the key-encryption key (64 hex characters or base64).
    pub kek_env: Option<String>,
    /// Unwrapped keys kept in memory per log at most.
    pub key_cache_entries: usize,
    pub logs: Vec<LogConfig>,
    /// API keys; none = development mode, allowed only on a loopback `listen`.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Default per-key rate: tokens per second (an appended event or another call costs one).
    pub key_rate_per_second: f64,
    /// Default per-key burst (token bucket size).
    pub key_rate_burst: f64,
    /// Calls served at once on one connection; more wait.
    pub max_concurrent_requests_per_connection: usize,
    /// Record every Query, Export and proof call as an audit event (docs/API.md).
    pub meta_audit: bool,
    /// Tenant of meta-audit events for log-wide calls by platform keys (and development mode).
    pub meta_audit_tenant: String,
    /// PEM certificate chain: serve gRPC over TLS (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it.
    pub tls_client_ca: Option<PathBuf>,
    /// Where deliveries go (DESIGN §11).
    pub sinks: Vec<SinkConfig>,
    /// Alert rules: sliding-window counts that fire `auditum.alert` events.
    pub alerts: Vec<AlertRule>,
    /// Continuous forwarding of matching events to a sink.
    pub streams: Vec<StreamConfig>,
    /// Serve reads only (DESIGN §13): no WAL, no signing key; follow each log's checkpoint.
    pub read_only: bool,
    /// Read-only nodes: how often each log's checkpoint is read.
    #[serde(deserialize_with = "deserialize_duration")]
    pub follow_interval: Duration,
    /// Read-only nodes: the verifier key of the `default` log (`--trusted-key`).
    pub trusted_key: Option<String>,
    /// Whether this process owns the `default` log (unrouted tenants). Writers sharded by log
    /// set it false on all but one, so each owns only the logs it lists.
    pub default_log: bool,
    /// Read-only nodes: the writer (`http://` or `https://` URL) that appends the meta-audit
    /// records of this node's reads.
    pub meta_audit_writer: Option<String>,
    /// Read-only nodes: the variable holding the bearer secret of a writer API key with the
    /// `meta_audit_forward` scope.
    pub meta_audit_writer_key_env: Option<String>,
    /// Read-only nodes: the PEM CA that signed the writers' certificates (`https://` writers).
    pub meta_audit_writer_tls_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: None,
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: PathBuf::from("./auditum-data"),
            store: None,
            seal_interval: Duration::from_secs(60),
            batch_max_events: 200_000,
            batch_max_bytes: 128 * 1024 * 1024,
            row_group_rows: auditum_batch::BatchLayout::default().row_group_rows,
            page_rows: auditum_batch::BatchLayout::default().page_rows,
            wal_segment_bytes: 64 * 1024 * 1024,
            idempotency_window: Duration::from_secs(3600),
            idempotency_max_ids: 5_000_000,
            shutdown_seal_timeout: Duration::from_secs(20),
            redact_keys: DEFAULT_REDACT_KEYS.iter().map(|key| key.to_string()).collect(),
            log_format: LogFormat::Text,
            wal_max_bytes: 1024 * 1024 * 1024,
            s3_endpoint: None,
            s3_region: None,
            s3_force_path_style: None,
            retention_mode: None,
            retention_days: None,
            encrypt_fields: Vec::new(),
            keyring: None,
            kek_file: None,
            kek_env: None,
            key_cache_entries: 100_000,
            logs: Vec::new(),
            api_keys: Vec::new(),
            key_rate_per_second: 100_000.0,
            key_rate_burst: 200_000.0,
            max_concurrent_requests_per_connection: 64,
            meta_audit: true,
            meta_audit_tenant: "auditum".to_string(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            sinks: Vec::new(),
            alerts: Vec::new(),
            streams: Vec::new(),
            read_only: false,
            follow_interval: Duration::from_secs(2),
            trusted_key: None,
            default_log: true,
            meta_audit_writer: None,
            meta_audit_writer_key_env: None,
            meta_audit_writer_tls_ca: None,
        }
    }
}

/// A listen address, or `""` for none (a listener that is on by default can be turned off).
fn deserialize_optional_listen<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an address (host:port), or \"\" to disable")))
}

/// Every top-level field name, as written in the file (and, upper-cased, after `AUDITUM_`).
pub const FIELD_NAMES: [&str; 47] = [
    "listen",
    "metrics_listen",
    "http_listen",
    "data_dir",
    "store",
    "seal_interval",
    "batch_max_events",
    "batch_max_bytes",
    "row_group_rows",
    "page_rows",
    "wal_segment_bytes",
    "idempotency_window",
    "idempotency_max_ids",
    "shutdown_seal_timeout",
    "redact_keys",
    "log_format",
    "wal_max_bytes",
    "s3_endpoint",
    "s3_region",
    "s3_force_path_style",
    "retention_mode",
    "retention_days",
    "encrypt_fields",
    "keyring",
    "kek_file",
    "kek_env",
    "key_cache_entries",
    "logs",
    "api_keys",
    "key_rate_per_second",
    "key_rate_burst",
    "max_concurrent_requests_per_connection",
    "meta_audit",
    "meta_audit_tenant",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "sinks",
    "alerts",
    "streams",
    "read_only",
    "follow_interval",
    "trusted_key",
    "default_log",
    "meta_audit_writer",
    "meta_audit_writer_key_env",
    "meta_audit_writer_tls_ca",
];

pub fn is_valid_log_name(name: &str) -> bool {
    rules::is_valid_name(name)
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config> {
        Config::load(Some(path), std::env::vars(), Vec::new())
    }

    /// The one loader: the file's fields (when given), overridden by `AUDITUM_<FIELD>` variables,
    /// overridden by `flags` (field name → value); then validated. Every field is read by name
    /// through [`FIELD_NAMES`], so a new field needs no code here.
    pub fn load(
        path: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        flags: Vec<(&'static str, toml::Value)>,
    ) -> Result<Config> {
        let (text, source) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?,
                format!("config file {} (with AUDITUM_* variables and flags)", path.display()),
            ),
            None => (String::new(), "AUDITUM_* variables and flags".to_string()),
        };
        Config::from_toml_with_overrides(&text, &source, env, flags)
    }

    /// Parses a config file's text, then applies `AUDITUM_<FIELD>` variables (upper-case field
    /// names) to every top-level field; values are read as TOML (numbers, booleans, arrays, and
    /// for `logs` and `api_keys` arrays of inline tables) or, failing that, as plain strings.
    pub fn from_toml_with_env(text: &str, source: &str, env: impl Iterator<Item = (String, String)>) -> Result<Config> {
        Config::from_toml_with_overrides(text, source, env, Vec::new())
    }

    fn from_toml_with_overrides(
        text: &str,
        source: &str,
        env: impl Iterator<Item = (String, String)>,
        flags: Vec<(&'static str, toml::Value)>,
    ) -> Result<Config> {
        let parse_error = |message: String| Error::Parse { source_name: source.to_string(), message };
        let mut table: toml::Table = toml::from_str(text).map_err(|error| parse_error(error.to_string()))?;
        for (name, value) in env {
            let Some(field) = name.strip_prefix("AUDITUM_").map(str::to_ascii_lowercase) else { continue };
            if !FIELD_NAMES.contains(&field.as_str()) {
                continue;
            }
            let parsed = toml::from_str::<toml::Table>(&format!("value = {value}"))
                .ok()
                .and_then(|mut wrapper| wrapper.remove("value"))
                .unwrap_or(toml::Value::String(value.clone()));
            table.insert(field, parsed);
        }
        for (field, value) in flags {
            debug_assert!(FIELD_NAMES.contains(&field), "flag for unknown field {field}");
            table.insert(field.to_string(), value);
        }
        let config: Config = toml::Value::Table(table).try_into().map_err(|error: toml::de::Error| parse_error(error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The API keys with the top-level rate defaults resolved.
    pub fn api_key_specs(&self) -> Vec<ApiKeySpec> {
        self.api_keys
            .iter()
            .map(|key| ApiKeySpec {
                id: key.id.clone(),
                secret_sha256: key.secret_sha256.clone(),
                tenant: key.tenant.clone(),
                scopes: key.scopes.clone(),
                rate_per_second: key.rate_per_second.unwrap_or(self.key_rate_per_second),
                burst: key.burst.unwrap_or(self.key_rate_burst),
            })
            .collect()
    }

    /// The effective configuration as TOML, every field shown.
    pub fn to_toml(&self) -> String {
        let duration = |value: Duration| format!("\"{}ms\"", value.as_millis());
        let quoted = |value: &str| toml::Value::String(value.to_string()).to_string();
        let mut out = String::new();
        let mut line = |name: &str, value: Option<String>| match value {
            Some(value) => out.push_str(&format!("{name} = {value}\n")),
            None => out.push_str(&format!("# {name} is unset\n")),
        };
        line("listen", Some(quoted(&self.listen.to_string())));
        line("metrics_listen", self.metrics_listen.map(|addr| quoted(&addr.to_string())));
        line("http_listen", Some(quoted(&self.http_listen.map(|addr| addr.to_string()).unwrap_or_default())));
        line("data_dir", Some(quoted(&self.data_dir.display().to_string())));
        line("store", Some(quoted(&self.store.clone().unwrap_or_else(|| self.default_store_url()))));
        line("seal_interval", Some(duration(self.seal_interval)));
        line("batch_max_events", Some(self.batch_max_events.to_string()));
        line("batch_max_bytes", Some(self.batch_max_bytes.to_string()));
        line("row_group_rows", Some(self.row_group_rows.to_string()));
        line("page_rows", Some(self.page_rows.to_string()));
        line("wal_segment_bytes", Some(self.wal_segment_bytes.to_string()));
        line("wal_max_bytes", Some(self.wal_max_bytes.to_string()));
        line("idempotency_window", Some(duration(self.idempotency_window)));
        line("idempotency_max_ids", Some(self.idempotency_max_ids.to_string()));
        line("shutdown_seal_timeout", Some(duration(self.shutdown_seal_timeout)));
        line(
            "redact_keys",
            Some(toml::Value::Array(self.redact_keys.iter().map(|key| toml::Value::String(key.clone())).collect()).to_string()),
        );
        line("log_format", Some(quoted(if self.log_format == LogFormat::Json { "json" } else { "text" })));
        line("s3_endpoint", self.s3_endpoint.as_deref().map(quoted));
        line("s3_region", self.s3_region.as_deref().map(quoted));
        line("s3_force_path_style", self.s3_force_path_style.map(|value| value.to_string()));
        line("retention_mode", self.retention_mode.map(|mode| quoted(&format!("{mode:?}").to_lowercase())));
        line("retention_days", self.retention_days.map(|days| days.to_string()));
        let list =
            |values: &[String]| toml::Value::Array(values.iter().map(|value| toml::Value::String(value.clone())).collect()).to_string();
        line("encrypt_fields", Some(list(&self.encrypt_fields)));
        line("keyring", self.keyring.as_deref().map(quoted));
        line("kek_file", self.kek_file.as_ref().map(|path| quoted(&path.display().to_string())));
        line("kek_env", self.kek_env.as_deref().map(quoted));
        line("key_cache_entries", Some(self.key_cache_entries.to_string()));
        line("key_rate_per_second", Some(toml::Value::Float(self.key_rate_per_second).to_string()));
        line("key_rate_burst", Some(toml::Value::Float(self.key_rate_burst).to_string()));
        line("max_concurrent_requests_per_connection", Some(self.max_concurrent_requests_per_connection.to_string()));
        line("meta_audit", Some(self.meta_audit.to_string()));
        line("meta_audit_tenant", Some(quoted(&self.meta_audit_tenant)));
        line("tls_cert", self.tls_cert.as_ref().map(|path| quoted(&path.display().to_string())));
        line("tls_key", self.tls_key.as_ref().map(|path| quoted(&path.display().to_string())));
        line("tls_client_ca", self.tls_client_ca.as_ref().map(|path| quoted(&path.display().to_string())));
        line("read_only", Some(self.read_only.to_string()));
        line("follow_interval", Some(duration(self.follow_interval)));
        line("trusted_key", self.trusted_key.as_deref().map(quoted));
        line("default_log", Some(self.default_log.to_string()));
        line("meta_audit_writer", self.meta_audit_writer.as_deref().map(quoted));
        line("meta_audit_writer_key_env", self.meta_audit_writer_key_env.as_deref().map(quoted));
        line("meta_audit_writer_tls_ca", self.meta_audit_writer_tls_ca.as_ref().map(|path| quoted(&path.display().to_string())));
        if self.api_keys.is_empty() {
            out.push_str("# api_keys: none (development mode, loopback only)\n");
        }
        for key in &self.api_keys {
            let scopes = key.scopes.iter().map(|scope| toml::Value::String(scope.as_str().to_string())).collect();
            out.push_str(&format!(
                "\n[[api_keys]]\nid = {}\nsecret_sha256 = {}\ntenant = {}\nscopes = {}\nrate_per_second = {}\nburst = {}\n",
                quoted(&key.id),
                quoted(&key.secret_sha256),
                quoted(&key.tenant),
                toml::Value::Array(scopes),
                toml::Value::Float(key.rate_per_second.unwrap_or(self.key_rate_per_second)),
                toml::Value::Float(key.burst.unwrap_or(self.key_rate_burst)),
            ));
        }
        for log in self.resolved_logs() {
            out.push_str(&format!(
                "\n[[logs]]\nname = {}\norigin = {}\ntenants = {}\nstore = {}\n",
                quoted(&log.name),
                quoted(log.origin.as_deref().unwrap_or_default()),
                toml::Value::Array(log.tenants.iter().map(|tenant| toml::Value::String(tenant.clone())).collect()),
                quoted(log.store.as_deref().unwrap_or_default())
            ));
            if let Some(retention) = log.retention() {
                out.push_str(&format!(
                    "retention_mode = {}\nretention_days = {}\n",
                    quoted(&format!("{:?}", retention.mode).to_lowercase()),
                    retention.days
                ));
            }
            if let Some(days) = log.archive_after_days {
                out.push_str(&format!("archive_after_days = {days}\n"));
            }
            if let Some(class) = log.archive_storage_class {
                out.push_str(&format!("archive_storage_class = {}\n", quoted(class.as_str())));
            }
            if let Some(days) = log.expire_after_days {
                out.push_str(&format!("expire_after_days = {days}\n"));
            }
            if let Some(class) = log.batch_storage_class {
                out.push_str(&format!("batch_storage_class = {}\n", quoted(class.as_str())));
            }
            // Empty is shown too: a log's `[]` overrides the top-level list.
            if let Some(fields) = &log.encrypt_fields {
                out.push_str(&format!("encrypt_fields = {}\n", list(fields)));
            }
            if let Some(keyring) = &log.keyring {
                out.push_str(&format!("keyring = {}\n", quoted(keyring)));
            }
            if let Some(path) = &log.kek_file {
                out.push_str(&format!("kek_file = {}\n", quoted(&path.display().to_string())));
            }
            if let Some(variable) = &log.kek_env {
                out.push_str(&format!("kek_env = {}\n", quoted(variable)));
            }
            if let Some(key) = &log.verifier_key {
                out.push_str(&format!("verifier_key = {}\n", quoted(key)));
            }
            if let Some(writer) = &log.meta_audit_writer {
                out.push_str(&format!("meta_audit_writer = {}\n", quoted(writer)));
            }
            if let Some(variable) = &log.meta_audit_writer_key_env {
                out.push_str(&format!("meta_audit_writer_key_env = {}\n", quoted(variable)));
            }
        }
        out.push_str(&self.delivery_toml());
        out
    }

    /// `[[sinks]]`, `[[alerts]]` and `[[streams]]` as TOML (secrets are named, never shown).
    fn delivery_toml(&self) -> String {
        let quoted = |value: &str| toml::Value::String(value.to_string()).to_string();
        let list =
            |values: &[String]| toml::Value::Array(values.iter().map(|value| toml::Value::String(value.clone())).collect()).to_string();
        let duration = |value: Duration| format!("\"{}ms\"", value.as_millis());
        let mut out = String::new();
        for sink in &self.sinks {
            let format = match sink.format {
                SinkFormat::Json => "json",
                SinkFormat::SplunkHec => "splunk_hec",
            };
            out.push_str(&format!(
                "\n[[sinks]]\nname = {}\nurl = {}\nformat = {}\nsecret_env = {}\n",
                quoted(&sink.name),
                quoted(&sink.url),
                quoted(format),
                quoted(&sink.secret_env)
            ));
        }
        for rule in &self.alerts {
            out.push_str(&format!(
                "\n[[alerts]]\nname = {}\ntenant = {}\nactions = {}\n",
                quoted(&rule.name),
                quoted(&rule.tenant),
                list(&rule.actions)
            ));
            if let Some(outcome) = &rule.outcome {
                out.push_str(&format!("outcome = {}\n", quoted(outcome)));
            }
            out.push_str(&format!(
                "group_by = {}\nwindow = {}\nthreshold = {}\ncooldown = {}\nsinks = {}\n",
                quoted(rule.group_by.as_str()),
                duration(rule.window),
                rule.threshold,
                duration(rule.cooldown()),
                list(&rule.sinks)
            ));
        }
        for stream in &self.streams {
            out.push_str(&format!(
                "\n[[streams]]\nname = {}\ntenant = {}\nactions = {}\nsink = {}\n",
                quoted(&stream.name),
                quoted(&stream.tenant),
                list(&stream.actions),
                quoted(&stream.sink)
            ));
        }
        out
    }

    /// The default store URL when none is configured.
    pub fn default_store_url(&self) -> String {
        let path = self.data_dir.join("store");
        let absolute = std::path::absolute(&path).unwrap_or(path);
        format!("file://{}", absolute.display())
    }

    /// Every log this process serves: `default` included even when not listed, unless
    /// `default_log = false`.
    pub fn resolved_logs(&self) -> Vec<LogConfig> {
        let mut logs = self.logs.clone();
        if self.default_log && !logs.iter().any(|log| log.name == DEFAULT_LOG) {
            logs.insert(
                0,
                LogConfig {
                    name: DEFAULT_LOG.into(),
                    origin: None,
                    tenants: Vec::new(),
                    store: None,
                    retention_mode: None,
                    retention_days: None,
                    archive_after_days: None,
                    archive_storage_class: None,
                    expire_after_days: None,
                    batch_storage_class: None,
                    encrypt_fields: None,
                    keyring: None,
                    kek_file: None,
                    kek_env: None,
                    verifier_key: None,
                    meta_audit_writer: None,
                    meta_audit_writer_key_env: None,
                },
            );
        }
        for log in &mut logs {
            if log.retention_mode.is_none() && log.retention_days.is_none() {
                log.retention_mode = self.retention_mode;
                log.retention_days = self.retention_days;
            }
            log.encrypt_fields.get_or_insert_with(|| self.encrypt_fields.clone());
            if log.keyring.is_none() {
                log.keyring = self.keyring.clone();
            }
            if log.kek_file.is_none() && log.kek_env.is_none() {
                log.kek_file = self.kek_file.clone();
                log.kek_env = self.kek_env.clone();
            }
            log.origin.get_or_insert_with(|| format!("auditum/{}", log.name));
            if log.meta_audit_writer.is_none() {
                log.meta_audit_writer = self.meta_audit_writer.clone();
            }
            if log.meta_audit_writer_key_env.is_none() {
                log.meta_audit_writer_key_env = self.meta_audit_writer_key_env.clone();
            }
            if log.name == DEFAULT_LOG && log.verifier_key.is_none() {
                log.verifier_key = self.trusted_key.clone();
            }
            log.store.get_or_insert_with(|| self.store.clone().unwrap_or_else(|| self.default_store_url()));
        }
        logs
    }

    pub fn s3_options(&self) -> S3Options {
        S3Options { endpoint: self.s3_endpoint.clone(), region: self.s3_region.clone(), force_path_style: self.s3_force_path_style }
    }

    /// Tenant → log name for every explicitly routed tenant.
    pub fn tenant_routes(&self) -> HashMap<String, String> {
        self.logs.iter().flat_map(|log| log.tenants.iter().map(|tenant| (tenant.clone(), log.name.clone()))).collect()
    }
}

impl LogConfig {
    pub fn retention(&self) -> Option<RetentionPolicy> {
        Some(RetentionPolicy { mode: self.retention_mode?, days: self.retention_days? })
    }

    /// The columns this log encrypts (of a resolved log; DESIGN §14).
    pub fn encrypted_columns(&self) -> Result<auditum_keyring::EncryptedColumns, String> {
        auditum_keyring::EncryptedColumns::parse(self.encrypt_fields.as_deref().unwrap_or_default())
    }

    /// This log's key-encryption key: from `kek_file`, else `kek_env`; None when it has neither.
    pub fn kek(&self) -> Option<auditum_keyring::Result<auditum_keyring::Kek>> {
        match (&self.kek_file, &self.kek_env) {
            (Some(path), _) => Some(auditum_keyring::Kek::from_file(path)),
            (None, Some(variable)) => Some(auditum_keyring::Kek::from_env(variable)),
            (None, None) => None,
        }
    }

    /// The pinned verifier key of a read-only node's log: `verifier_key` as the key's text or
    /// as a file holding it; None when unset.
    pub fn verifier(&self) -> Option<Result<auditum_format::checkpoint::Verifier, String>> {
        self.verifier_key.as_deref().map(auditum_format::checkpoint::read_verifier_key)
    }

    /// Where batches go, and when: `archive_storage_class` defaults to GLACIER_IR.
    pub fn archive(&self) -> Option<(u32, StorageClass)> {
        Some((self.archive_after_days?, self.archive_storage_class.unwrap_or(StorageClass::GlacierIr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_variables_which_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auditum.toml");
        std::fs::write(&path, "batch_max_events = 5\nseal_interval = \"9s\"\nwal_max_bytes = 999999999\n").unwrap();
        let env = vec![("AUDITUM_BATCH_MAX_EVENTS".to_string(), "50".to_string()), ("AUDITUM_SEAL_INTERVAL".to_string(), "8s".to_string())];
        let flags = vec![("seal_interval", toml::Value::String("7s".into()))];
        let config = Config::load(Some(&path), env.into_iter(), flags).unwrap();
        assert_eq!(config.wal_max_bytes, 999_999_999, "from the file");
        assert_eq!(config.batch_max_events, 50, "the variable over the file");
        assert_eq!(config.seal_interval, Duration::from_secs(7), "the flag over both");
        // Errors name where the value came from and the field.
        let bad = vec![("seal_interval", toml::Value::String("soon".into()))];
        let error = Config::load(None, std::iter::empty(), bad).unwrap_err().to_string();
        assert!(error.contains("flags") && error.contains("soon"), "{error}");
    }

    #[test]
    fn every_field_is_overridable_from_the_environment_and_the_output_reparses() {
        let env = vec![
            ("AUDITUM_SEAL_INTERVAL".to_string(), "5s".to_string()),
            ("AUDITUM_BATCH_MAX_EVENTS".to_string(), "123".to_string()),
            ("AUDITUM_REDACT_KEYS".to_string(), "[\"pin\"]".to_string()),
            ("AUDITUM_S3_FORCE_PATH_STYLE".to_string(), "true".to_string()),
            ("AUDITUM_RETENTION_MODE".to_string(), "governance".to_string()),
            ("AUDITUM_RETENTION_DAYS".to_string(), "9".to_string()),
            ("AUDITUM_LISTEN".to_string(), "127.0.0.1:7000".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let config = Config::from_toml_with_env("batch_max_events = 5\n", "test", env.into_iter()).unwrap();
        assert_eq!(config.seal_interval, Duration::from_secs(5));
        assert_eq!(config.batch_max_events, 123, "the variable overrides the file");
        assert_eq!(config.redact_keys, ["pin"]);
        assert_eq!(config.s3_force_path_style, Some(true));
        assert_eq!(config.retention_days, Some(9));
        assert_eq!(config.listen.port(), 7000);
        // The field list matches the struct: a config holding every field parses.
        let printed = config.to_toml();
        let reparsed = Config::from_toml_with_env(&printed, "printed", std::iter::empty()).unwrap();
        assert_eq!(reparsed.to_toml(), printed, "the effective config parses back to itself");
        let all: toml::Table = toml::from_str(
            &Config {
                metrics_listen: Some("127.0.0.1:1".parse().unwrap()),
                s3_endpoint: Some("x".into()),
                s3_region: Some("r".into()),
                tls_cert: Some("cert.pem".into()),
                tls_key: Some("key.pem".into()),
                tls_client_ca: Some("ca.pem".into()),
                keyring: Some("file:///keys".into()),
                kek_file: Some("kek".into()),
                kek_env: Some("KEK".into()),
                trusted_key: Some("default.vkey".into()),
                meta_audit_writer: Some("http://writer:50051".into()),
                meta_audit_writer_key_env: Some("KEY".into()),
                meta_audit_writer_tls_ca: Some("writer-ca.pem".into()),
                api_keys: vec![ApiKeyConfig {
                    id: "billing".into(),
                    secret_sha256: "ab".repeat(32),
                    tenant: "acme".into(),
                    scopes: vec![Scope::Append, Scope::Query],
                    rate_per_second: None,
                    burst: Some(5.0),
                }],
                sinks: vec![SinkConfig {
                    name: "secops".into(),
                    url: "https://siem.example".into(),
                    format: SinkFormat::Json,
                    secret_env: "S".into(),
                }],
                alerts: vec![AlertRule {
                    name: "brute-force".into(),
                    tenant: "*".into(),
                    actions: vec!["user.login".into()],
                    outcome: Some("failure".into()),
                    group_by: auditum_deliver::config::GroupBy::ActorId,
                    window: Duration::from_secs(300),
                    threshold: 5,
                    cooldown: None,
                    sinks: vec!["secops".into()],
                }],
                streams: vec![StreamConfig { name: "siem".into(), tenant: "*".into(), actions: vec![], sink: "secops".into() }],
                ..config
            }
            .to_toml(),
        )
        .unwrap();
        let mut printed_fields: Vec<&str> = all.keys().map(String::as_str).collect();
        printed_fields.sort();
        let mut expected: Vec<&str> = FIELD_NAMES.to_vec();
        expected.sort();
        assert_eq!(printed_fields, expected, "FIELD_NAMES and the printed effective config list the same fields");
        let bad = Config::from_toml_with_env("", "test", vec![("AUDITUM_BATCH_MAX_EVENTS".to_string(), "lots".to_string())].into_iter());
        assert!(bad.unwrap_err().to_string().contains("batch_max_events"));
    }

    #[test]
    fn archive_tiers_need_s3_and_never_expire_before_retention() {
        let check = |log: &str| {
            let text = format!("store = \"s3://vault/prod\"\n[[logs]]\nname = \"x\"\n{log}");
            toml::from_str::<Config>(&text).unwrap().validate().map_err(|error| error.to_string())
        };
        assert!(check("retention_mode = \"compliance\"\nretention_days = 2555\narchive_after_days = 90\narchive_storage_class = \"DEEP_ARCHIVE\"\nexpire_after_days = 2557\n").is_ok());
        let early = check("retention_mode = \"governance\"\nretention_days = 365\nexpire_after_days = 30\n").unwrap_err();
        assert!(early.contains("logs[0].expire_after_days") && early.contains("before their retention ends"), "{early}");
        let unbounded = check("expire_after_days = 30\n").unwrap_err();
        assert!(unbounded.contains("needs retention_days"), "{unbounded}");
        let class = check("archive_after_days = 30\narchive_storage_class = \"STANDARD_IA\"\n").unwrap_err();
        assert!(class.contains("archive_storage_class") && class.contains("GLACIER_IR, GLACIER or DEEP_ARCHIVE"), "{class}");
        assert!(check("archive_storage_class = \"GLACIER\"\n").unwrap_err().contains("needs archive_after_days"));
        assert!(toml::from_str::<Config>("[[logs]]\nname = \"x\"\nbatch_storage_class = \"COLD\"\n").is_err());
        let file =
            toml::from_str::<Config>("[[logs]]\nname = \"x\"\narchive_after_days = 30\n").unwrap().validate().unwrap_err().to_string();
        assert!(file.contains("logs[0].archive_after_days") && file.contains("needs an s3:// store"), "{file}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(
            parse_duration("1e30s").is_err() && parse_duration("99999999999999999999999h").is_err(),
            "huge values are errors, not panics"
        );
    }

    #[test]
    fn file_parses_and_names_bad_fields() {
        let config: Config = toml::from_str("seal_interval = \"5s\"\n[[logs]]\nname = \"big\"\ntenants = [\"acme\"]\n").unwrap();
        config.validate().unwrap();
        assert_eq!(config.seal_interval, Duration::from_secs(5));
        let logs = config.resolved_logs();
        assert_eq!(logs.iter().map(|log| log.name.as_str()).collect::<Vec<_>>(), ["default", "big"]);
        assert_eq!(logs[1].origin.as_deref(), Some("auditum/big"));
        assert_eq!(config.tenant_routes().get("acme").map(String::as_str), Some("big"));

        let locked: Config = toml::from_str(
            "retention_mode = \"governance\"\nretention_days = 7\n[[logs]]\nname = \"big\"\nretention_mode = \"compliance\"\nretention_days = 3650\n",
        )
        .unwrap();
        locked.validate().unwrap();
        let logs = locked.resolved_logs();
        assert_eq!(logs[0].retention(), Some(RetentionPolicy { mode: RetentionMode::Governance, days: 7 }));
        assert_eq!(logs[1].retention(), Some(RetentionPolicy { mode: RetentionMode::Compliance, days: 3650 }));
        let half: Config = toml::from_str("[[logs]]\nname = \"x\"\nretention_mode = \"compliance\"\n").unwrap();
        assert!(half.validate().unwrap_err().to_string().contains("logs[0].retention_days"));
        assert!(toml::from_str::<Config>("retention_mode = \"forever\"").is_err());

        let bad: Config = toml::from_str("[[logs]]\nname = \"Big Log\"\n").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("logs[0].name"));
        assert!(toml::from_str::<Config>("unknown_field = 1").is_err());
    }
}
