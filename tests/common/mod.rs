//! Helpers shared by the integration tests.
#![allow(dead_code)]

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
