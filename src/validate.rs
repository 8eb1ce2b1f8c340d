//! Validation, redaction and conversion of wire events to stored records (DESIGN §2.1–§2.2).
//!
//! Every rule failure names the event index, the field path and the rule, so a client knows
//! exactly what to fix.

use crate::event::{EventRecord, Seq};
use crate::pb;
use prost::Message;
use prost_types::value::Kind;
use std::fmt;
use std::net::IpAddr;

pub const MAX_EVENTS_PER_APPEND: usize = 1000;
pub const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
pub const MAX_ID_BYTES: usize = 128;
pub const MAX_TENANT_BYTES: usize = 128;
pub const MAX_ACTION_BYTES: usize = 128;
pub const MAX_ACTOR_ID_BYTES: usize = 256;
pub const MAX_FUTURE_MICROS: i64 = 5 * 60 * 1_000_000;
/// Nesting limit of before/after/metadata: deep enough for real diffs, shallow enough that
/// recursion over hostile input stays cheap.
pub const MAX_STRUCT_DEPTH: usize = 32;
pub const REDACTED: &str = "[REDACTED]";
pub const DEFAULT_REDACT_KEYS: [&str; 7] = ["password", "secret", "token", "api_key", "authorization", "cookie", "private_key"];

/// Timestamp range of google.protobuf.Timestamp: 0001-01-01 to 9999-12-31.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

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

pub fn is_valid_tenant_id(tenant_id: &str) -> bool {
    !tenant_id.is_empty() && tenant_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

pub fn is_valid_action(action: &str) -> bool {
    action.split('.').all(|segment| {
        !segment.is_empty()
            && segment.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-')
    })
}

/// Microseconds since the epoch, or the rule the timestamp breaks.
pub fn timestamp_micros(timestamp: &prost_types::Timestamp) -> Result<i64, String> {
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(format!("nanos {} must be in [0, 999999999]", timestamp.nanos));
    }
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&timestamp.seconds) {
        return Err(format!("seconds {} is outside 0001-01-01..9999-12-31", timestamp.seconds));
    }
    Ok(timestamp.seconds * 1_000_000 + i64::from(timestamp.nanos / 1000))
}

pub fn actor_type_name(value: i32) -> Result<Option<&'static str>, i32> {
    match pb::ActorType::try_from(value) {
        Ok(pb::ActorType::Unspecified) => Ok(None),
        Ok(pb::ActorType::User) => Ok(Some("user")),
        Ok(pb::ActorType::Service) => Ok(Some("service")),
        Ok(pb::ActorType::ApiKey) => Ok(Some("api_key")),
        Ok(pb::ActorType::System) => Ok(Some("system")),
        Ok(pb::ActorType::Anonymous) => Ok(Some("anonymous")),
        Err(_) => Err(value),
    }
}

pub fn outcome_name(value: i32) -> Result<&'static str, String> {
    match pb::OutcomeResult::try_from(value) {
        Ok(pb::OutcomeResult::Success) => Ok("success"),
        Ok(pb::OutcomeResult::Failure) => Ok("failure"),
        Ok(pb::OutcomeResult::Denied) => Ok("denied"),
        Ok(pb::OutcomeResult::Unspecified) => Err("required (OUTCOME_RESULT_UNSPECIFIED is not a result)".into()),
        Err(_) => Err(format!("unknown enum value {value}")),
    }
}

/// Writes canonical JSON (keys sorted, no whitespace) straight from the Struct: prost keeps
/// `fields` in a BTreeMap, whose order (bytewise UTF-8) is the canonical one.
struct JsonWriter<'a> {
    redactor: &'a Redactor,
    index: usize,
    field: &'a str,
    out: Vec<u8>,
}

impl JsonWriter<'_> {
    fn error(&self, rule: impl Into<String>) -> ValidationError {
        violation(self.index, self.field, rule)
    }

    fn depth_error(&self) -> ValidationError {
        self.error(format!("nesting depth exceeds the limit of {MAX_STRUCT_DEPTH}"))
    }

    fn string(&mut self, text: &str) {
        // serde_json's escaping, without building a Value tree; writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, text);
    }

    fn object(&mut self, fields: &std::collections::BTreeMap<String, prost_types::Value>, depth: usize) -> Result<(), ValidationError> {
        if depth > MAX_STRUCT_DEPTH {
            return Err(self.depth_error());
        }
        self.out.push(b'{');
        for (position, (key, value)) in fields.iter().enumerate() {
            if position > 0 {
                self.out.push(b',');
            }
            self.string(key);
            self.out.push(b':');
            if self.redactor.is_secret(key) {
                self.string(REDACTED);
            } else {
                self.value(value, depth)?;
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    fn value(&mut self, value: &prost_types::Value, depth: usize) -> Result<(), ValidationError> {
        match &value.kind {
            None | Some(Kind::NullValue(_)) => self.out.extend_from_slice(b"null"),
            Some(Kind::BoolValue(flag)) => self.out.extend_from_slice(if *flag { b"true" } else { b"false" }),
            Some(Kind::StringValue(text)) => self.string(text),
            Some(Kind::NumberValue(number)) => {
                let json = number_to_json(*number).ok_or_else(|| self.error("numbers must be finite (no NaN or Infinity)"))?;
                let _ = serde_json::to_writer(&mut self.out, &json);
            }
            Some(Kind::StructValue(inner)) => self.object(&inner.fields, depth + 1)?,
            Some(Kind::ListValue(list)) => {
                if depth + 1 > MAX_STRUCT_DEPTH {
                    return Err(self.depth_error());
                }
                self.out.push(b'[');
                for (position, item) in list.values.iter().enumerate() {
                    if position > 0 {
                        self.out.push(b',');
                    }
                    self.value(item, depth + 1)?;
                }
                self.out.push(b']');
            }
        }
        Ok(())
    }
}

/// Integral doubles within ±2^53 print as integers (`4411`, not `4411.0`); others as shortest float.
fn number_to_json(number: f64) -> Option<serde_json::Value> {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;
    if !number.is_finite() {
        return None;
    }
    if number.fract() == 0.0 && number.abs() <= EXACT_INTEGER_LIMIT {
        return Some(serde_json::Value::from(number as i64));
    }
    serde_json::Number::from_f64(number).map(serde_json::Value::Number)
}

/// Canonical JSON text of a Struct (keys sorted, no whitespace), redacted; None when absent or empty.
pub fn struct_to_canonical_json(
    value: Option<&prost_types::Struct>,
    redactor: &Redactor,
    index: usize,
    field: &str,
) -> Result<Option<String>, ValidationError> {
    let Some(value) = value else { return Ok(None) };
    if value.fields.is_empty() {
        return Ok(None);
    }
    let mut writer = JsonWriter { redactor, index, field, out: Vec::with_capacity(128) };
    writer.object(&value.fields, 1)?;
    // Only valid UTF-8 was written: protobuf strings are UTF-8 and serde_json escapes correctly.
    String::from_utf8(writer.out).map(Some).map_err(|_| violation(index, field, "not valid UTF-8"))
}

/// Request-level limits (DESIGN §2.1).
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

    #[test]
    fn action_and_tenant_patterns() {
        assert!(is_valid_action("user.role.updated"));
        assert!(is_valid_action("a_b-c.d9"));
        for bad in ["", ".a", "a.", "a..b", "User.login", "a b", "a.*"] {
            assert!(!is_valid_action(bad), "{bad}");
        }
        assert!(is_valid_tenant_id("Acme.Corp:eu_1-x"));
        assert!(!is_valid_tenant_id("acme/corp"));
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

    #[test]
    fn numbers_print_like_the_vectors() {
        assert_eq!(number_to_json(4411.0).unwrap().to_string(), "4411");
        assert_eq!(number_to_json(-0.0).unwrap().to_string(), "0");
        assert_eq!(number_to_json(1.5).unwrap().to_string(), "1.5");
        assert!(number_to_json(f64::NAN).is_none());
    }
}
