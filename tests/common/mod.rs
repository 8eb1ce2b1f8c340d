//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod s3;

use auditum::config::Config;
use auditum::pb;
use auditum::pb::ingest_service_client::IngestServiceClient;
use auditum::server::{self, RunningServer};
use std::path::Path;
use std::time::Duration;
use tonic::transport::Channel;

/// A config for a server on 127.0.0.1:0 with its data under `dir`.
pub fn test_config(dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        // Long enough that tests decide when to seal.
        seal_interval: Duration::from_secs(3600),
        shutdown_seal_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

pub async fn start(config: Config) -> (RunningServer, IngestServiceClient<Channel>) {
    let running = server::start(config).await.expect("server starts");
    let client = auditum::client::connect(&format!("http://{}", running.addr)).await.expect("client connects");
    (running, client)
}

pub fn now_micros() -> i64 {
    auditum::log::now_micros()
}

pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    auditum::api::timestamp_from_micros(micros)
}

/// A minimal valid event.
pub fn event(tenant: &str, action: &str, actor: &str) -> pb::AuditEvent {
    pb::AuditEvent {
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
    use tokio::io::AsyncBufReadExt;
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("server.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn auditum");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let log = data_dir.join("server.log");
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("auditum listening on ") {
                return addr.to_string();
            }
        }
        panic!("server exited before listening: {}", std::fs::read_to_string(&log).unwrap_or_default());
    })
    .await
    .expect("server listens within 60s");
    (child, format!("http://{addr}"))
}

/// SIGTERM, then the exit status.
pub async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits within 60s").unwrap()
}
