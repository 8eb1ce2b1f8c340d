//! The one place where protobuf meets the domain: timestamps, `Struct` ↔ JSON, enum names,
//! wire event ↔ stored record, and the stored event of a query result.

use crate::pb;
use auditum_format::event::{EventRecord, LeafHash, Seq};
use auditum_format::rules::{MAX_STRUCT_DEPTH, REDACTED};
use prost_types::value::Kind;
use serde_json::Value;

/// Timestamp range of google.protobuf.Timestamp: 0001-01-01 to 9999-12-31.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

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

/// The actor type enum of a stored name (`user`) or a proto name (`ACTOR_TYPE_USER`); empty is
/// unspecified.
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

/// The outcome enum of a stored name (`success`) or a proto name (`OUTCOME_RESULT_SUCCESS`).
pub fn parse_outcome(name: &str) -> Result<i32, String> {
    Ok(match name.to_ascii_lowercase().trim_start_matches("outcome_result_") {
        "success" => pb::OutcomeResult::Success,
        "failure" => pb::OutcomeResult::Failure,
        "denied" => pb::OutcomeResult::Denied,
        other => return Err(format!("unknown outcome {other:?} (success, failure, denied)")),
    } as i32)
}

pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: micros.div_euclid(1_000_000), nanos: (micros.rem_euclid(1_000_000) * 1000) as i32 }
}

/// Now, as a protobuf timestamp.
pub fn now_timestamp() -> prost_types::Timestamp {
    timestamp_from_micros(auditum_format::time::now_micros())
}

/// An RFC 3339 time, e.g. `2026-07-01T00:00:00Z`.
pub fn parse_timestamp(text: &str) -> Result<prost_types::Timestamp, String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text).map_err(|error| format!("{text:?} is not an RFC 3339 time: {error}"))?;
    Ok(prost_types::Timestamp { seconds: parsed.timestamp(), nanos: parsed.timestamp_subsec_nanos() as i32 })
}

/// Microseconds at or after a timestamp: an event at µs `m` is at or after `t` iff m ≥ ceil(t).
pub fn timestamp_ceil_micros(timestamp: &prost_types::Timestamp) -> Result<i64, String> {
    let floor = timestamp_micros(timestamp)?;
    Ok(if timestamp.nanos % 1000 != 0 { floor + 1 } else { floor })
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

/// The Struct of stored JSON text (an object), None when absent.
pub fn struct_from_json(text: Option<&str>) -> Option<prost_types::Struct> {
    let text = text?;
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Some(json_to_struct(&object)),
        // Not an object: "[erased]" (DESIGN §14), "[undecryptable]", or a ciphertext read without
        // its keyring. Shown as `{"<text>": true}` rather than dropped, so it is never mistaken
        // for an absent value.
        _ => Some(prost_types::Struct {
            fields: [(text.to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::BoolValue(true)) })]
                .into_iter()
                .collect(),
        }),
    }
}

/// The filter as meta-audit metadata: its set fields only.
pub fn filter_details(filter: &pb::EventFilter) -> Value {
    use serde_json::Map;
    let mut out = Map::new();
    let mut text = |name: &str, value: &str| {
        if !value.is_empty() {
            out.insert(name.to_string(), Value::String(value.to_string()));
        }
    };
    text("tenant_id", &filter.tenant_id);
    text("actor_id", &filter.actor_id);
    text("target_type", &filter.target_type);
    text("target_id", &filter.target_id);
    text("request_id", &filter.request_id);
    text("correlation_id", &filter.correlation_id);
    text("session_id", &filter.session_id);
    text("source_ip", &filter.source_ip);
    let time = |timestamp: &Option<prost_types::Timestamp>| {
        timestamp.as_ref().and_then(|time| timestamp_micros(time).ok()).map(auditum_format::time::rfc3339_micros)
    };
    if let Some(start) = time(&filter.start_time) {
        out.insert("start_time".into(), Value::String(start));
    }
    if let Some(end) = time(&filter.end_time) {
        out.insert("end_time".into(), Value::String(end));
    }
    if filter.actor_type != 0 {
        let name = pb::ActorType::try_from(filter.actor_type).map(|value| value.as_str_name().to_string());
        out.insert("actor_type".into(), Value::String(name.unwrap_or_else(|_| filter.actor_type.to_string())));
    }
    if filter.outcome != 0 {
        let name = pb::OutcomeResult::try_from(filter.outcome).map(|value| value.as_str_name().to_string());
        out.insert("outcome".into(), Value::String(name.unwrap_or_else(|_| filter.outcome.to_string())));
    }
    if !filter.actions.is_empty() {
        out.insert("actions".into(), Value::Array(filter.actions.iter().cloned().map(Value::String).collect()));
    }
    Value::Object(out)
}

/// The wire event of a stored record (absent columns become empty strings, as sent).
pub fn audit_event(record: &EventRecord) -> pb::AuditEvent {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let any = |values: &[&Option<String>]| values.iter().any(|value| value.is_some());
    pb::AuditEvent {
        subject_id: String::new(),
        id: record.id.clone(),
        tenant_id: record.tenant_id.clone(),
        occurred_at: Some(timestamp_from_micros(record.occurred_at)),
        action: record.action.clone(),
        actor: Some(pb::Actor {
            id: record.actor_id.clone(),
            r#type: parse_actor_type(record.actor_type.as_deref().unwrap_or_default()).unwrap_or_default(),
            name: text(&record.actor_name),
        }),
        target: any(&[&record.target_type, &record.target_id, &record.target_name]).then(|| pb::Target {
            r#type: text(&record.target_type),
            id: text(&record.target_id),
            name: text(&record.target_name),
        }),
        outcome: Some(pb::Outcome {
            result: parse_outcome(&record.outcome).unwrap_or_default(),
            error_code: text(&record.error_code),
            reason: text(&record.reason),
        }),
        context: any(&[
            &record.request_id,
            &record.correlation_id,
            &record.session_id,
            &record.source_ip,
            &record.user_agent,
            &record.service,
        ])
        .then(|| pb::Context {
            request_id: text(&record.request_id),
            correlation_id: text(&record.correlation_id),
            session_id: text(&record.session_id),
            source_ip: text(&record.source_ip),
            user_agent: text(&record.user_agent),
            service: text(&record.service),
        }),
        before: struct_from_json(record.before.as_deref()),
        after: struct_from_json(record.after.as_deref()),
        metadata: struct_from_json(record.metadata.as_deref()),
    }
}

/// The stored record behind a `StoredEvent` (the inverse of [`stored_event`]), for clients.
pub fn record_of(stored: &pb::StoredEvent) -> Result<EventRecord, String> {
    let event = stored.event.as_ref().ok_or("event is missing")?;
    let micros = |field: &str, time: Option<&prost_types::Timestamp>| -> Result<i64, String> {
        timestamp_micros(time.ok_or(format!("{field} is missing"))?).map_err(|rule| format!("{field}: {rule}"))
    };
    let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_string());
    let json = |value: Option<&prost_types::Struct>, field: &str| {
        struct_to_canonical_json(value, |_| false).map_err(|rule| format!("{field}: {rule}"))
    };
    let actor = event.actor.clone().unwrap_or_default();
    let target = event.target.clone().unwrap_or_default();
    let outcome = event.outcome.clone().unwrap_or_default();
    let context = event.context.clone().unwrap_or_default();
    Ok(EventRecord {
        seq: Seq(stored.seq),
        id: event.id.clone(),
        tenant_id: event.tenant_id.clone(),
        occurred_at: micros("occurred_at", event.occurred_at.as_ref())?,
        received_at: micros("received_at", stored.received_at.as_ref())?,
        action: event.action.clone(),
        actor_id: actor.id.clone(),
        actor_type: actor_type_name(actor.r#type).map_err(|value| format!("actor.type {value} is unknown"))?.map(str::to_string),
        actor_name: non_empty(&actor.name),
        target_type: non_empty(&target.r#type),
        target_id: non_empty(&target.id),
        target_name: non_empty(&target.name),
        outcome: outcome_name(outcome.result)?.to_string(),
        error_code: non_empty(&outcome.error_code),
        reason: non_empty(&outcome.reason),
        request_id: non_empty(&context.request_id),
        correlation_id: non_empty(&context.correlation_id),
        session_id: non_empty(&context.session_id),
        source_ip: non_empty(&context.source_ip),
        user_agent: non_empty(&context.user_agent),
        service: non_empty(&context.service),
        before: json(event.before.as_ref(), "before")?,
        after: json(event.after.as_ref(), "after")?,
        metadata: json(event.metadata.as_ref(), "metadata")?,
    })
}

/// The wire form of a stored (or unsealed) event; `batch_index` is None while unsealed.
pub fn stored_event(record: &EventRecord, leaf_hash: &LeafHash, batch_index: Option<u64>, log: &str) -> pb::StoredEvent {
    pb::StoredEvent {
        event: Some(audit_event(record)),
        seq: record.seq.0,
        received_at: Some(timestamp_from_micros(record.received_at)),
        sealed: batch_index.is_some(),
        batch_index: batch_index.unwrap_or_default(),
        leaf_hash: leaf_hash.to_vec(),
        log: log.to_string(),
    }
}

/// Where [`JsonWriter`] puts its text: a buffer, or nowhere when only the rules are checked
/// (one walk for both, so a check and a conversion can never disagree).
trait JsonOut {
    fn push(&mut self, byte: u8);
    fn extend(&mut self, bytes: &[u8]);
    fn string(&mut self, text: &str);
    fn number(&mut self, number: &serde_json::Value);
}

impl JsonOut for Vec<u8> {
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }
    fn extend(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn string(&mut self, text: &str) {
        // serde_json's escaping, without building a Value tree; writing to a Vec cannot fail.
        let _ = serde_json::to_writer(self, text);
    }
    fn number(&mut self, number: &serde_json::Value) {
        let _ = serde_json::to_writer(self, number);
    }
}

/// Checks without writing.
struct Discard;

impl JsonOut for Discard {
    fn push(&mut self, _: u8) {}
    fn extend(&mut self, _: &[u8]) {}
    fn string(&mut self, _: &str) {}
    fn number(&mut self, _: &serde_json::Value) {}
}

/// Writes canonical JSON (keys sorted, no whitespace) straight from the Struct: prost keeps
/// `fields` in a BTreeMap, whose order (bytewise UTF-8) is the canonical one.
struct JsonWriter<F, O> {
    is_secret: F,
    out: O,
}

impl<F: Fn(&str) -> bool, O: JsonOut> JsonWriter<F, O> {
    fn depth_error(&self) -> String {
        format!("nesting depth exceeds the limit of {MAX_STRUCT_DEPTH}")
    }

    fn string(&mut self, text: &str) {
        self.out.string(text);
    }

    fn object(&mut self, fields: &std::collections::BTreeMap<String, prost_types::Value>, depth: usize) -> Result<(), String> {
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
            if (self.is_secret)(key) {
                self.string(REDACTED);
            } else {
                self.value(value, depth)?;
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    fn value(&mut self, value: &prost_types::Value, depth: usize) -> Result<(), String> {
        match &value.kind {
            None | Some(Kind::NullValue(_)) => self.out.extend(b"null"),
            Some(Kind::BoolValue(flag)) => self.out.extend(if *flag { b"true" } else { b"false" }),
            Some(Kind::StringValue(text)) => self.string(text),
            Some(Kind::NumberValue(number)) => {
                let json = number_to_json(*number).ok_or_else(|| "numbers must be finite (no NaN or Infinity)".to_string())?;
                self.out.number(&json);
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

/// Integral doubles print as integers (`4411`, not `4411.0`): the exact value of the double, so
/// an integer beyond ±2^53, which a double cannot hold exactly, prints as the double it arrived as
/// (2^53 + 1 is sent as 9007199254740992). Beyond the 64-bit range, and for fractions, the
/// shortest form that reads back as the same double (`1e20`, `1.5`).
fn number_to_json(number: f64) -> Option<serde_json::Value> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    if !number.is_finite() {
        return None;
    }
    if number.fract() == 0.0 {
        if (-TWO_POW_63..TWO_POW_63).contains(&number) {
            return Some(serde_json::Value::from(number as i64));
        }
        if (0.0..TWO_POW_64).contains(&number) {
            return Some(serde_json::Value::from(number as u64));
        }
    }
    serde_json::Number::from_f64(number).map(serde_json::Value::Number)
}

/// Canonical JSON text of a Struct (keys sorted, no whitespace), with the value of every key
/// `is_secret` names replaced by `"[REDACTED]"`; None when absent or empty; Err is the rule the
/// Struct breaks.
pub fn struct_to_canonical_json(value: Option<&prost_types::Struct>, is_secret: impl Fn(&str) -> bool) -> Result<Option<String>, String> {
    let Some(value) = value else { return Ok(None) };
    if value.fields.is_empty() {
        return Ok(None);
    }
    let mut writer = JsonWriter { is_secret, out: Vec::with_capacity(128) };
    writer.object(&value.fields, 1)?;
    // Only valid UTF-8 was written: protobuf strings are UTF-8 and serde_json escapes correctly.
    String::from_utf8(writer.out).map(Some).map_err(|_| "not valid UTF-8".to_string())
}

/// The rules of [`struct_to_canonical_json`] without its text: Err is the rule the Struct breaks.
pub fn check_struct(value: Option<&prost_types::Struct>, is_secret: impl Fn(&str) -> bool) -> Result<(), String> {
    let Some(value) = value else { return Ok(()) };
    JsonWriter { is_secret, out: Discard }.object(&value.fields, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_the_vectors() {
        assert_eq!(number_to_json(4411.0).unwrap().to_string(), "4411");
        assert_eq!(number_to_json(-0.0).unwrap().to_string(), "0");
        assert_eq!(number_to_json(1.5).unwrap().to_string(), "1.5");
        assert!(number_to_json(f64::NAN).is_none());
    }

    #[test]
    fn integers_beyond_two_to_the_53_print_without_a_fraction() {
        assert_eq!(number_to_json(9_007_199_254_740_994.0).unwrap().to_string(), "9007199254740994");
        assert_eq!(number_to_json(-9_007_199_254_740_994.0).unwrap().to_string(), "-9007199254740994");
        assert_eq!(number_to_json(9_223_372_036_854_775_808.0).unwrap().to_string(), "9223372036854775808");
        let huge = number_to_json(1e20).unwrap().to_string();
        assert!(!huge.contains('.'), "{huge}");
        assert_eq!(huge.parse::<f64>().unwrap(), 1e20);
    }
}
