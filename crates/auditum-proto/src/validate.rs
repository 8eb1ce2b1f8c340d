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

    /// [`Validator::prepare`]'s verdict without the conversion: the same checks in the same order
    /// (one code path), on a borrowed event. The client SDKs check each event with it before
    /// spooling, where a clone and a conversion per event cost most of `log()`.
    pub fn check(&self, index: usize, event: &pb::AuditEvent, now_micros: i64) -> Result<(), ValidationError> {
        self.check_event(index, event, now_micros, false, false).map(|_| ())
    }

    fn prepare_event(&self, index: usize, event: pb::AuditEvent, now_micros: i64, forwarded: bool) -> Result<EventRecord, ValidationError> {
        let checked = self.check_event(index, &event, now_micros, forwarded, true)?;
        let Some(actor) = event.actor else {
            return Err(violation(index, "actor", "required"));
        };
        let Some(outcome) = event.outcome else {
            return Err(violation(index, "outcome", "required"));
        };
        let target = event.target.unwrap_or_default();
        let context = event.context.unwrap_or_default();
        let id = if event.id.is_empty() { uuid::Uuid::now_v7().to_string() } else { event.id };
        Ok(EventRecord {
            seq: Seq(0),
            id,
            tenant_id: event.tenant_id,
            occurred_at: checked.occurred_at,
            received_at: 0,
            action: event.action,
            actor_id: actor.id,
            actor_type: checked.actor_type.map(str::to_string),
            actor_name: non_empty(actor.name),
            target_type: non_empty(target.r#type),
            target_id: non_empty(target.id),
            target_name: non_empty(target.name),
            outcome: checked.outcome.to_string(),
            error_code: non_empty(outcome.error_code),
            reason: non_empty(outcome.reason),
            request_id: non_empty(context.request_id),
            correlation_id: non_empty(context.correlation_id),
            session_id: non_empty(context.session_id),
            source_ip: checked.source_ip,
            user_agent: non_empty(context.user_agent),
            service: non_empty(context.service),
            before: checked.before,
            after: checked.after,
            metadata: checked.metadata,
        })
    }

    /// Every rule of one event; with `convert`, also the values that need work to check (the
    /// canonical source address and JSON texts), so `prepare` does not compute them twice.
    fn check_event(
        &self,
        index: usize,
        event: &pb::AuditEvent,
        now_micros: i64,
        forwarded: bool,
        convert: bool,
    ) -> Result<Checked, ValidationError> {
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
        let Some(actor) = &event.actor else {
            return Err(violation(index, "actor", "required"));
        };
        required(index, "actor.id", &actor.id, MAX_ACTOR_ID_BYTES)?;
        let actor_type =
            actor_type_name(actor.r#type).map_err(|value| violation(index, "actor.type", format!("unknown enum value {value}")))?;
        let Some(outcome) = &event.outcome else {
            return Err(violation(index, "outcome", "required"));
        };
        let outcome_result = outcome_name(outcome.result).map_err(|rule| violation(index, "outcome.result", rule))?;
        let (target_name, context) = (event.target.as_ref().map_or("", |target| &target.name), event.context.as_ref());
        let source_ip_text = context.map_or("", |context| &context.source_ip);
        let source_ip = if source_ip_text.is_empty() {
            None
        } else {
            // Stored canonically so "2001:DB8::1" and "2001:db8::1" are one address to queries.
            let address: IpAddr =
                source_ip_text.parse().map_err(|_| violation(index, "context.source_ip", "must be a valid IPv4 or IPv6 address"))?;
            convert.then(|| address.to_string())
        };
        let redactor = &self.redactor;
        let json = |value: Option<&prost_types::Struct>, field: &str| {
            if convert {
                struct_to_canonical_json(value, redactor, index, field)
            } else {
                crate::convert::check_struct(value, |key| redactor.is_secret(key))
                    .map(|()| None)
                    .map_err(|rule| violation(index, field, rule))
            }
        };
        let before = json(event.before.as_ref(), "before")?;
        let after = json(event.after.as_ref(), "after")?;
        let metadata = json(event.metadata.as_ref(), "metadata")?;
        check_length(index, "subject_id", &event.subject_id, MAX_SUBJECT_ID_BYTES)?;
        for (field, value) in [
            ("actor.name", actor.name.as_str()),
            ("target.name", target_name),
            ("outcome.reason", outcome.reason.as_str()),
            ("context.user_agent", context.map_or("", |context| context.user_agent.as_str())),
        ] {
            if value.starts_with(ENCRYPTED_VALUE_PREFIX) {
                return Err(violation(
                    index,
                    field,
                    format!("values beginning with {ENCRYPTED_VALUE_PREFIX:?} are reserved for auditum's ciphertexts"),
                ));
            }
        }
        Ok(Checked { occurred_at, actor_type, outcome: outcome_result, source_ip, before, after, metadata })
    }
}

/// What checking an event computed that its record keeps.
struct Checked {
    occurred_at: i64,
    actor_type: Option<&'static str>,
    outcome: &'static str,
    source_ip: Option<String>,
    before: Option<String>,
    after: Option<String>,
    metadata: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;

    #[test]
    fn check_gives_prepares_verdict_on_every_rule() {
        use crate::sample::{number_value, realistic_event, string_value, struct_of};
        use rand::SeedableRng;
        let validator = Validator { redactor: Redactor::default() };
        let now = 1_800_000_000_000_000;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let deep = (0..MAX_STRUCT_DEPTH + 1)
            .fold(string_value("x"), |inner, _| prost_types::Value { kind: Some(Kind::StructValue(struct_of(vec![("a", inner)]))) });
        type Break = fn(&mut pb::AuditEvent, &prost_types::Value);
        let breaks: Vec<(&str, Break)> = vec![
            ("valid", |_, _| {}),
            ("id too long", |event, _| event.id = "i".repeat(MAX_ID_BYTES + 1)),
            ("no tenant", |event, _| event.tenant_id.clear()),
            ("bad tenant", |event, _| event.tenant_id = "a b".into()),
            ("no time", |event, _| event.occurred_at = None),
            ("bad nanos", |event, _| event.occurred_at = Some(prost_types::Timestamp { seconds: 1, nanos: -1 })),
            ("future", |event, _| event.occurred_at = Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 })),
            ("upper-case action", |event, _| event.action = "User.Login".into()),
            ("reserved action", |event, _| event.action = "auditum.read".into()),
            ("no actor", |event, _| event.actor = None),
            ("no actor id", |event, _| event.actor.as_mut().unwrap().id.clear()),
            ("bad actor type", |event, _| event.actor.as_mut().unwrap().r#type = 99),
            ("no outcome", |event, _| event.outcome = None),
            ("bad outcome", |event, _| event.outcome.as_mut().unwrap().result = 99),
            ("bad ip", |event, _| event.context.as_mut().unwrap().source_ip = "10.0.0".into()),
            ("NaN in before", |event, _| event.before = Some(struct_of(vec![("n", number_value(f64::NAN))]))),
            ("NaN under a secret key", |event, _| event.metadata = Some(struct_of(vec![("password", number_value(f64::NAN))]))),
            ("too deep", |event, deep| event.after = Some(struct_of(vec![("a", deep.clone())]))),
            ("subject too long", |event, _| event.subject_id = "s".repeat(MAX_SUBJECT_ID_BYTES + 1)),
            ("ciphertext-like name", |event, _| event.target.as_mut().unwrap().name = format!("{ENCRYPTED_VALUE_PREFIX}x")),
            ("too big", |event, _| event.metadata = Some(struct_of(vec![("x", string_value(&"y".repeat(MAX_EVENT_BYTES)))]))),
            ("two faults", |event, _| {
                event.action = "Bad".into();
                event.actor = None;
            }),
        ];
        for (name, break_it) in breaks {
            let mut event = realistic_event(&mut rng, now - 1_000_000);
            break_it(&mut event, &deep);
            let checked = validator.check(3, &event, now);
            let prepared = validator.prepare(3, event, now).map(|_| ());
            assert_eq!(checked, prepared, "{name}");
            assert_eq!(checked.is_ok(), name == "valid" || name == "NaN under a secret key", "{name}: {checked:?}");
        }
    }

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
