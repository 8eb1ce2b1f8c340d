//! Flags shared by the client commands: where the server is, and the `EventFilter` fields.

use auditum_client::{AuthChannel, ConnectOptions};
use auditum_proto::convert::{parse_actor_type, parse_outcome, parse_timestamp};
use auditum_proto::pb;
use clap::Args;
use std::path::PathBuf;

/// Where the server is and how to authenticate to it.
#[derive(Args, Clone)]
pub struct ConnectArgs {
    /// Server URL (https:// for TLS).
    #[arg(long, env = "AUDITUM_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
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
    pub async fn channel(&self) -> Result<AuthChannel, String> {
        let options = ConnectOptions {
            api_key: self.api_key.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_client_cert: self.tls_client_cert.clone(),
            tls_client_key: self.tls_client_key.clone(),
        };
        auditum_client::channel(&self.server, &options).await.map_err(|error| error.to_string())
    }
}

/// The EventFilter fields, as flags.
#[derive(Args, Clone)]
pub struct FilterArgs {
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
    pub fn to_filter(&self) -> Result<pb::EventFilter, String> {
        let time = |flag: &str, text: &Option<String>| -> Result<Option<prost_types::Timestamp>, String> {
            text.as_deref().map(parse_timestamp).transpose().map_err(|error| format!("--{flag}: {error} (e.g. 2026-07-01T00:00:00Z)"))
        };
        let actor_type = self.actor_type.as_deref().map(parse_actor_type).transpose().map_err(|error| format!("--actor-type: {error}"))?;
        let outcome = self.outcome.as_deref().map(parse_outcome).transpose().map_err(|error| format!("--outcome: {error}"))?;
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

/// S3 endpoint and region, for commands that read a store directly.
#[derive(Args, Clone)]
pub struct S3Args {
    /// S3 endpoint override, for S3-compatible servers (path-style addressing is then used).
    #[arg(long, env = "AUDITUM_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: the AWS chain's, else us-east-1).
    #[arg(long, env = "AUDITUM_S3_REGION")]
    pub s3_region: Option<String>,
}

/// A pinned verifier key (`name+id+key`), given as the key or as a file holding it.
pub fn read_trusted_key(text: &str) -> Result<auditum_format::checkpoint::Verifier, String> {
    auditum_format::checkpoint::read_verifier_key(text).map_err(|error| format!("--trusted-key: {error}"))
}
