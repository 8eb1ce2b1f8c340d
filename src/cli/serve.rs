//! `auditum serve`: flags become config fields, read by the one config loader (flags over
//! `AUDITUM_*` variables over the file).

use auditum_server::config::{Config, parse_duration};
use auditum_store::RetentionMode;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config file; AUDITUM_* variables override it, and flags override both.
    #[arg(long, env = "AUDITUM_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Prometheus metrics listener (serves /metrics), e.g. 127.0.0.1:9090.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The web console and JSON HTTP API listener (default 127.0.0.1:8080); "" disables it.
    #[arg(long)]
    http_listen: Option<String>,
    /// WAL, keys and (by default) the file store live here.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Default store URL: file:///path or s3://bucket/prefix.
    #[arg(long)]
    store: Option<String>,
    /// How often open batches are sealed, e.g. 60s, 5s, 500ms.
    #[arg(long, value_parser = parse_duration)]
    seal_interval: Option<Duration>,
    /// Seal as soon as the open batch holds this many events.
    #[arg(long)]
    batch_max_events: Option<usize>,
    /// Log format: text or json.
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// S3 endpoint override, for S3-compatible servers (path-style addressing is then used).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// S3 region (default: the AWS chain's, else us-east-1).
    #[arg(long)]
    s3_region: Option<String>,
    /// Object Lock mode of the default log (and of logs without their own): compliance or governance.
    #[arg(long)]
    retention_mode: Option<RetentionMode>,
    /// Object Lock retention in days, with --retention-mode.
    #[arg(long)]
    retention_days: Option<u32>,
    /// Refuse appends (RESOURCE_EXHAUSTED) once a log's WAL holds this many bytes.
    #[arg(long)]
    wal_max_bytes: Option<u64>,
    /// PEM certificate chain: serve gRPC over TLS (with --tls-key).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates it signed.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Serve reads only (no WAL, no signing key), following each log's checkpoint and serving a
    /// new state only once verified; Append answers FAILED_PRECONDITION.
    #[arg(long)]
    read_only: bool,
    /// With --read-only: the writer's verifier key of the default log (the key, or its .vkey file).
    #[arg(long)]
    trusted_key: Option<String>,
    /// With --read-only: how often each log's checkpoint is read, e.g. 2s, 500ms.
    #[arg(long, value_parser = parse_duration)]
    follow_interval: Option<Duration>,
}

fn text(value: impl ToString) -> toml::Value {
    toml::Value::String(value.to_string())
}

fn path(value: &std::path::Path) -> toml::Value {
    text(value.display())
}

impl ServeArgs {
    /// The flags that were given, as config fields.
    fn overrides(&self) -> Vec<(&'static str, toml::Value)> {
        let integer = |value: u64| toml::Value::Integer(value.min(i64::MAX as u64) as i64);
        let mut fields = Vec::new();
        let mut set = |field: &'static str, value: Option<toml::Value>| {
            if let Some(value) = value {
                fields.push((field, value));
            }
        };
        set("listen", self.listen.map(text));
        set("metrics_listen", self.metrics_listen.map(text));
        set("http_listen", self.http_listen.as_ref().map(text));
        set("data_dir", self.data_dir.as_deref().map(path));
        set("store", self.store.as_ref().map(text));
        set("seal_interval", self.seal_interval.map(|interval| text(format!("{}ms", interval.as_millis()))));
        set("batch_max_events", self.batch_max_events.map(|events| integer(events as u64)));
        set("log_format", self.log_format.as_ref().map(text));
        set("s3_endpoint", self.s3_endpoint.as_ref().map(text));
        set("s3_region", self.s3_region.as_ref().map(text));
        set("retention_mode", self.retention_mode.map(|mode| text(format!("{mode:?}").to_lowercase())));
        set("retention_days", self.retention_days.map(|days| integer(u64::from(days))));
        set("wal_max_bytes", self.wal_max_bytes.map(integer));
        set("tls_cert", self.tls_cert.as_deref().map(path));
        set("tls_key", self.tls_key.as_deref().map(path));
        set("tls_client_ca", self.tls_client_ca.as_deref().map(path));
        set("read_only", self.read_only.then_some(toml::Value::Boolean(true)));
        set("trusted_key", self.trusted_key.as_ref().map(text));
        set("follow_interval", self.follow_interval.map(|interval| text(format!("{}ms", interval.as_millis()))));
        fields
    }

    /// The configuration: the file, then AUDITUM_* variables, then these flags; validated.
    pub fn config(&self) -> Result<Config, String> {
        Config::load(self.config.as_deref(), std::env::vars(), self.overrides()).map_err(|error| error.to_string())
    }
}

pub async fn run(config: Config) -> Result<bool, String> {
    keep_c_heap_pages();
    auditum_server::run(config, shutdown_signal()).await.map_err(|error| error.to_string())?;
    Ok(true)
}

/// zstd, through parquet, allocates a decompression context (~95 KB) with the C allocator for
/// every column chunk a query opens and frees it after. glibc gives heap memory back to the
/// kernel once 128 KiB lies free at a heap's top, so each query faulted the same pages in again
/// (page faults and zeroing were ~8 % of the server's CPU in random needles). Keep up to 64 MiB.
fn keep_c_heap_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before the server starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// SIGTERM or Ctrl-C. The handlers are registered when this is called, not when the future is
/// first polled: a SIGTERM that comes right after "auditum listening on" must stop the process
/// gracefully, not kill it with the signal's default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "cannot listen for SIGTERM or SIGINT; only Ctrl-C stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
