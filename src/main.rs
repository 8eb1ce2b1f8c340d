//! The `auditum` binary (DESIGN §9).

use auditum::checkpoint::{Signer, Verifier};
use auditum::config::{Config, LogFormat, parse_duration};
use auditum::{client, pb, sample, server, store, verify};
use clap::{Args, Parser, Subcommand};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

// Append handling allocates many small strings per event; mimalloc halves what glibc spends there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "auditum", version, about = "A tamper-evident audit-log vault")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (no flags: file store and WAL under ./auditum-data, 127.0.0.1:50051).
    Serve(ServeArgs),
    /// Append one event from flags, or JSON lines from a file or stdin.
    Append(AppendArgs),
    /// Generate a checkpoint signing key and print its verifier key.
    Keygen(KeygenArgs),
    /// Start a server in-process, append a realistic sample, seal, and show the signed result.
    Demo(DemoArgs),
    /// Verify a log's archive offline, straight from the store.
    Verify(VerifyArgs),
    /// Query a tenant's events from a server (a table, or JSON lines with --json).
    Query(QueryArgs),
    /// Export a tenant's events to a file (JSONL, CSV or Parquet) and check the summary hash.
    Export(ExportArgs),
    /// Fetch an event's proof (DESIGN §7) from a server and save it.
    Proof(ProofArgs),
    /// Verify a saved event proof offline against a pinned verifier key.
    VerifyProof(VerifyProofArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file (with AUDITUM_* overrides) and print the effective configuration.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct ProofArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Log name (default: default).
    #[arg(long, default_value = "")]
    log: String,
    /// The event's seq.
    #[arg(long, conflicts_with = "event_id", required_unless_present = "event_id")]
    seq: Option<u64>,
    /// The event's id.
    #[arg(long)]
    event_id: Option<String>,
    /// Write the proof here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Where the server is and how to authenticate to it.
#[derive(Args, Clone)]
struct ConnectArgs {
    /// Server URL (https:// for TLS).
    #[arg(long, env = "AUDITUM_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// API key, sent as `authorization: Bearer <key>`.
    #[arg(long, env = "AUDITUM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM CA of the server's certificate.
    #[arg(long, env = "AUDITUM_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (with --tls-client-key).
    #[arg(long, env = "AUDITUM_TLS_CLIENT_CERT")]
    tls_client_cert: Option<PathBuf>,
    /// PEM key of --tls-client-cert.
    #[arg(long, env = "AUDITUM_TLS_CLIENT_KEY")]
    tls_client_key: Option<PathBuf>,
}

impl ConnectArgs {
    async fn channel(&self) -> Result<client::AuthChannel, String> {
        let options = client::ConnectOptions {
            api_key: self.api_key.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_client_cert: self.tls_client_cert.clone(),
            tls_client_key: self.tls_client_key.clone(),
        };
        client::channel(&self.server, &options).await
    }
}

/// The EventFilter fields, as flags.
#[derive(Args, Clone)]
struct FilterArgs {
    /// Tenant (required).
    #[arg(long)]
    tenant: String,
    /// occurred_at at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// occurred_at before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    /// user, service, api_key, system or anonymous.
    #[arg(long)]
    actor_type: Option<String>,
    /// An action, or a prefix like `user.*`; repeat for any of several.
    #[arg(long = "action")]
    actions: Vec<String>,
    #[arg(long)]
    target_type: Option<String>,
    #[arg(long)]
    target_id: Option<String>,
    /// success, failure or denied.
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long)]
    request_id: Option<String>,
    #[arg(long)]
    correlation_id: Option<String>,
    #[arg(long)]
    session_id: Option<String>,
    #[arg(long)]
    source_ip: Option<String>,
}

impl FilterArgs {
    fn to_filter(&self) -> Result<pb::EventFilter, String> {
        let time = |flag: &str, text: &Option<String>| -> Result<Option<prost_types::Timestamp>, String> {
            text.as_deref()
                .map(client::parse_timestamp)
                .transpose()
                .map_err(|error| format!("--{flag}: {error} (e.g. 2026-07-01T00:00:00Z)"))
        };
        let actor_type =
            self.actor_type.as_deref().map(client::parse_actor_type).transpose().map_err(|error| format!("--actor-type: {error}"))?;
        let outcome = self.outcome.as_deref().map(client::parse_outcome).transpose().map_err(|error| format!("--outcome: {error}"))?;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        Ok(pb::EventFilter {
            tenant_id: self.tenant.clone(),
            start_time: time("since", &self.since)?,
            end_time: time("until", &self.until)?,
            actor_id: text(&self.actor),
            actor_type: actor_type.unwrap_or_default(),
            actions: self.actions.clone(),
            target_type: text(&self.target_type),
            target_id: text(&self.target_id),
            outcome: outcome.unwrap_or_default(),
            request_id: text(&self.request_id),
            correlation_id: text(&self.correlation_id),
            session_id: text(&self.session_id),
            source_ip: text(&self.source_ip),
        })
    }
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Stop after this many events.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Events per request (at most 1000).
    #[arg(long, default_value_t = 500)]
    page_size: u32,
    /// Newest first.
    #[arg(long)]
    desc: bool,
    /// One JSON object per line: the stored columns plus sealed, batch_index, log, leaf_hash.
    #[arg(long)]
    json: bool,
    /// Print the pushdown statistics of each page on stderr.
    #[arg(long)]
    stats: bool,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// jsonl, csv or parquet.
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// The output file; the summary is written beside it as FILE.summary.json.
    #[arg(long)]
    out: PathBuf,
    /// Also export events not yet sealed (not covered by the summary's checkpoint).
    #[arg(long)]
    include_unsealed: bool,
}

#[derive(Args)]
struct VerifyProofArgs {
    /// The saved proof.
    file: PathBuf,
    /// Pinned verifier key (`name+id+key`) or a file holding it.
    #[arg(long)]
    trusted_key: String,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// TOML config file; flags and AUDITUM_* variables override it.
    #[arg(long, env = "AUDITUM_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "AUDITUM_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Prometheus metrics listener (serves /metrics), e.g. 127.0.0.1:9090.
    #[arg(long, env = "AUDITUM_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// WAL, keys and (by default) the file store live here.
    #[arg(long, env = "AUDITUM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Default store URL: file:///path (s3:// comes with the S3 backend).
    #[arg(long, env = "AUDITUM_STORE")]
    store: Option<String>,
    /// How often open batches are sealed, e.g. 60s, 5s, 500ms.
    #[arg(long, env = "AUDITUM_SEAL_INTERVAL", value_parser = parse_duration)]
    seal_interval: Option<Duration>,
    /// Seal as soon as the open batch holds this many events.
    #[arg(long, env = "AUDITUM_BATCH_MAX_EVENTS")]
    batch_max_events: Option<usize>,
    /// Log format: text or json.
    #[arg(long, env = "AUDITUM_LOG_FORMAT")]
    log_format: Option<String>,
    #[command(flatten)]
    s3: S3Args,
    /// Object Lock mode of the default log (and of logs without their own): compliance or governance.
    #[arg(long, env = "AUDITUM_RETENTION_MODE")]
    retention_mode: Option<auditum::store::RetentionMode>,
    /// Object Lock retention in days, with --retention-mode.
    #[arg(long, env = "AUDITUM_RETENTION_DAYS")]
    retention_days: Option<u32>,
    /// Refuse appends (RESOURCE_EXHAUSTED) once a log's WAL holds this many bytes.
    #[arg(long, env = "AUDITUM_WAL_MAX_BYTES")]
    wal_max_bytes: Option<u64>,
    /// PEM certificate chain: serve gRPC over TLS (with --tls-key).
    #[arg(long, env = "AUDITUM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "AUDITUM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates it signed.
    #[arg(long, env = "AUDITUM_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct S3Args {
    /// S3 endpoint override, for S3-compatible servers (path-style addressing is then used).
    #[arg(long, env = "AUDITUM_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region (default: the AWS chain's, else us-east-1).
    #[arg(long, env = "AUDITUM_S3_REGION")]
    s3_region: Option<String>,
}

impl ServeArgs {
    fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path),
            // No file: defaults, with every AUDITUM_<FIELD> variable still applied.
            None => Config::from_toml_with_env("", "AUDITUM_* variables", std::env::vars()),
        }
        .map_err(|error| error.to_string())?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(data_dir) = &self.data_dir {
            config.data_dir = data_dir.clone();
        }
        if let Some(metrics_listen) = self.metrics_listen {
            config.metrics_listen = Some(metrics_listen);
        }
        if let Some(store) = &self.store {
            config.store = Some(store.clone());
        }
        if let Some(interval) = self.seal_interval {
            config.seal_interval = interval;
        }
        if let Some(max_events) = self.batch_max_events {
            config.batch_max_events = max_events;
        }
        if let Some(endpoint) = &self.s3.s3_endpoint {
            config.s3_endpoint = Some(endpoint.clone());
        }
        if let Some(region) = &self.s3.s3_region {
            config.s3_region = Some(region.clone());
        }
        if self.retention_mode.is_some() || self.retention_days.is_some() {
            config.retention_mode = self.retention_mode.or(config.retention_mode);
            config.retention_days = self.retention_days.or(config.retention_days);
        }
        if let Some(limit) = self.wal_max_bytes {
            config.wal_max_bytes = limit;
        }
        if let Some(path) = &self.tls_cert {
            config.tls_cert = Some(path.clone());
        }
        if let Some(path) = &self.tls_key {
            config.tls_key = Some(path.clone());
        }
        if let Some(path) = &self.tls_client_ca {
            config.tls_client_ca = Some(path.clone());
        }
        if let Some(format) = &self.log_format {
            config.log_format = match format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(format!("--log-format: {other:?} is not text or json")),
            };
        }
        config.validate().map_err(|error| error.to_string())?;
        Ok(config)
    }
}

#[derive(Args)]
struct AppendArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// JSON lines, one event per line ('-' for stdin); see `auditum::client` for the shape.
    #[arg(long, conflicts_with_all = ["tenant", "action", "actor_id"])]
    file: Option<String>,
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    actor_id: Option<String>,
    /// user, service, api_key, system or anonymous.
    #[arg(long)]
    actor_type: Option<String>,
    #[arg(long)]
    actor_name: Option<String>,
    #[arg(long)]
    target_type: Option<String>,
    #[arg(long)]
    target_id: Option<String>,
    #[arg(long)]
    target_name: Option<String>,
    /// success, failure or denied.
    #[arg(long, default_value = "success")]
    outcome: String,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    source_ip: Option<String>,
    #[arg(long)]
    request_id: Option<String>,
    /// RFC 3339; default now.
    #[arg(long)]
    occurred_at: Option<String>,
    /// JSON object.
    #[arg(long)]
    metadata: Option<String>,
    /// JSON object.
    #[arg(long)]
    before: Option<String>,
    /// JSON object.
    #[arg(long)]
    after: Option<String>,
    /// Answer only once the events are sealed into a committed batch.
    #[arg(long)]
    wait_for_seal: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct KeygenArgs {
    /// `api-key` makes an API key; without it, a checkpoint signing key.
    #[command(subcommand)]
    kind: Option<KeygenKind>,
    /// Key name: the log's checkpoint origin.
    #[arg(long, default_value = "auditum/default")]
    origin: String,
    /// Write the private key here (mode 0600) and the verifier key beside it (.vkey).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeygenKind {
    /// A new API key: prints its secret once, and the config lines (with only its SHA-256).
    ApiKey {
        /// Key id ([a-z0-9_-], 1-64): the actor of its meta-audit events.
        #[arg(long)]
        id: String,
        /// The tenant it may write and read, or `*` for a platform key.
        #[arg(long)]
        tenant: String,
        /// append, query, export, proof, admin; repeat or separate with commas.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
}

#[derive(Args)]
struct DemoArgs {
    /// Where to keep the demo's data; default a new temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Events to append.
    #[arg(long, default_value_t = 5000)]
    events: usize,
}

#[derive(Args)]
struct VerifyArgs {
    /// Store URL, e.g. file:///var/lib/auditum/store.
    #[arg(long)]
    store: String,
    /// Pinned verifier key (`name+id+key`) or a file holding it.
    #[arg(long)]
    trusted_key: String,
    /// Log name.
    #[arg(long, default_value = "default")]
    log: String,
    /// An older checkpoint you kept (signed note file): the archive must extend it.
    #[arg(long)]
    since_checkpoint: Option<PathBuf>,
    /// Batches checked at once.
    #[arg(long)]
    parallelism: Option<usize>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    s3: S3Args,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITUM_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = ctrl_c.await;
        }
    }
}

fn now_timestamp() -> prost_types::Timestamp {
    auditum::api::timestamp_from_micros(auditum::log::now_micros())
}

fn parse_json_object(flag: &str, text: &Option<String>) -> Result<Option<prost_types::Struct>, String> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(fields)) => Ok(Some(client::json_to_struct(&fields))),
        Ok(_) => Err(format!("--{flag}: expected a JSON object")),
        Err(error) => Err(format!("--{flag}: {error}")),
    }
}

fn event_from_flags(args: &AppendArgs) -> Result<pb::AuditEvent, String> {
    let occurred_at = match &args.occurred_at {
        Some(text) => client::parse_timestamp(text).map_err(|error| format!("--occurred-at: {error}"))?,
        None => now_timestamp(),
    };
    Ok(pb::AuditEvent {
        id: args.id.clone().unwrap_or_default(),
        tenant_id: args.tenant.clone().unwrap_or_default(),
        occurred_at: Some(occurred_at),
        action: args.action.clone().unwrap_or_default(),
        actor: Some(pb::Actor {
            id: args.actor_id.clone().unwrap_or_default(),
            r#type: client::parse_actor_type(args.actor_type.as_deref().unwrap_or("")).map_err(|error| format!("--actor-type: {error}"))?,
            name: args.actor_name.clone().unwrap_or_default(),
        }),
        target: Some(pb::Target {
            r#type: args.target_type.clone().unwrap_or_default(),
            id: args.target_id.clone().unwrap_or_default(),
            name: args.target_name.clone().unwrap_or_default(),
        }),
        outcome: Some(pb::Outcome {
            result: client::parse_outcome(&args.outcome).map_err(|error| format!("--outcome: {error}"))?,
            error_code: String::new(),
            reason: args.reason.clone().unwrap_or_default(),
        }),
        context: Some(pb::Context {
            request_id: args.request_id.clone().unwrap_or_default(),
            source_ip: args.source_ip.clone().unwrap_or_default(),
            ..Default::default()
        }),
        before: parse_json_object("before", &args.before)?,
        after: parse_json_object("after", &args.after)?,
        metadata: parse_json_object("metadata", &args.metadata)?,
    })
}

fn read_events(path: &str) -> Result<Vec<pb::AuditEvent>, String> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(|error| format!("{path}: {error}"))?))
    };
    let mut events = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|error| format!("{path}: {error}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|error| format!("{path}:{}: {error}", number + 1))?;
        events.push(client::event_from_json(&value, now_timestamp()).map_err(|error| format!("{path}:{}: {error}", number + 1))?);
    }
    Ok(events)
}

/// Splits events into calls within the Append limits (1000 events, 4 MiB).
fn chunk_requests(events: Vec<pb::AuditEvent>, wait_for_seal: bool) -> Vec<pb::AppendRequest> {
    use prost::Message;
    let mut requests = Vec::new();
    let mut current = pb::AppendRequest { events: Vec::new(), wait_for_seal };
    let mut bytes = 0;
    for event in events {
        let size = event.encoded_len() + 8;
        if !current.events.is_empty()
            && (current.events.len() >= auditum::validate::MAX_EVENTS_PER_APPEND || bytes + size > auditum::validate::MAX_APPEND_BYTES)
        {
            requests.push(std::mem::replace(&mut current, pb::AppendRequest { events: Vec::new(), wait_for_seal }));
            bytes = 0;
        }
        bytes += size;
        current.events.push(event);
    }
    if !current.events.is_empty() {
        requests.push(current);
    }
    requests
}

async fn append(args: AppendArgs) -> Result<(), String> {
    let events = match &args.file {
        Some(path) => read_events(path)?,
        None => vec![event_from_flags(&args)?],
    };
    let mut client = pb::ingest_service_client::IngestServiceClient::new(args.connect.channel().await?)
        .max_encoding_message_size(2 * auditum::validate::MAX_APPEND_BYTES);
    for request in chunk_requests(events, args.wait_for_seal) {
        let response = client.append(request).await.map_err(|status| format!("append failed: {}: {}", status.code(), status.message()))?;
        for result in response.into_inner().results {
            println!("seq={} id={} log={} duplicate={}", result.seq, result.id, result.log, result.duplicate);
        }
    }
    Ok(())
}

fn keygen(args: KeygenArgs) -> Result<(), String> {
    if let Some(KeygenKind::ApiKey { id, tenant, scopes }) = args.kind {
        return keygen_api_key(&id, &tenant, &scopes);
    }
    let signer = Signer::generate(&args.origin).map_err(|error| error.to_string())?;
    match &args.out {
        Some(path) => {
            signer.write_files(path).map_err(|error| format!("{}: {error}", path.display()))?;
            eprintln!("wrote {} (private, mode 0600) and {}", path.display(), path.with_extension("vkey").display());
        }
        None => println!("{}", signer.to_private_key_text()),
    }
    println!("{}", signer.verifier_key());
    Ok(())
}

fn keygen_api_key(id: &str, tenant: &str, scopes: &[String]) -> Result<(), String> {
    use auditum::auth::{Scope, generate_secret, sha256_hex};
    auditum::config::check_api_key_identity(id, tenant).map_err(|(flag, reason)| format!("--{flag}: {reason}"))?;
    let scopes = scopes
        .iter()
        .map(|scope| Scope::parse(scope.trim()).ok_or_else(|| format!("--scope: {scope:?} is not append, query, export, proof or admin")))
        .collect::<Result<Vec<_>, _>>()?;
    let secret = generate_secret(id);
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let scope_list = scopes.iter().map(|scope| quoted(scope.as_str())).collect::<Vec<_>>().join(", ");
    eprintln!("the secret is shown once; give it to the client (authorization: Bearer <secret>) and keep only its hash:");
    println!("{secret}");
    eprintln!("\nadd to the server's config:");
    println!(
        "\n[[api_keys]]\nid = {}\nsecret_sha256 = {}\ntenant = {}\nscopes = [{scope_list}]",
        quoted(id),
        quoted(&sha256_hex(&secret)),
        quoted(tenant)
    );
    Ok(())
}

fn read_trusted_key(text: &str) -> Result<Verifier, String> {
    let key_text = if std::path::Path::new(text).is_file() {
        std::fs::read_to_string(text).map_err(|error| format!("{text}: {error}"))?
    } else {
        text.to_string()
    };
    Verifier::parse(&key_text).map_err(|error| format!("--trusted-key: {error}"))
}

async fn verify_command(args: VerifyArgs) -> Result<bool, String> {
    use std::io::Write;
    let verifier = read_trusted_key(&args.trusted_key)?;
    let s3 = store::S3Options { endpoint: args.s3.s3_endpoint.clone(), region: args.s3.s3_region.clone(), force_path_style: None };
    let store = store::open(&args.store, &s3).await.map_err(|error| error.to_string())?;
    let mut options = verify::Options::default();
    if let Some(path) = &args.since_checkpoint {
        options.since_checkpoint =
            Some(std::fs::read_to_string(path).map_err(|error| format!("--since-checkpoint {}: {error}", path.display()))?);
    }
    if let Some(parallelism) = args.parallelism {
        options.parallelism = parallelism;
    }
    let started = std::time::Instant::now();
    let last_draw = std::sync::Mutex::new(std::time::Instant::now() - Duration::from_secs(1));
    let quiet = args.quiet;
    let progress = |progress: &verify::Progress| {
        let mut last = last_draw.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if quiet || (last.elapsed() < Duration::from_millis(200) && progress.entries_checked < progress.entries_total) {
            return;
        }
        *last = std::time::Instant::now();
        let rate = progress.events_checked as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\rverifying: {}/{} batches, {} events ({rate:.0} events/s)   ",
            progress.entries_checked, progress.entries_total, progress.events_checked
        );
        let _ = std::io::stderr().flush();
    };
    let report =
        verify::verify_log_with(store.as_ref(), &args.log, &verifier, &options, progress).await.map_err(|error| error.to_string())?;
    if !quiet {
        eprintln!();
    }
    for problem in &report.problems {
        println!("PROBLEM {problem}");
    }
    for warning in &report.warnings {
        println!("WARNING {warning}");
    }
    println!("{} in {:.1}s", report.summary(), started.elapsed().as_secs_f64());
    Ok(report.ok())
}

fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp.and_then(|time| auditum::validate::timestamp_micros(time).ok()).map(auditum::export::rfc3339_micros).unwrap_or_default()
}

async fn query_command(args: QueryArgs) -> Result<bool, String> {
    let filter = args.filter.to_filter()?;
    let mut client =
        pb::query_service_client::QueryServiceClient::new(args.connect.channel().await?).max_decoding_message_size(256 * 1024 * 1024);
    let mut token = String::new();
    let mut printed = 0;
    if !args.json {
        println!("{:<27} {:>10} {:<28} {:<24} {:<24} {:<8} SEALED", "OCCURRED_AT", "SEQ", "ACTION", "ACTOR", "TARGET", "OUTCOME");
    }
    while printed < args.limit {
        let page_size = args.page_size.min((args.limit - printed) as u32);
        let request = pb::QueryRequest { filter: Some(filter.clone()), page_size, page_token: token.clone(), descending: args.desc };
        let response =
            client.query(request).await.map_err(|status| format!("Query failed: {}: {}", status.code(), status.message()))?.into_inner();
        if args.stats
            && let Some(stats) = &response.stats
        {
            eprintln!("{stats:?}");
        }
        for stored in &response.events {
            let Some(event) = &stored.event else { continue };
            if args.json {
                let record =
                    auditum::query::record_of(stored).map_err(|error| format!("server sent an event that does not convert: {error}"))?;
                let mut object = record.to_json();
                if let Some(map) = object.as_object_mut() {
                    map.insert("sealed".into(), stored.sealed.into());
                    map.insert("batch_index".into(), if stored.sealed { stored.batch_index.into() } else { serde_json::Value::Null });
                    map.insert("log".into(), stored.log.clone().into());
                    map.insert("leaf_hash".into(), hex::encode(&stored.leaf_hash).into());
                }
                println!("{object}");
            } else {
                let actor = event.actor.as_ref().map(|actor| actor.id.clone()).unwrap_or_default();
                let target = event.target.as_ref().map(|target| format!("{}:{}", target.r#type, target.id)).unwrap_or_default();
                let outcome = event
                    .outcome
                    .as_ref()
                    .map(|outcome| outcome.result().as_str_name().trim_start_matches("OUTCOME_RESULT_").to_lowercase());
                println!(
                    "{:<27} {:>10} {:<28} {:<24} {:<24} {:<8} {}",
                    rfc3339(event.occurred_at.as_ref()),
                    stored.seq,
                    event.action,
                    actor,
                    target,
                    outcome.unwrap_or_default(),
                    if stored.sealed { format!("batch {}", stored.batch_index) } else { "unsealed".into() }
                );
            }
            printed += 1;
        }
        token = response.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    if !token.is_empty() && !args.json {
        eprintln!("(stopped at --limit {}; more events match)", args.limit);
    }
    Ok(true)
}

async fn export_command(args: ExportArgs) -> Result<bool, String> {
    use sha2::Digest;
    use std::io::Write;
    let filter = args.filter.to_filter()?;
    let format = match args.format.as_str() {
        "jsonl" => pb::ExportFormat::Jsonl,
        "csv" => pb::ExportFormat::Csv,
        "parquet" => pb::ExportFormat::Parquet,
        other => return Err(format!("--format {other:?}: use jsonl, csv or parquet")),
    };
    let mut client =
        pb::query_service_client::QueryServiceClient::new(args.connect.channel().await?).max_decoding_message_size(64 * 1024 * 1024);
    let request = pb::ExportRequest { filter: Some(filter), format: format as i32, include_unsealed: args.include_unsealed };
    let mut stream =
        client.export(request).await.map_err(|status| format!("Export failed: {}: {}", status.code(), status.message()))?.into_inner();
    let partial = args.out.with_extension(format!("{}.partial", args.out.extension().and_then(|ext| ext.to_str()).unwrap_or("out")));
    let file = std::fs::File::create(&partial).map_err(|error| format!("{}: {error}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut hasher = sha2::Sha256::new();
    let (mut bytes, started) = (0u64, std::time::Instant::now());
    let mut last_report = started;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report_every = if interactive { Duration::from_millis(200) } else { Duration::from_secs(5) };
    let mut summary = None;
    while let Some(message) = stream.message().await.map_err(|status| format!("Export failed: {}: {}", status.code(), status.message()))? {
        match message.item {
            Some(pb::export_response::Item::Chunk(chunk)) => {
                hasher.update(&chunk);
                bytes += chunk.len() as u64;
                out.write_all(&chunk).map_err(|error| format!("{}: {error}", partial.display()))?;
                if last_report.elapsed() >= report_every {
                    last_report = std::time::Instant::now();
                    let rate = bytes as f64 / started.elapsed().as_secs_f64().max(0.001) / 1e6;
                    let line =
                        format!("exporting: {:.1} MB received, {rate:.1} MB/s, {:.0?} elapsed", bytes as f64 / 1e6, started.elapsed());
                    if interactive { eprint!("\r{line}   ") } else { eprintln!("{line}") }
                }
            }
            Some(pb::export_response::Item::Summary(done)) => summary = Some(done),
            None => {}
        }
    }
    if interactive {
        eprintln!();
    }
    out.flush().map_err(|error| format!("{}: {error}", partial.display()))?;
    out.into_inner().map_err(|error| error.to_string())?.sync_all().map_err(|error| format!("{}: {error}", partial.display()))?;
    let Some(summary) = summary else {
        return Err(format!("the export ended without a summary; {} is incomplete", partial.display()));
    };
    let digest = hex::encode(hasher.finalize());
    if digest != summary.sha256 {
        return Err(format!("the received bytes hash to {digest}, the summary says {}; {} is corrupt", summary.sha256, partial.display()));
    }
    std::fs::rename(&partial, &args.out).map_err(|error| format!("{}: {error}", args.out.display()))?;
    let summary_path = PathBuf::from(format!("{}.summary.json", args.out.display()));
    let summary_json = serde_json::json!({
        "rows": summary.rows,
        "unsealed_rows": summary.unsealed_rows,
        "sha256": summary.sha256,
        "bytes": bytes,
        "format": args.format,
        "checkpoint": summary.checkpoint,
    });
    std::fs::write(&summary_path, format!("{summary_json:#}\n")).map_err(|error| format!("{}: {error}", summary_path.display()))?;
    eprintln!(
        "exported {} rows ({} bytes, sha256 {}) to {} in {:.1?}; summary and checkpoint in {}",
        summary.rows,
        bytes,
        summary.sha256,
        args.out.display(),
        started.elapsed(),
        summary_path.display()
    );
    Ok(true)
}

async fn proof_command(args: ProofArgs) -> Result<bool, String> {
    let mut client =
        pb::proof_service_client::ProofServiceClient::new(args.connect.channel().await?).max_decoding_message_size(64 * 1024 * 1024);
    let key = match (args.seq, args.event_id) {
        (Some(seq), _) => pb::get_event_proof_request::Key::Seq(seq),
        (None, Some(id)) => pb::get_event_proof_request::Key::EventId(id),
        (None, None) => return Err("give --seq or --event-id".into()),
    };
    let response = client
        .get_event_proof(pb::GetEventProofRequest { log: args.log, key: Some(key) })
        .await
        .map_err(|status| format!("GetEventProof failed: {}: {}", status.code(), status.message()))?;
    let proof_json = response.into_inner().proof_json;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &proof_json).map_err(|error| format!("{}: {error}", path.display()))?;
            eprintln!("saved the proof to {}", path.display());
        }
        None => print!("{proof_json}"),
    }
    Ok(true)
}

fn verify_proof_command(args: VerifyProofArgs) -> Result<bool, String> {
    let verifier = read_trusted_key(&args.trusted_key)?;
    let text = std::fs::read_to_string(&args.file).map_err(|error| format!("{}: {error}", args.file.display()))?;
    match auditum::proof::verify(&text, &verifier) {
        Ok(verified) => {
            println!(
                "OK: event seq {} (id {}, tenant {}) is in batch {} of log {}, covered by checkpoint {} of {} signed by {}",
                verified.event.seq,
                verified.event.id,
                verified.event.tenant_id,
                verified.entry.index,
                verified.entry.log,
                verified.checkpoint.size,
                verified.checkpoint.origin,
                verifier.name
            );
            Ok(true)
        }
        Err(error) => {
            println!("REJECTED: {error}");
            Ok(false)
        }
    }
}

async fn demo(args: DemoArgs) -> Result<bool, String> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("auditum-demo-{}-{:08x}", std::process::id(), rand::random::<u32>())));
    let config = Config { listen: "127.0.0.1:0".parse().map_err(|_| "bad address")?, data_dir: data_dir.clone(), ..Config::default() };
    let running = server::start(config.clone()).await.map_err(|error| error.to_string())?;
    let url = format!("http://{}", running.addr);
    println!("demo server on {url}, data in {}", data_dir.display());
    let mut client = client::connect(&url).await.map_err(|error| error.to_string())?;
    let mut rng = rand::thread_rng();
    let now = auditum::log::now_micros();
    let events: Vec<pb::AuditEvent> =
        (0..args.events).map(|i| sample::realistic_event(&mut rng, now - 60_000_000 + i as i64 * 1000)).collect();
    let started = std::time::Instant::now();
    for request in chunk_requests(events, false) {
        client.append(request).await.map_err(|status| format!("append failed: {}", status.message()))?;
    }
    println!(
        "appended {} events across 5 tenants in {:.1} ms (each acknowledged after fsync)",
        args.events,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let log = running.logs.by_name("default").ok_or("no default log")?.clone();
    log.seal_now().await.map_err(|error| error.to_string())?;
    let snapshot = log.ledger_snapshot();
    if let Some(head) = snapshot.entries.last() {
        println!("\nledger head ({} entries):\n{}", snapshot.entries.len(), head.to_json_text());
    }
    if let Some(checkpoint) = &snapshot.checkpoint {
        println!("\nsigned checkpoint:\n{checkpoint}");
    }
    let verifier_key = log.verifier_key();
    println!("verifier key:\n{verifier_key}\n");
    let report =
        verify::verify_log(log.store().as_ref(), "default", &read_trusted_key(&verifier_key)?).await.map_err(|error| error.to_string())?;
    println!("offline verification: {}", report.summary());
    println!("verify it yourself: auditum verify --store {} --trusted-key '{verifier_key}'", log.store().url());
    running.stop().await.map_err(|error| error.to_string())?;
    Ok(report.ok())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Command::Serve(args) => args.config().map(|config| config.log_format).unwrap_or_default(),
        _ => LogFormat::Text,
    };
    init_tracing(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("auditum: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Result<bool, String> = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let config = args.config()?;
                server::run(config, shutdown_signal()).await.map_err(|error| error.to_string())?;
                Ok(true)
            }
            Command::Append(args) => append(args).await.map(|()| true),
            Command::Keygen(args) => keygen(args).map(|()| true),
            Command::Demo(args) => demo(args).await,
            Command::Verify(args) => verify_command(args).await,
            Command::Query(args) => query_command(args).await,
            Command::Export(args) => export_command(args).await,
            Command::Proof(args) => proof_command(args).await,
            Command::VerifyProof(args) => verify_proof_command(args),
            Command::Config(ConfigCommand::Check { file }) => {
                let config = Config::from_file(&file).map_err(|error| error.to_string())?;
                print!("{}", config.to_toml());
                eprintln!("{}: valid", file.display());
                Ok(true)
            }
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("auditum: {message}");
            ExitCode::FAILURE
        }
    }
}
