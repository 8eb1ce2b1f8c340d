//! Events from their JSON form, as `auditum append --file` and the outbox relay read them.
//!
//! JSON event shape (snake_case, as in the proto):
//! `{"id":"…","tenant_id":"acme","occurred_at":"2026-11-23T12:00:00Z","action":"user.login",
//!   "actor":{"id":"u1","type":"user","name":"Ada"},"target":{"type":"user","id":"u2"},
//!   "outcome":{"result":"success"},"context":{"source_ip":"10.0.0.1"},"metadata":{"k":1}}`.
//! `occurred_at` may also be integer microseconds; it defaults to now. Enums take the stored
//! lowercase names or the proto names.

use auditum_proto::convert::{json_to_struct, parse_actor_type, parse_outcome, parse_timestamp, timestamp_from_micros};
use auditum_proto::pb;
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
        &["id", "tenant_id", "occurred_at", "action", "actor", "target", "outcome", "context", "before", "after", "metadata", "subject_id"],
        "",
    )?;
    let occurred_at = match event.get("occurred_at") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => parse_timestamp(text).map_err(|error| format!("occurred_at: {error}"))?,
        Some(Value::Number(number)) => {
            let micros = number.as_i64().ok_or("occurred_at: expected integer microseconds")?;
            timestamp_from_micros(micros)
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
        subject_id: text(event, "subject_id", "")?,
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
