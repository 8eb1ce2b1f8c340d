//! The dead-letter file (sdk/SPOOL.md, "Dead letters"): `spool_dir/dead_letter.jsonl`, one line
//! per event the server rejected, with the server's message and the event in the protobuf JSON
//! mapping (lowerCamelCase, enums by name, RFC 3339 timestamps, default values omitted).

use auditum_proto::pb;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a rejected call's bad event is: the first `events[<digits>]` of the server's message.
pub fn rejected_index(message: &str) -> Option<usize> {
    let (_, rest) = message.split_once("events[")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if rest[digits.len()..].starts_with(']') { digits.parse().ok() } else { None }
}

fn put(object: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        object.insert(key.to_string(), Value::String(value.to_string()));
    }
}

fn struct_json(value: &Option<prost_types::Struct>) -> Option<Value> {
    let text = auditum_proto::convert::struct_to_canonical_json(value.as_ref(), |_| false).ok()??;
    serde_json::from_str(&text).ok()
}

fn timestamp_json(timestamp: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(timestamp.seconds, timestamp.nanos.max(0) as u32)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{}s{}ns", timestamp.seconds, timestamp.nanos))
}

/// The protobuf JSON mapping of an event.
pub fn event_json(event: &pb::AuditEvent) -> Value {
    let mut object = Map::new();
    put(&mut object, "id", &event.id);
    put(&mut object, "tenantId", &event.tenant_id);
    if let Some(at) = &event.occurred_at {
        object.insert("occurredAt".into(), Value::String(timestamp_json(at)));
    }
    put(&mut object, "action", &event.action);
    if let Some(actor) = &event.actor {
        let mut inner = Map::new();
        put(&mut inner, "id", &actor.id);
        if actor.r#type != 0 {
            let name = pb::ActorType::try_from(actor.r#type).map(|kind| kind.as_str_name().to_string());
            inner.insert("type".into(), name.map(Value::String).unwrap_or_else(|_| json!(actor.r#type)));
        }
        put(&mut inner, "name", &actor.name);
        object.insert("actor".into(), Value::Object(inner));
    }
    if let Some(target) = &event.target {
        let mut inner = Map::new();
        put(&mut inner, "type", &target.r#type);
        put(&mut inner, "id", &target.id);
        put(&mut inner, "name", &target.name);
        object.insert("target".into(), Value::Object(inner));
    }
    if let Some(outcome) = &event.outcome {
        let mut inner = Map::new();
        if outcome.result != 0 {
            let name = pb::OutcomeResult::try_from(outcome.result).map(|result| result.as_str_name().to_string());
            inner.insert("result".into(), name.map(Value::String).unwrap_or_else(|_| json!(outcome.result)));
        }
        put(&mut inner, "errorCode", &outcome.error_code);
        put(&mut inner, "reason", &outcome.reason);
        object.insert("outcome".into(), Value::Object(inner));
    }
    if let Some(context) = &event.context {
        let mut inner = Map::new();
        put(&mut inner, "requestId", &context.request_id);
        put(&mut inner, "correlationId", &context.correlation_id);
        put(&mut inner, "sessionId", &context.session_id);
        put(&mut inner, "sourceIp", &context.source_ip);
        put(&mut inner, "userAgent", &context.user_agent);
        put(&mut inner, "service", &context.service);
        object.insert("context".into(), Value::Object(inner));
    }
    for (key, value) in [("before", &event.before), ("after", &event.after), ("metadata", &event.metadata)] {
        if let Some(value) = struct_json(value) {
            object.insert(key.into(), value);
        }
    }
    Value::Object(object)
}

/// Appends to `spool_dir/dead_letter.jsonl` (or nowhere, without a spool).
#[derive(Debug, Clone)]
pub struct DeadLetters {
    path: Option<PathBuf>,
}

impl DeadLetters {
    pub fn new(spool_dir: Option<&Path>) -> DeadLetters {
        DeadLetters { path: spool_dir.map(|dir| dir.join("dead_letter.jsonl")) }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes and fsyncs the lines before the caller acknowledges the events in the spool.
    pub fn write(&self, code: &str, message: &str, events: &[pb::AuditEvent]) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut text = String::new();
        for event in events {
            let line = json!({"at": at, "code": code, "message": message, "event": event_json(event)});
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bad_index_is_read_from_the_servers_message() {
        assert_eq!(rejected_index("events[12].action: must match ^[a-z0-9_-]+"), Some(12));
        assert_eq!(rejected_index("events[3]: encoded size 70000 bytes exceeds the limit of 65536 bytes"), Some(3));
        assert_eq!(rejected_index("events: at least one event is required"), None);
        assert_eq!(rejected_index("events[x]"), None);
    }

    #[test]
    fn events_take_the_protobuf_json_mapping() {
        let event = pb::AuditEvent {
            id: "e1".into(),
            tenant_id: "acme".into(),
            occurred_at: Some(prost_types::Timestamp { seconds: 1_767_323_045, nanos: 123_456_000 }),
            action: "User.Login".into(),
            actor: Some(pb::Actor { id: "u1".into(), r#type: pb::ActorType::User as i32, name: String::new() }),
            outcome: Some(pb::Outcome { result: pb::OutcomeResult::Denied as i32, ..Default::default() }),
            context: Some(pb::Context { source_ip: "10.0.0.1".into(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(
            event_json(&event),
            json!({"id": "e1", "tenantId": "acme", "occurredAt": "2026-01-02T03:04:05.123456Z", "action": "User.Login",
                   "actor": {"id": "u1", "type": "ACTOR_TYPE_USER"}, "outcome": {"result": "OUTCOME_RESULT_DENIED"},
                   "context": {"sourceIp": "10.0.0.1"}})
        );
    }
}
