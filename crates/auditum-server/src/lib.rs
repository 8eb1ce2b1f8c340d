//! auditum's server: the gRPC services over the engine, the one mapping of errors to statuses
//! (`status`), configuration (`config`), TLS, health, reflection and metrics, and startup:
//! [`start`] assembles logs and services and [`run`] serves until a shutdown future resolves,
//! then seals.

pub mod config;
mod forward;
pub mod grpc;
pub mod http;
mod metrics_http;
pub mod status;

use auditum_engine::access::Access;
use auditum_engine::admin::Admin;
use auditum_engine::dir_lock::DirLock;
use auditum_engine::ingest::Ingest;
use auditum_engine::log::{self, Log, LogSettings};
use auditum_engine::proofs::Prover;
use auditum_engine::query::Reader;
use auditum_format::checkpoint;
use auditum_proto::pb;
use auditum_proto::validate::{MAX_APPEND_BYTES, Redactor, Validator};
use auditum_store as store;
use config::Config;
use grpc::{admin::AdminApi, ingest::IngestApi, proof::ProofApi, query::QueryApi};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use auditum_engine::router::Logs;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error("log {log}: cannot open store {url}: {source}")]
    Store { log: String, url: String, source: store::Error },
    #[error("log {log}: keyring {url}: {source}")]
    Keyring { log: String, url: String, source: Box<auditum_keyring::Error> },
    #[error(transparent)]
    Log(#[from] log::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("server task failed: {0}")]
    Task(String),
    #[error("data directory: {0}")]
    DataDir(#[from] auditum_engine::dir_lock::Error),
    #[error("tls: {field} {path}: {reason}")]
    Tls { field: &'static str, path: std::path::PathBuf, reason: String },
}

/// Opens every configured log (WAL replay, ledger load, checkpoint repair).
pub async fn open_logs(config: &Config) -> Result<Logs> {
    config.validate()?;
    open_valid_logs(config).await
}

async fn open_valid_logs(config: &Config) -> Result<Logs> {
    // Every keyring first: a missing or wrong key-encryption key stops the server before any
    // log's WAL or store is touched.
    let log_configs = config.resolved_logs();
    let mut encryptions = Vec::with_capacity(log_configs.len());
    for log_config in &log_configs {
        encryptions.push(open_encryption(config, log_config).await?);
    }
    let mut logs = Vec::new();
    for (log_config, encryption) in log_configs.into_iter().zip(encryptions) {
        let url = log_config.store.clone().unwrap_or_else(|| config.default_store_url());
        let store_error = |source| Error::Store { log: log_config.name.clone(), url: url.clone(), source };
        let store = store::open(&url, &config.s3_options()).await.map_err(store_error)?;
        // The bucket checks are the log's first store calls (Log::open): a store that does not
        // answer then leaves the log pending instead of stopping the server.
        let retention = log_config.retention();
        let settings = LogSettings {
            origin: log_config.origin.clone().unwrap_or_else(|| format!("auditum/{}", log_config.name)),
            store,
            wal_dir: config.data_dir.join("wal").join(&log_config.name),
            key_path: checkpoint::signing_key_path(&config.data_dir, &log_config.name),
            seal_interval: config.seal_interval,
            batch_max_events: config.batch_max_events,
            batch_max_bytes: config.batch_max_bytes,
            batch_layout: auditum_batch::BatchLayout { row_group_rows: config.row_group_rows, page_rows: config.page_rows },
            wal_segment_bytes: config.wal_segment_bytes,
            idempotency_window: config.idempotency_window,
            idempotency_max_ids: config.idempotency_max_ids,
            retention,
            wal_max_bytes: config.wal_max_bytes,
            batch_storage_class: log_config.batch_storage_class,
            encryption,
            name: log_config.name.clone(),
        };
        let log = match log_config.verifier() {
            Some(verifier) if config.read_only => {
                let verifier =
                    verifier.map_err(|reason| config::Error::Invalid { field: format!("logs.{}.verifier_key", settings.name), reason })?;
                let replica = log::ReplicaSettings { verifier, follow_interval: config.follow_interval };
                let log = Log::open_read_only(settings, replica).await?;
                tracing::info!(log = %log.name(), store = %url, verifier_key = %log.verifier_key(), status = ?log.status(), served_entries = log.ledger_snapshot().entries.len(), "log open read-only: following its writer's checkpoints");
                log
            }
            _ => {
                let log = Log::open(settings).await?;
                tracing::info!(log = %log.name(), store = %url, verifier_key = %log.verifier_key(), committed_next_seq = %log.committed_next(), "log open");
                log
            }
        };
        logs.push(log);
    }
    Ok(Logs::new(logs, config.tenant_routes()))
}

/// A log's keyring (DESIGN §14), opened and checked: the store keeps no old versions, and the
/// key-encryption key opens what the keyring holds.
async fn open_encryption(config: &Config, log_config: &config::LogConfig) -> Result<Option<auditum_engine::encryption::Encryption>> {
    let Some(url) = &log_config.keyring else { return Ok(None) };
    let keyring_error = |source| Error::Keyring { log: log_config.name.clone(), url: url.clone(), source: Box::new(source) };
    let columns = log_config
        .encrypted_columns()
        .map_err(|reason| Error::Config(config::Error::Invalid { field: "encrypt_fields".into(), reason }))?;
    let kek = log_config
        .kek()
        .ok_or_else(|| {
            Error::Config(config::Error::Invalid { field: "kek_file".into(), reason: "a keyring needs kek_file or kek_env".into() })
        })?
        .map_err(keyring_error)?;
    let store = store::open(url, &config.s3_options()).await.map_err(|source| keyring_error(auditum_keyring::Error::Store(source)))?;
    let keyring = auditum_keyring::Keyring::open(store, &log_config.name, kek, config.key_cache_entries).await.map_err(keyring_error)?;
    tracing::info!(log = %log_config.name, keyring = %url, encrypt_fields = ?columns.names(), "keyring open");
    Ok(Some(auditum_engine::encryption::Encryption { keyring: Arc::new(keyring), columns }))
}

/// gRPC health service name of a log: NOT_SERVING while it is fenced, failed or its WAL is full.
pub fn log_health_service(log: &str) -> String {
    format!("auditum.log.{log}")
}

/// Keeps per-log health and gauges current. On a read-only node, QueryService and ProofService
/// are SERVING once every log has a verified state to serve (readiness), and stay so while a
/// later checkpoint is refused (the last verified state is still served).
async fn watch_logs(logs: Arc<Logs>, reporter: tonic_health::server::HealthReporter, read_only: bool) {
    use auditum_engine::metrics::{METRICS, log_label};
    let mut serving: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    let mut reads_ready = None;
    loop {
        if read_only {
            let ready = logs.all().all(|log| log.require_store().is_ok());
            if reads_ready != Some(ready) {
                reads_ready = Some(ready);
                let status = if ready { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
                for service in ["auditum.v1.QueryService", "auditum.v1.ProofService"] {
                    reporter.set_service_status(service, status).await;
                }
            }
        }
        for log in logs.all() {
            let label = log_label(log.name());
            METRICS.wal_bytes.get_or_create(&label).set(log.wal_bytes() as i64);
            METRICS.unsealed_events.get_or_create(&label).set(log.unsealed_count() as i64);
            if let Some(staleness) = log.replica_staleness() {
                METRICS.replica_staleness.get_or_create(&label).set(staleness.as_secs_f64());
            }
            let ok = log.status() == log::LogStatus::Serving && !log.wal_full();
            if serving.insert(log.name().to_string(), ok) != Some(ok) {
                let status = if ok { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
                if !ok {
                    tracing::warn!(log = %log.name(), status = ?log.status(), wal_full = log.wal_full(), "log health: not serving");
                }
                reporter.set_service_status(log_health_service(log.name()), status).await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A read-only node's keyrings forget their cached keys every follow interval: an erasure on the
/// writer (a deleted key, a tombstone) reaches this node's reads within it.
async fn forget_keys(logs: Arc<Logs>, interval: std::time::Duration) {
    loop {
        tokio::time::sleep(interval).await;
        for log in logs.all() {
            if let Some(encryption) = log.encryption() {
                encryption.keyring.forget_cached();
            }
        }
    }
}

/// How long a stopping server lets open streams (subscriptions, exports) finish.
const STREAM_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Query, Export and proof requests are small: a filter or a key.
pub const MAX_READ_REQUEST_BYTES: usize = 256 * 1024;

/// rustls from `tls_cert`/`tls_key`, requiring client certificates when `tls_client_ca` is set.
fn tls_config(config: &Config) -> Result<Option<tonic::transport::ServerTlsConfig>> {
    let (Some(cert_path), Some(key_path)) = (&config.tls_cert, &config.tls_key) else { return Ok(None) };
    let read = |field: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|error| Error::Tls { field, path: path.to_path_buf(), reason: error.to_string() })
    };
    let identity = tonic::transport::Identity::from_pem(read("tls_cert", cert_path)?, read("tls_key", key_path)?);
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca_path) = &config.tls_client_ca {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read("tls_client_ca", ca_path)?)).client_auth_optional(false);
    }
    tracing::info!(cert = %cert_path.display(), client_certificates = config.tls_client_ca.is_some(), "tls on");
    Ok(Some(tls))
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The console and JSON API (`http` or `https`, address), when enabled.
    pub http_addr: Option<(&'static str, SocketAddr)>,
    pub logs: Arc<Logs>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningServer {
    /// Graceful stop: no new calls, in-flight calls finish, open batches are sealed.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.map_err(|error| Error::Task(error.to_string()))?
    }
}

/// Binds `config.listen` (port 0 picks a free port), opens the logs and serves.
pub async fn start(config: Config) -> Result<RunningServer> {
    // Before binding: an invalid config (development mode on a public address) never listens.
    config.validate()?;
    // And a second process on the same data directory stops here, naming the first.
    let data_dir_lock = DirLock::acquire(&config.data_dir)?;
    let listener = TcpListener::bind(config.listen).await.map_err(|source| Error::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.listen, source })?;
    // Bounded concurrency per connection: more calls on one connection wait their turn.
    let concurrency_per_connection = config.max_concurrent_requests_per_connection;
    let mut builder = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(concurrency_per_connection)
        .max_concurrent_streams(Some(concurrency_per_connection as u32));
    if let Some(tls) = tls_config(&config)? {
        builder = builder.tls_config(tls)?;
    }
    let logs = Arc::new(open_valid_logs(&config).await?);
    auditum_engine::metrics::METRICS.init_series(
        &logs.all().map(|log| log.name().to_string()).collect::<Vec<_>>(),
        &config.api_keys.iter().map(|key| key.id.clone()).collect::<Vec<_>>(),
        &config.sinks.iter().map(|sink| sink.name.clone()).collect::<Vec<_>>(),
        &config.alerts.iter().map(|rule| rule.name.clone()).collect::<Vec<_>>(),
        config.read_only,
    );
    let validator = Arc::new(Validator { redactor: Redactor::new(config.redact_keys.clone()) });
    let mut access = Access::new(&config.api_key_specs(), logs.clone(), config.meta_audit, config.meta_audit_tenant.clone());
    if config.read_only && config.meta_audit {
        let mut forwarder = forward::WriterForwarder::default();
        for log_config in config.resolved_logs() {
            // Validated: every log of a read-only node with meta-audit on has its writer.
            let Some(writer) = &log_config.meta_audit_writer else { continue };
            let api_key = match &log_config.meta_audit_writer_key_env {
                Some(variable) => {
                    Some(std::env::var(variable).ok().filter(|secret| !secret.is_empty()).ok_or_else(|| config::Error::Invalid {
                        field: "meta_audit_writer_key_env".into(),
                        reason: format!("variable {variable} is not set (or empty): it holds the writer key's secret"),
                    })?)
                }
                None => None,
            };
            forwarder
                .add(&log_config.name, writer, api_key, config.meta_audit_writer_tls_ca.clone())
                .map_err(|reason| config::Error::Invalid { field: "meta_audit_writer".into(), reason })?;
            tracing::info!(log = %log_config.name, %writer, "reads of this log are recorded on its writer");
        }
        let node = format!(
            "{} ({addr})",
            std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| "read-only node".into())
        );
        if !forwarder.is_empty() {
            access = access.forwarding_to(Arc::new(forwarder), node);
        }
    }
    let access = Arc::new(access);
    if access.development_mode() {
        tracing::warn!(%addr, "development mode: no api_keys configured, every call is accepted unauthenticated (loopback only)");
    } else {
        tracing::info!(keys = config.api_keys.len(), "api keys required");
    }
    // Above the 4 MiB Append limit, so an oversized call gets the precise INVALID_ARGUMENT.
    let max_append_message = 2 * MAX_APPEND_BYTES;
    let ingest_api = IngestApi::new(Ingest::new(logs.clone(), access.clone()), validator, access.clone());
    let ingest = pb::ingest_service_server::IngestServiceServer::new(ingest_api.clone()).max_decoding_message_size(max_append_message);
    // Set when the server begins to stop: subscriptions end (UNAVAILABLE, with their cursor) so
    // the graceful stop does not wait on streams that never finish.
    let (closing, closing_watch) = tokio::sync::watch::channel(false);
    let reader = Reader::new(logs.clone(), access.clone()).closing_on(closing_watch.clone());
    let delivery = auditum_deliver::DeliverySettings {
        data_dir: config.data_dir.clone(),
        sinks: config.sinks.clone(),
        alerts: config.alerts.clone(),
        streams: config.streams.clone(),
        max_groups: auditum_deliver::config::DEFAULT_MAX_GROUPS,
    };
    auditum_deliver::start(logs.clone(), &reader, delivery, |name| std::env::var(name).ok(), closing_watch)
        .map_err(|error| Error::Task(error.to_string()))?;
    let query_api = QueryApi::new(reader, access.clone());
    let query = pb::query_service_server::QueryServiceServer::new(query_api.clone()).max_decoding_message_size(MAX_READ_REQUEST_BYTES);
    let proof_api = ProofApi::new(Prover::new(logs.clone(), access.clone()), access.clone());
    let proof = pb::proof_service_server::ProofServiceServer::new(proof_api.clone()).max_decoding_message_size(MAX_READ_REQUEST_BYTES);
    let admin_engine = Admin::new(logs.clone(), access.clone());
    // Active legal holds are put in force again in the background: a set or clear that stopped
    // half way (a crash, an outage) ends with every covered object held.
    tokio::spawn({
        let admin = admin_engine.clone();
        async move { admin.reapply_holds().await }
    });
    let admin_api = AdminApi::new(admin_engine, auditum_engine::erasure::Eraser::new(logs.clone(), access.clone()), access.clone());
    let admin = pb::admin_service_server::AdminServiceServer::new(admin_api.clone()).max_decoding_message_size(MAX_READ_REQUEST_BYTES);
    // The console and JSON API run the same service implementations, so every rule is shared.
    let mut http_task = None;
    let http_addr = match config.http_listen {
        Some(http_listen) => {
            let http_listener = TcpListener::bind(http_listen).await.map_err(|source| Error::Bind { addr: http_listen, source })?;
            let bound = http_listener.local_addr().map_err(|source| Error::Bind { addr: http_listen, source })?;
            let tls = http::tls_acceptor(&config)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let api =
                http::HttpApi::new(ingest_api, query_api, proof_api, admin_api, access.clone(), config.read_only).map_err(Error::Task)?;
            // It stops taking calls when gRPC does, and the logs are shut down after it.
            let mut http_closing = closing.subscribe();
            let limits = http::ConnectionLimits { max_concurrent_streams: concurrency_per_connection as u32, grace: STREAM_GRACE };
            http_task = Some(tokio::spawn(http::serve(http_listener, tls, http::router(api), limits, async move {
                auditum_engine::follow::closed(&mut http_closing).await;
            })));
            tracing::info!(addr = %bound, %scheme, "console and json api listening");
            Some((scheme, bound))
        }
        None => None,
    };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    for service in ["auditum.v1.IngestService", "auditum.v1.QueryService", "auditum.v1.ProofService", "auditum.v1.AdminService"] {
        // A read-only node takes no appends and runs no admin operation: balancers route
        // those to the writer.
        let writes = matches!(service, "auditum.v1.IngestService" | "auditum.v1.AdminService");
        let status =
            if writes && config.read_only { tonic_health::ServingStatus::NotServing } else { tonic_health::ServingStatus::Serving };
        health_reporter.set_service_status(service, status).await;
    }
    let watcher = tokio::spawn(watch_logs(logs.clone(), health_reporter.clone(), config.read_only));
    if config.read_only {
        tokio::spawn(forget_keys(logs.clone(), config.follow_interval));
    }
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1().map_err(|error| Error::Task(format!("reflection: {error}")))?;
    // v1alpha too: grpcio's reflection client and older grpcurl speak only that.
    let reflection_v1alpha = reflection_builder().build_v1alpha().map_err(|error| Error::Task(format!("reflection: {error}")))?;
    let (metrics_stop, metrics_stopped) = oneshot::channel::<()>();
    let metrics_addr = match config.metrics_listen {
        Some(metrics_listen) => {
            let metrics_listener =
                TcpListener::bind(metrics_listen).await.map_err(|source| Error::Bind { addr: metrics_listen, source })?;
            let bound = metrics_listener.local_addr().map_err(|source| Error::Bind { addr: metrics_listen, source })?;
            tokio::spawn(async move {
                if let Err(error) = metrics_http::serve(metrics_listener, async {
                    let _ = metrics_stopped.await;
                })
                .await
                {
                    tracing::error!(%error, "metrics listener failed");
                }
            });
            tracing::info!(addr = %bound, "metrics on /metrics");
            Some(bound)
        }
        None => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown_timeout = config.shutdown_seal_timeout;
    let server_logs = logs.clone();
    let task = tokio::spawn(async move {
        // tonic applies its TCP options only to listeners it binds itself: set nodelay here, or
        // Nagle's algorithm holds small responses back for milliseconds.
        let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |accepted| {
            accepted.inspect(|stream| {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::warn!(%error, "cannot set TCP_NODELAY");
                }
            })
        });
        let mut stream_grace = closing.subscribe();
        let serving = builder
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(grpc::limits::CallSizeAnswer(ingest))
            .add_service(query)
            .add_service(proof)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
                let _ = closing.send(true);
            });
        // A graceful stop waits for open streams; a subscriber that stopped reading would hold
        // it forever. Past the grace period the connections are dropped.
        let served = tokio::select! {
            served = serving => served,
            _ = async {
                auditum_engine::follow::closed(&mut stream_grace).await;
                tokio::time::sleep(STREAM_GRACE).await;
            } => {
                tracing::warn!(grace_s = STREAM_GRACE.as_secs(), "streams still open after the grace period: closing their connections");
                Ok(())
            }
        };
        health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        health_reporter.set_not_serving::<pb::ingest_service_server::IngestServiceServer<IngestApi>>().await;
        // HTTP calls end (within the same grace) before the logs seal and the data directory is let go.
        if let Some(http_task) = http_task {
            // gRPC serving that failed never signalled the stop the HTTP listener waits for.
            if served.is_err() {
                http_task.abort();
            }
            if let Err(error) = http_task.await
                && !error.is_cancelled()
            {
                tracing::warn!(%error, "http listener task failed");
            }
        }
        let mut result = served.map_err(Error::from);
        for log in server_logs.all() {
            if let Err(error) = log.shutdown(shutdown_timeout).await {
                tracing::warn!(log = %log.name(), %error, "open events stay in the wal and will be sealed at the next start");
                if result.is_ok() && !matches!(error, log::Error::SealAborted { .. }) {
                    result = Err(error.into());
                }
            }
        }
        watcher.abort();
        let _ = metrics_stop.send(());
        drop(data_dir_lock);
        result
    });
    tracing::info!(%addr, "auditum listening");
    Ok(RunningServer { addr, metrics_addr, http_addr, logs, stop: Some(stop), task })
}

/// Runs until `shutdown` resolves, then stops gracefully.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let server = start(config).await?;
    // Lines on stdout that scripts and tests can wait for; "listening" comes last.
    if let Some(metrics_addr) = server.metrics_addr {
        println!("auditum metrics on http://{metrics_addr}/metrics");
    }
    if let Some((scheme, http_addr)) = server.http_addr {
        println!("auditum console on {scheme}://{http_addr}/ (JSON API under /api/v1/)");
    }
    println!("auditum listening on {}", server.addr);
    shutdown.await;
    tracing::info!("shutting down: sealing open batches");
    server.stop().await
}
