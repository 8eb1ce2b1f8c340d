//! Client-side helpers for the CLI: connecting, and events from JSON lines.
//!
//! JSON event shape (snake_case, as in the proto):
//! `{"id":"…","tenant_id":"acme","occurred_at":"2026-11-23T12:00:00Z","action":"user.login",
//!   "actor":{"id":"u1","type":"user","name":"Ada"},"target":{"type":"user","id":"u2"},
//!   "outcome":{"result":"success"},"context":{"source_ip":"10.0.0.1"},"metadata":{"k":1}}`.
//! `occurred_at` may also be integer microseconds; it defaults to now. Enums take the stored
//! lowercase names or the proto names.

use crate::pb;
use prost_types::value::Kind;
use serde_json::Value;

fn text(object: &serde_json::Map<String, Value>, key: &str, path: &str) -> Result<String, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(format!("{path}{key}: expected a string")),
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a serde_json::Map<String, Value>, String> {
    value.as_object().ok_or_else(|| format!("{path}: expected a json object"))
}

fn check_keys(object: &serde_json::Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), String> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(format!("{path}{key}: unknown field (expected one of {})", allowed.join(", "))),
        None => Ok(()),
    }
}

pub fn json_to_protobuf_value(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(*flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(0.0)),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue { values: items.iter().map(json_to_protobuf_value).collect() }),
        Value::Object(fields) => Kind::StructValue(json_to_struct(fields)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn json_to_struct(fields: &serde_json::Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct { fields: fields.iter().map(|(key, value)| (key.clone(), json_to_protobuf_value(value))).collect() }
}

pub fn parse_actor_type(name: &str) -> Result<i32, String> {
    Ok(match name.to_ascii_lowercase().trim_start_matches("actor_type_") {
        "" | "unspecified" => pb::ActorType::Unspecified,
        "user" => pb::ActorType::User,
        "service" => pb::ActorType::Service,
        "api_key" => pb::ActorType::ApiKey,
        "system" => pb::ActorType::System,
        "anonymous" => pb::ActorType::Anonymous,
        other => return Err(format!("unknown actor type {other:?} (user, service, api_key, system, anonymous)")),
    } as i32)
}

pub fn parse_outcome(name: &str) -> Result<i32, String> {
    Ok(match name.to_ascii_lowercase().trim_start_matches("outcome_result_") {
        "success" => pb::OutcomeResult::Success,
        "failure" => pb::OutcomeResult::Failure,
        "denied" => pb::OutcomeResult::Denied,
        other => return Err(format!("unknown outcome {other:?} (success, failure, denied)")),
    } as i32)
}

pub fn parse_timestamp(text: &str) -> Result<prost_types::Timestamp, String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text).map_err(|error| format!("{text:?} is not an RFC 3339 time: {error}"))?;
    Ok(prost_types::Timestamp { seconds: parsed.timestamp(), nanos: parsed.timestamp_subsec_nanos() as i32 })
}

fn struct_field(event: &serde_json::Map<String, Value>, key: &str) -> Result<Option<prost_types::Struct>, String> {
    match event.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(fields)) => Ok(Some(json_to_struct(fields))),
        Some(_) => Err(format!("{key}: expected a json object")),
    }
}

/// One event from its JSON form.
pub fn event_from_json(value: &Value, now: prost_types::Timestamp) -> Result<pb::AuditEvent, String> {
    let event = object(value, "event")?;
    check_keys(
        event,
        &["id", "tenant_id", "occurred_at", "action", "actor", "target", "outcome", "context", "before", "after", "metadata"],
        "",
    )?;
    let occurred_at = match event.get("occurred_at") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => parse_timestamp(text).map_err(|error| format!("occurred_at: {error}"))?,
        Some(Value::Number(number)) => {
            let micros = number.as_i64().ok_or("occurred_at: expected integer microseconds")?;
            crate::api::timestamp_from_micros(micros)
        }
        Some(_) => return Err("occurred_at: expected an RFC 3339 string or integer microseconds".into()),
    };
    let actor = match event.get("actor") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let actor = object(value, "actor")?;
            check_keys(actor, &["id", "type", "name"], "actor.")?;
            Some(pb::Actor {
                id: text(actor, "id", "actor.")?,
                r#type: parse_actor_type(&text(actor, "type", "actor.")?)?,
                name: text(actor, "name", "actor.")?,
            })
        }
    };
    let target = match event.get("target") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let target = object(value, "target")?;
            check_keys(target, &["type", "id", "name"], "target.")?;
            Some(pb::Target {
                r#type: text(target, "type", "target.")?,
                id: text(target, "id", "target.")?,
                name: text(target, "name", "target.")?,
            })
        }
    };
    let outcome = match event.get("outcome") {
        None | Some(Value::Null) => None,
        Some(Value::String(result)) => Some(pb::Outcome { result: parse_outcome(result)?, ..Default::default() }),
        Some(value) => {
            let outcome = object(value, "outcome")?;
            check_keys(outcome, &["result", "error_code", "reason"], "outcome.")?;
            Some(pb::Outcome {
                result: parse_outcome(&text(outcome, "result", "outcome.")?)?,
                error_code: text(outcome, "error_code", "outcome.")?,
                reason: text(outcome, "reason", "outcome.")?,
            })
        }
    };
    let context = match event.get("context") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let context = object(value, "context")?;
            check_keys(context, &["request_id", "correlation_id", "session_id", "source_ip", "user_agent", "service"], "context.")?;
            Some(pb::Context {
                request_id: text(context, "request_id", "context.")?,
                correlation_id: text(context, "correlation_id", "context.")?,
                session_id: text(context, "session_id", "context.")?,
                source_ip: text(context, "source_ip", "context.")?,
                user_agent: text(context, "user_agent", "context.")?,
                service: text(context, "service", "context.")?,
            })
        }
    };
    Ok(pb::AuditEvent {
        id: text(event, "id", "")?,
        tenant_id: text(event, "tenant_id", "")?,
        occurred_at: Some(occurred_at),
        action: text(event, "action", "")?,
        actor,
        target,
        outcome,
        context,
        before: struct_field(event, "before")?,
        after: struct_field(event, "after")?,
        metadata: struct_field(event, "metadata")?,
    })
}

/// How the CLI reaches a server: its API key and TLS trust.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Sent as `authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// PEM CA that signed the server's certificate (for `https://` URLs).
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for servers that require one.
    pub tls_client_cert: Option<std::path::PathBuf>,
    pub tls_client_key: Option<std::path::PathBuf>,
}

/// Adds the bearer API key to every call.
#[derive(Debug, Clone, Default)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    pub fn new(api_key: Option<&str>) -> Result<BearerToken, String> {
        api_key
            .map(|key| format!("Bearer {key}").parse().map_err(|_| "api key: must be printable ASCII".to_string()))
            .transpose()
            .map(BearerToken)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type AuthChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>;

/// A channel to `server` (`http://` or `https://`) that sends the API key with every call.
pub async fn channel(server: &str, options: &ConnectOptions) -> Result<AuthChannel, String> {
    let read = |what: &str, path: &std::path::Path| std::fs::read(path).map_err(|error| format!("{what} {}: {error}", path.display()));
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(server.to_string()).map_err(|error| format!("{server}: {error}"))?.tcp_nodelay(true);
    if server.starts_with("https://") || options.tls_ca.is_some() {
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &options.tls_ca {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read("--tls-ca", ca)?));
        }
        match (&options.tls_client_cert, &options.tls_client_key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(tonic::transport::Identity::from_pem(read("--tls-client-cert", cert)?, read("--tls-client-key", key)?))
            }
            (None, None) => {}
            _ => return Err("--tls-client-cert and --tls-client-key come together".into()),
        }
        endpoint = endpoint.tls_config(tls).map_err(|error| format!("tls: {error}"))?;
    }
    let channel = endpoint.connect().await.map_err(|error| format!("cannot connect to {server}: {error}"))?;
    Ok(tonic::service::interceptor::InterceptedService::new(channel, BearerToken::new(options.api_key.as_deref())?))
}

/// Connects to a server URL such as `http://127.0.0.1:50051`.
pub async fn connect(
    server: &str,
) -> Result<pb::ingest_service_client::IngestServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    let channel = tonic::transport::Endpoint::from_shared(server.to_string())?.tcp_nodelay(true).connect().await?;
    Ok(pb::ingest_service_client::IngestServiceClient::new(channel)
        .max_encoding_message_size(2 * crate::validate::MAX_APPEND_BYTES)
        .max_decoding_message_size(16 * 1024 * 1024))
}
