//! Validation, redaction and conversion of wire events to stored records (docs/FORMAT.md, Events).
//!
//! Every rule failure names the event index, the field path and the rule, so a client knows
//! exactly what to fix.

use crate::convert::{actor_type_name, outcome_name, timestamp_micros};
use crate::pb;
use auditum_format::event::{EventRecord, Seq};
use prost::Message;
use std::fmt;
use std::net::IpAddr;

pub use auditum_format::rules::*;

/// The meta-audit actions of reads, which a read-only node forwards to the log's writer.
pub const FORWARDED_ACTIONS: [&str; 5] = ["auditum.query", "auditum.export", "auditum.proof", "auditum.subscribe", "auditum.summarize"];

/// A rule violation: `events[3].actor.id: required`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: String,
    pub rule: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for ValidationError {}

fn violation(index: usize, field: &str, rule: impl Into<String>) -> ValidationError {
    ValidationError { field: format!("events[{index}].{field}"), rule: rule.into() }
}

/// Case-insensitive key redaction: a key is secret when, lowercased and with '-' read as '_',
/// it contains an entry of the list ("db_password", "X-Auth-Token", "refreshToken" all match).
/// Over-redaction is the safe error: a secret in a WORM archive cannot be deleted for years.
#[derive(Debug, Clone)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(DEFAULT_REDACT_KEYS.iter().map(|key| key.to_string()))
    }
}

fn normalize_key(key: &str) -> String {
    key.to_lowercase().replace('-', "_")
}

/// ASCII case folding with '-' read as '_'; other bytes compare as they are.
fn fold(byte: u8) -> u8 {
    if byte == b'-' { b'_' } else { byte.to_ascii_lowercase() }
}

impl Redactor {
    pub fn new(keys: impl IntoIterator<Item = String>) -> Redactor {
        Redactor { needles: keys.into_iter().map(|key| normalize_key(&key)).filter(|key| !key.is_empty()).collect() }
    }

    /// Runs once per Struct key on the hot path, so it never allocates.
    pub fn is_secret(&self, key: &str) -> bool {
        let key = key.as_bytes();
        self.needles.iter().any(|needle| {
            let needle = needle.as_bytes();
            key.len() >= needle.len()
                && key.windows(needle.len()).any(|window| window.iter().zip(needle).all(|(&byte, &want)| fold(byte) == want))
        })
    }
}

/// Everything the validator needs besides the event itself.
#[derive(Debug, Clone)]
pub struct Validator {
    pub redactor: Redactor,
}

fn check_length(index: usize, field: &str, value: &str, limit: usize) -> Result<(), ValidationError> {
    if value.len() > limit {
        return Err(violation(index, field, format!("{} bytes exceeds the limit of {limit} bytes", value.len())));
    }
    Ok(())
}

fn required(index: usize, field: &str, value: &str, limit: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(violation(index, field, "required"));
    }
    check_length(index, field, value, limit)
}

fn non_empty(value: String) -> Option<String> {
    if value.is_empty() { None } else { Some(value) }
}

/// Canonical JSON text of a Struct (keys sorted, no whitespace), redacted; None when absent or empty.
pub fn struct_to_canonical_json(
    value: Option<&prost_types::Struct>,
    redactor: &Redactor,
    index: usize,
    field: &str,
) -> Result<Option<String>, ValidationError> {
    crate::convert::struct_to_canonical_json(value, |key| redactor.is_secret(key)).map_err(|rule| violation(index, field, rule))
}

/// Request-level limits (docs/API.md, AuditEvent).
pub fn check_append_request(request: &pb::AppendRequest) -> Result<(), ValidationError> {
    if request.events.is_empty() {
        return Err(ValidationError { field: "events".into(), rule: "at least one event is required".into() });
    }
    if request.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(ValidationError {
            field: "events".into(),
            rule: format!("{} events exceeds the limit of {MAX_EVENTS_PER_APPEND} per call", request.events.len()),
        });
    }
    let encoded = request.encoded_len();
    if encoded > MAX_APPEND_BYTES {
        return Err(ValidationError {
            field: "request".into(),
            rule: format!("encoded size {encoded} bytes exceeds the limit of {MAX_APPEND_BYTES} bytes"),
        });
    }
    Ok(())
}

impl Validator {
    /// Validates event `index` and converts it, moving its strings; `seq` and `received_at`
    /// are filled in by the WAL. An empty id gets a UUIDv7.
    pub fn prepare(&self, index: usize, event: pb::AuditEvent, now_micros: i64) -> Result<EventRecord, ValidationError> {
        self.prepare_event(index, event, now_micros, false)
    }

    /// [`Validator::prepare`] for the meta-audit record of a read served by a read-only node,
    /// forwarded to the log's writer (DESIGN §13): the one kind of `auditum.*` record a client
    /// may send, and only under the `meta_audit_forward` scope.
    pub fn prepare_forwarded(&self, index: usize, event: pb::AuditEvent, now_micros: i64) -> Result<EventRecord, ValidationError> {
        if !FORWARDED_ACTIONS.contains(&event.action.as_str()) {
            return Err(violation(
                index,
                "action",
                format!(
                    "{} is not the record of a read: a read-only node forwards only {}",
                    echo(&event.action),
                    FORWARDED_ACTIONS.join(", ")
                ),
            ));
        }
        if event.context.as_ref().map(|context| context.service.as_str()) != Some("auditum") {
            return Err(violation(index, "context.service", "a forwarded meta-audit record is the service \"auditum\"'s"));
        }
        self.prepare_event(index, event, now_micros, true)
    }

    fn prepare_event(&self, index: usize, event: pb::AuditEvent, now_micros: i64, forwarded: bool) -> Result<EventRecord, ValidationError> {
        let encoded = event.encoded_len();
        if encoded > MAX_EVENT_BYTES {
            return Err(ValidationError {
                field: format!("events[{index}]"),
                rule: format!("encoded size {encoded} bytes exceeds the limit of {MAX_EVENT_BYTES} bytes"),
            });
        }
        check_length(index, "id", &event.id, MAX_ID_BYTES)?;
        required(index, "tenant_id", &event.tenant_id, MAX_TENANT_BYTES)?;
        if !is_valid_tenant_id(&event.tenant_id) {
            return Err(violation(index, "tenant_id", "must match [A-Za-z0-9._:-]+"));
        }
        let occurred_at = match &event.occurred_at {
            None => return Err(violation(index, "occurred_at", "required")),
            Some(timestamp) => timestamp_micros(timestamp).map_err(|rule| violation(index, "occurred_at", rule))?,
        };
        if occurred_at > now_micros.saturating_add(MAX_FUTURE_MICROS) {
            return Err(violation(index, "occurred_at", "more than 5 minutes in the future"));
        }
        required(index, "action", &event.action, MAX_ACTION_BYTES)?;
        if !is_valid_action(&event.action) {
            return Err(violation(index, "action", "must match ^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$"));
        }
        // The server's own records (meta-audit, alerts, holds, erasures) must not be forgeable.
        if !forwarded && (event.action == RESERVED_ACTION_NAMESPACE || event.action.starts_with(RESERVED_ACTION_PREFIX)) {
            return Err(violation(index, "action", format!("{RESERVED_ACTION_PREFIX}* actions are reserved for auditum's own records")));
        }
        let Some(actor) = event.actor else {
            return Err(violation(index, "actor", "required"));
        };
        required(index, "actor.id", &actor.id, MAX_ACTOR_ID_BYTES)?;
        let actor_type =
            actor_type_name(actor.r#type).map_err(|value| violation(index, "actor.type", format!("unknown enum value {value}")))?;
        let Some(outcome) = event.outcome else {
            return Err(violation(index, "outcome", "required"));
        };
        let outcome_result = outcome_name(outcome.result).map_err(|rule| violation(index, "outcome.result", rule))?;
        let target = event.target.unwrap_or_default();
        let context = event.context.unwrap_or_default();
        let source_ip = if context.source_ip.is_empty() {
            None
        } else {
            // Stored canonically so "2001:DB8::1" and "2001:db8::1" are one address to queries.
            let address: IpAddr =
                context.source_ip.parse().map_err(|_| violation(index, "context.source_ip", "must be a valid IPv4 or IPv6 address"))?;
            Some(address.to_string())
        };
        let redactor = &self.redactor;
        let before = struct_to_canonical_json(event.before.as_ref(), redactor, index, "before")?;
        let after = struct_to_canonical_json(event.after.as_ref(), redactor, index, "after")?;
        let metadata = struct_to_canonical_json(event.metadata.as_ref(), redactor, index, "metadata")?;
        check_length(index, "subject_id", &event.subject_id, MAX_SUBJECT_ID_BYTES)?;
        for (field, value) in [
            ("actor.name", &actor.name),
            ("target.name", &target.name),
            ("outcome.reason", &outcome.reason),
            ("context.user_agent", &context.user_agent),
        ] {
            if value.starts_with(ENCRYPTED_VALUE_PREFIX) {
                return Err(violation(
                    index,
                    field,
                    format!("values beginning with {ENCRYPTED_VALUE_PREFIX:?} are reserved for auditum's ciphertexts"),
                ));
            }
        }
        let id = if event.id.is_empty() { uuid::Uuid::now_v7().to_string() } else { event.id };
        Ok(EventRecord {
            seq: Seq(0),
            id,
            tenant_id: event.tenant_id,
            occurred_at,
            received_at: 0,
            action: event.action,
            actor_id: actor.id,
            actor_type: actor_type.map(str::to_string),
            actor_name: non_empty(actor.name),
            target_type: non_empty(target.r#type),
            target_id: non_empty(target.id),
            target_name: non_empty(target.name),
            outcome: outcome_result.to_string(),
            error_code: non_empty(outcome.error_code),
            reason: non_empty(outcome.reason),
            request_id: non_empty(context.request_id),
            correlation_id: non_empty(context.correlation_id),
            session_id: non_empty(context.session_id),
            source_ip,
            user_agent: non_empty(context.user_agent),
            service: non_empty(context.service),
            before,
            after,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;

    #[test]
    fn redaction_matches_secret_looking_keys() {
        let redactor = Redactor::default();
        for key in ["password", "PASSWORD", "db_password", "X-Auth-Token", "refreshToken", "api-key", "Authorization", "private_key"] {
            assert!(redactor.is_secret(key), "{key}");
        }
        for key in ["role", "user", "email"] {
            assert!(!redactor.is_secret(key), "{key}");
        }
    }

    #[test]
    fn canonical_json_matches_the_shared_vector_text() {
        use crate::sample::{number_value, string_value, struct_of};
        let redactor = Redactor::default();
        let before = struct_of(vec![("role", string_value("viewer")), ("password", string_value("s3cret"))]);
        let metadata = struct_of(vec![("ticket", number_value(4411.0)), ("reason", string_value("promotion"))]);
        let text = |value| struct_to_canonical_json(Some(value), &redactor, 0, "before").unwrap().unwrap();
        assert_eq!(text(&before), "{\"password\":\"[REDACTED]\",\"role\":\"viewer\"}");
        assert_eq!(text(&metadata), "{\"reason\":\"promotion\",\"ticket\":4411}");
        let nested = struct_of(vec![
            (
                "z",
                prost_types::Value {
                    kind: Some(Kind::ListValue(prost_types::ListValue { values: vec![number_value(1.5), string_value("a\"b\n")] })),
                },
            ),
            (
                "a",
                prost_types::Value {
                    kind: Some(Kind::StructValue(struct_of(vec![
                        ("Cookie", string_value("x")),
                        ("ok", prost_types::Value { kind: None }),
                    ]))),
                },
            ),
        ]);
        assert_eq!(text(&nested), "{\"a\":{\"Cookie\":\"[REDACTED]\",\"ok\":null},\"z\":[1.5,\"a\\\"b\\n\"]}");
    }
}
