//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod archive;
pub mod postgres;
pub mod s3;

use auditum_proto::pb;
use auditum_proto::pb::ingest_service_client::IngestServiceClient;
use auditum_server::config::Config;
use auditum_server::{self as server, RunningServer};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tonic::transport::Channel;

/// A config for a server on 127.0.0.1:0 with its data under `dir`.
pub fn test_config(dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        // The console and JSON API on a port of their own (the default, 8080, is shared).
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: dir.to_path_buf(),
        // Tests decide when to seal. Seals are aligned to the clock (multiples of the interval
        // since the epoch): an hour would seal at the top of every hour, in the middle of a test.
        seal_interval: Duration::from_secs(2000 * 24 * 3600),
        shutdown_seal_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

/// A log of its own for `tenants`, everything else as the top-level config says.
pub fn routed_log(name: &str, tenants: &[&str]) -> auditum_server::config::LogConfig {
    auditum_server::config::LogConfig {
        name: name.into(),
        origin: None,
        tenants: tenants.iter().map(|tenant| tenant.to_string()).collect(),
        ..Default::default()
    }
}

/// Writes `<dir>/auditum.toml` with one API key (only its hash); returns `--config <path>`.
pub fn key_config_args(dir: &Path, id: &str, secret: &str, tenant: &str, scopes: &[&str]) -> Vec<String> {
    let scopes = scopes.iter().map(|scope| format!("{scope:?}")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "[[api_keys]]\nid = {id:?}\nsecret_sha256 = \"{}\"\ntenant = {tenant:?}\nscopes = [{scopes}]\n",
        auditum_engine::auth::sha256_hex(secret)
    );
    let path = dir.join("auditum.toml");
    std::fs::write(&path, text).unwrap();
    vec!["--config".to_string(), path.display().to_string()]
}

/// The bearer secret of test key `id`.
pub fn secret(id: &str) -> String {
    format!("{id}.secret")
}

/// A configured key holding only the SHA-256 of [`secret`]`(id)`.
pub fn key_config(id: &str, tenant: &str, scopes: &[auditum_engine::auth::Scope]) -> auditum_server::config::ApiKeyConfig {
    auditum_server::config::ApiKeyConfig {
        id: id.to_string(),
        secret_sha256: auditum_engine::auth::sha256_hex(&secret(id)),
        tenant: tenant.to_string(),
        scopes: scopes.to_vec(),
        rate_per_second: None,
        burst: None,
    }
}

/// A channel to `server` that sends the bearer secret of test key `key`.
pub async fn keyed_channel(server: &str, key: &str) -> auditum_client::AuthChannel {
    let options = auditum_client::ConnectOptions { api_key: Some(secret(key)), ..Default::default() };
    auditum_client::channel(server, &options).await.unwrap()
}

/// Runs the real binary and returns (stdout, stderr, success).
pub fn run_binary(args: &[&str]) -> (String, String, bool) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_auditum")).args(args).output().unwrap();
    (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap(), output.status.success())
}

pub async fn start(config: Config) -> (RunningServer, IngestServiceClient<Channel>) {
    let running = server::start(config).await.expect("server starts");
    let client = auditum_client::connect(&format!("http://{}", running.addr)).await.expect("client connects");
    (running, client)
}

pub fn now_micros() -> i64 {
    auditum_format::time::now_micros()
}

pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    auditum_proto::convert::timestamp_from_micros(micros)
}

/// A minimal valid event.
pub fn event(tenant: &str, action: &str, actor: &str) -> pb::AuditEvent {
    pb::AuditEvent {
        subject_id: String::new(),
        id: String::new(),
        tenant_id: tenant.to_string(),
        occurred_at: Some(timestamp(now_micros())),
        action: action.to_string(),
        actor: Some(pb::Actor { id: actor.to_string(), r#type: pb::ActorType::User as i32, name: String::new() }),
        target: None,
        outcome: Some(pb::Outcome { result: pb::OutcomeResult::Success as i32, ..Default::default() }),
        context: None,
        before: None,
        after: None,
        metadata: None,
    }
}

pub fn with_id(mut event: pb::AuditEvent, id: &str) -> pb::AuditEvent {
    event.id = id.to_string();
    event
}

pub fn request(events: Vec<pb::AuditEvent>) -> pb::AppendRequest {
    pb::AppendRequest { events, wait_for_seal: false }
}

/// Starts the real `auditum serve` on 127.0.0.1:0 with `args`; returns it and its URL once it listens.
/// Its stderr goes to `<data_dir>/server.log`.
pub async fn spawn_binary(data_dir: &Path, args: &[String]) -> (tokio::process::Child, String) {
    let (child, url, _) = spawn_binary_with_metrics(data_dir, args).await;
    (child, url)
}

/// As [`spawn_binary`], with `--metrics-listen 127.0.0.1:0`; also returns the metrics URL.
pub async fn spawn_binary_with_metrics(data_dir: &Path, args: &[String]) -> (tokio::process::Child, String, Option<String>) {
    spawn_binary_with_env(data_dir, args, &[]).await
}

/// As [`spawn_binary_with_metrics`], with extra environment variables for the server.
pub async fn spawn_binary_with_env(
    data_dir: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, Option<String>) {
    use tokio::io::AsyncBufReadExt;
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("server.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn auditum");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let log = data_dir.join("server.log");
    let (addr, metrics) = tokio::time::timeout(Duration::from_secs(60), async {
        let mut metrics = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("auditum metrics on ") {
                metrics = Some(url.to_string());
            }
            if let Some(addr) = line.strip_prefix("auditum listening on ") {
                return (addr.to_string(), metrics);
            }
        }
        panic!("server exited before listening: {}", std::fs::read_to_string(&log).unwrap_or_default());
    })
    .await
    .expect("server listens within 60s");
    (child, format!("http://{addr}"), metrics)
}

/// GET over plain HTTP/1.1 on loopback (for /metrics).
pub async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').map(|(host, path)| (host, format!("/{path}"))).unwrap_or((rest, "/".into()));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// The status gRPC health reports for `service`.
pub async fn health_status(url: &str, service: &str) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    client.check(tonic_health::pb::HealthCheckRequest { service: service.to_string() }).await.unwrap().into_inner().status
}

/// SIGTERM, then the exit status.
pub async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits within 60s").unwrap()
}

/// Every stored event of `tenant`, through the Query RPC (sealed or not), without the server's
/// own `auditum.*` access-audit events (each Query page records one in the tenant it read).
pub async fn stored(url: &str, tenant: &str) -> Vec<pb::StoredEvent> {
    let channel = auditum_client::channel(url, &Default::default()).await.unwrap();
    let filter = pb::EventFilter { tenant_id: tenant.into(), ..Default::default() };
    let mut pager = auditum_client::query::Pager::new(channel, filter, false);
    let mut events = Vec::new();
    while let Some(page) = pager.next_page(1000).await.unwrap() {
        events.extend(page.events.into_iter().filter(|stored| !stored.event.as_ref().unwrap().action.starts_with("auditum.")));
    }
    events
}

/// Every page of a query; returns the events and the number of pages.
pub async fn query_all(
    client: &mut pb::query_service_client::QueryServiceClient<Channel>,
    filter: &pb::EventFilter,
    descending: bool,
    page_size: u32,
) -> (Vec<pb::StoredEvent>, usize) {
    let (mut events, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let request = pb::QueryRequest { filter: Some(filter.clone()), page_size, page_token: token, descending };
        let response = client.query(request).await.unwrap_or_else(|status| panic!("query {filter:?}: {status}")).into_inner();
        pages += 1;
        assert!(response.events.len() <= page_size as usize, "a page never exceeds page_size");
        if !response.next_page_token.is_empty() {
            assert_eq!(response.events.len(), page_size as usize, "only a full page has a next page");
        }
        events.extend(response.events);
        token = response.next_page_token;
        if token.is_empty() {
            return (events, pages);
        }
        assert!(pages < 10_000, "pagination does not end");
    }
}

/// Ids stored for `tenant`, each with how many times it is stored.
pub async fn stored_ids(url: &str, tenant: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in stored(url, tenant).await {
        *counts.entry(event.event.unwrap().id).or_default() += 1;
    }
    counts
}

/// Copies a directory tree with its files made writable (tests tamper with the copies); a data
/// directory's `LOCK` stays behind, so a server can start on the copy.
pub fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// Every file under `root`, recursively.
pub fn files_under(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { pending.push(path) } else { out.push(path) }
        }
    }
    out
}

/// Every ledger entry of `log` in the store, in index order.
pub async fn ledger_entries(store: &dyn auditum_store::ObjectStore, log: &str) -> Vec<auditum_format::ledger::LedgerEntry> {
    let mut entries = Vec::new();
    for meta in store.list(&auditum_format::paths::ledger_prefix(log)).await.unwrap() {
        let body = store.get(&meta.key, None).await.unwrap();
        entries.push(auditum_format::ledger::LedgerEntry::parse(std::str::from_utf8(&body).unwrap()).unwrap());
    }
    entries
}
