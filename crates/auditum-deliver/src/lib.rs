//! Alert rules and deliveries (DESIGN §11), started beside the server's logs:
//!
//! - `alerts`: per log, the rules follow its durable events in seq order and append each firing
//!   as an `auditum.alert` event;
//! - `sink`: per sink and log, the events the sink wants (its streams' matches, its rules'
//!   alerts) are POSTed in seq order, at least once, from a durable cursor;
//! - `body`: the `json` (HMAC-signed) and `splunk_hec` formats; `cursor`: the cursor files;
//!   `config`: `[[sinks]]`, `[[alerts]]`, `[[streams]]` and their rules.
//!
//! Everything here reads the log through `auditum_engine::follow`, never the write path: a slow
//! or failing sink never slows an Append.

pub mod alerts;
pub mod body;
pub mod config;
pub mod cursor;
mod groups;
mod low_priority;
pub mod sink;

use auditum_engine::query::Reader;
use auditum_engine::router::Logs;
use config::{AlertRule, SinkConfig, StreamConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What [`start`] needs.
#[derive(Debug, Clone, Default)]
pub struct DeliverySettings {
    /// Cursors live under `<data_dir>/delivery/`.
    pub data_dir: PathBuf,
    pub sinks: Vec<SinkConfig>,
    pub alerts: Vec<AlertRule>,
    pub streams: Vec<StreamConfig>,
    /// Tracked groups per alert rule at most.
    pub max_groups: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sink {sink}: the variable {variable} holding its secret is not set")]
    MissingSecret { sink: String, variable: String },
    #[error("delivery http client: {0}")]
    Client(String),
}

/// Starts the alert rules of every log and every sink's delivery from every log; they stop
/// when `closing` becomes true (or their log stops). `secret` reads a sink's variable.
pub fn start(
    logs: Arc<Logs>,
    reader: &Reader,
    settings: DeliverySettings,
    secret: impl Fn(&str) -> Option<String>,
    closing: watch::Receiver<bool>,
) -> Result<(), Error> {
    if settings.alerts.is_empty() && settings.streams.is_empty() {
        return Ok(());
    }
    let delivery_dir = settings.data_dir.join("delivery");
    if !settings.alerts.is_empty() {
        for log in logs.all() {
            let worker = alerts::AlertWorker {
                evaluator: alerts::Evaluator::new(settings.alerts.clone(), settings.max_groups),
                log: log.clone(),
                context: reader.follow_context(log),
                cursor: cursor::Cursor::new(&delivery_dir.join("alerts"), log.name()),
                closing: closing.clone(),
            };
            tokio::spawn(worker.run());
        }
    }
    // reqwest takes the process's rustls provider: aws-lc, as tonic's (an error means one is set).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|error| Error::Client(error.to_string()))?;
    for sink in &settings.sinks {
        let streams: Vec<StreamConfig> = settings.streams.iter().filter(|stream| stream.sink == sink.name).cloned().collect();
        let rules: Vec<String> =
            settings.alerts.iter().filter(|rule| rule.sinks.contains(&sink.name)).map(|rule| rule.name.clone()).collect();
        if streams.is_empty() && rules.is_empty() {
            tracing::warn!(sink = %sink.name, "no stream or alert rule sends to this sink");
            continue;
        }
        let secret =
            secret(&sink.secret_env).ok_or_else(|| Error::MissingSecret { sink: sink.name.clone(), variable: sink.secret_env.clone() })?;
        let target = Arc::new(sink::SinkTarget { config: sink.clone(), secret, streams, rules });
        for log in logs.all() {
            let worker = sink::SinkWorker {
                target: target.clone(),
                log: log.clone(),
                context: reader.follow_context(log),
                cursor: cursor::Cursor::new(&delivery_dir.join("sinks").join(&sink.name), log.name()),
                client: client.clone(),
                closing: closing.clone(),
            };
            tokio::spawn(worker.run());
        }
    }
    Ok(())
}
