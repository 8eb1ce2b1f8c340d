//! The event a caller logs: a builder over the wire `AuditEvent`, and the preparation every
//! event goes through before `log()` accepts it (id, `occurred_at`, ambient context, the
//! server's own validation rules).

use auditum_proto::convert::{json_to_struct, now_timestamp};
use auditum_proto::pb;
use auditum_proto::validate::{Redactor, Validator};

pub use pb::{ActorType, OutcomeResult};

/// An event's id (a UUIDv7 unless the caller chose one): the same on every retry and replay.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub String);

impl EventId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// One audit event. `Event::new(tenant, action)` then the builder methods; or `Event::from` a
/// wire `AuditEvent`. `occurred_at` defaults to now, the outcome to success.
#[derive(Debug, Clone, PartialEq)]
pub struct Event(pub pb::AuditEvent);

impl From<pb::AuditEvent> for Event {
    fn from(event: pb::AuditEvent) -> Self {
        Event(event)
    }
}

fn object(value: serde_json::Value) -> Option<prost_types::Struct> {
    match value {
        serde_json::Value::Object(fields) => Some(json_to_struct(&fields)),
        // Anything but an object is kept under "value" rather than dropped.
        serde_json::Value::Null => None,
        other => Some(json_to_struct(&serde_json::Map::from_iter([("value".to_string(), other)]))),
    }
}

impl Event {
    pub fn new(tenant_id: impl Into<String>, action: impl Into<String>) -> Event {
        Event(pb::AuditEvent {
            tenant_id: tenant_id.into(),
            action: action.into(),
            outcome: Some(pb::Outcome { result: OutcomeResult::Success as i32, ..Default::default() }),
            ..Default::default()
        })
    }
    pub fn id(mut self, id: impl Into<String>) -> Event {
        self.0.id = id.into();
        self
    }
    pub fn actor(mut self, actor_type: ActorType, id: impl Into<String>) -> Event {
        self.0.actor = Some(pb::Actor { id: id.into(), r#type: actor_type as i32, name: String::new() });
        self
    }
    /// The person this event's personal data is about, whose key encrypts the server's
    /// `encrypt_fields` (and whose erasure shreds them); default: the actor.
    pub fn subject(mut self, subject_id: impl Into<String>) -> Event {
        self.0.subject_id = subject_id.into();
        self
    }

    pub fn actor_name(mut self, name: impl Into<String>) -> Event {
        self.0.actor.get_or_insert_with(Default::default).name = name.into();
        self
    }
    pub fn target(mut self, target_type: impl Into<String>, id: impl Into<String>) -> Event {
        self.0.target = Some(pb::Target { r#type: target_type.into(), id: id.into(), name: String::new() });
        self
    }
    pub fn outcome(mut self, result: OutcomeResult) -> Event {
        self.0.outcome.get_or_insert_with(Default::default).result = result as i32;
        self
    }
    pub fn reason(mut self, reason: impl Into<String>) -> Event {
        self.0.outcome.get_or_insert_with(Default::default).reason = reason.into();
        self
    }
    pub fn error_code(mut self, code: impl Into<String>) -> Event {
        self.0.outcome.get_or_insert_with(Default::default).error_code = code.into();
        self
    }
    /// RFC 3339 parsing is the caller's; this takes the wire timestamp.
    pub fn occurred_at(mut self, at: prost_types::Timestamp) -> Event {
        self.0.occurred_at = Some(at);
        self
    }
    pub fn context(mut self, context: pb::Context) -> Event {
        self.0.context = Some(context);
        self
    }
    pub fn request_id(mut self, request_id: impl Into<String>) -> Event {
        self.0.context.get_or_insert_with(Default::default).request_id = request_id.into();
        self
    }
    pub fn before(mut self, value: serde_json::Value) -> Event {
        self.0.before = object(value);
        self
    }
    pub fn after(mut self, value: serde_json::Value) -> Event {
        self.0.after = object(value);
        self
    }
    pub fn metadata(mut self, value: serde_json::Value) -> Event {
        self.0.metadata = object(value);
        self
    }
}

/// Checks events with exactly the server's rules (`Validator::prepare`).
#[derive(Debug, Clone)]
pub(crate) struct LocalRules {
    validator: Validator,
}

impl LocalRules {
    pub fn new() -> LocalRules {
        // Redaction is the server's business; the keys only matter for the conversion.
        LocalRules { validator: Validator { redactor: Redactor::new(Vec::new()) } }
    }

    /// The server's verdict on one event: `field: rule` (without the `events[0].` prefix).
    pub fn check(&self, event: &pb::AuditEvent) -> Result<(), String> {
        let now = auditum_format::time::now_micros();
        match self.validator.check(0, event, now) {
            Ok(()) => Ok(()),
            Err(error) => {
                let field =
                    error.field.strip_prefix("events[0].").or_else(|| error.field.strip_prefix("events[0]")).unwrap_or(&error.field);
                let field = if field.is_empty() { "event" } else { field };
                Err(format!("{field}: {}", error.rule))
            }
        }
    }
}

/// What every event gets before it is accepted: an id, `occurred_at`, the ambient context.
pub(crate) fn stamp(mut event: pb::AuditEvent) -> pb::AuditEvent {
    if event.id.is_empty() {
        event.id = uuid::Uuid::now_v7().to_string();
    }
    if event.occurred_at.is_none() {
        event.occurred_at = Some(now_timestamp());
    }
    crate::request_context::apply_current(&mut event);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_gives_an_id_and_a_time_and_the_rules_are_the_servers() {
        let rules = LocalRules::new();
        let event = stamp(Event::new("acme", "user.login").actor(ActorType::User, "u1").0);
        assert!(uuid::Uuid::parse_str(&event.id).is_ok() && event.occurred_at.is_some());
        assert_eq!(rules.check(&event), Ok(()));
        let upper = stamp(Event::new("acme", "User.Login").actor(ActorType::User, "u1").0);
        assert!(rules.check(&upper).unwrap_err().starts_with("action: must match"));
        let no_actor = stamp(Event::new("acme", "user.login").0);
        assert_eq!(rules.check(&no_actor), Err("actor: required".to_string()));
        let huge = stamp(Event::new("acme", "a").actor(ActorType::User, "u").metadata(serde_json::json!({"x": "y".repeat(70_000)})).0);
        assert!(rules.check(&huge).unwrap_err().starts_with("event: encoded size"));
    }
}
