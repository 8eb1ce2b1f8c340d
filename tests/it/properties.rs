//! Property tests over hostile input: event validation, the canonical encoding, and WAL record
//! decoding never panic on arbitrary input, and what they accept round-trips.

use auditum_format::event::{EventRecord, Seq};
use auditum_proto::pb;
use auditum_proto::validate::{Redactor, Validator};
use proptest::prelude::*;
use prost_types::value::Kind;

fn validator() -> Validator {
    Validator { redactor: Redactor::new(auditum_proto::validate::DEFAULT_REDACT_KEYS.iter().map(|key| key.to_string())) }
}

const NOW: i64 = 1_790_000_000_000_000;

/// Any text, control characters and non-ASCII included, sometimes long.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9._:-]{0,12}",
        2 => any::<String>(),
        1 => proptest::collection::vec(any::<char>(), 100..400).prop_map(|chars| chars.into_iter().collect()),
    ]
}

fn any_value() -> impl Strategy<Value = prost_types::Value> {
    let leaf = prop_oneof![
        Just(Kind::NullValue(0)),
        any::<f64>().prop_map(Kind::NumberValue),
        any_text().prop_map(Kind::StringValue),
        any::<bool>().prop_map(Kind::BoolValue),
        Just(Kind::NumberValue(f64::NAN)),
        Just(Kind::NumberValue(f64::INFINITY)),
    ]
    .prop_map(|kind| prost_types::Value { kind: Some(kind) });
    leaf.prop_recursive(40, 200, 4, |inner| {
        prop_oneof![
            proptest::collection::btree_map(any_text(), inner.clone(), 0..4)
                .prop_map(|fields| prost_types::Value { kind: Some(Kind::StructValue(prost_types::Struct { fields })) }),
            proptest::collection::vec(inner, 0..4)
                .prop_map(|values| prost_types::Value { kind: Some(Kind::ListValue(prost_types::ListValue { values })) }),
            Just(prost_types::Value { kind: None }),
        ]
    })
}

fn any_struct() -> impl Strategy<Value = Option<prost_types::Struct>> {
    proptest::option::of(proptest::collection::btree_map(any_text(), any_value(), 0..4).prop_map(|fields| prost_types::Struct { fields }))
}

/// Struct values the validator accepts: finite numbers, a few levels deep.
fn valid_struct() -> impl Strategy<Value = Option<prost_types::Struct>> {
    let leaf = prop_oneof![
        Just(Kind::NullValue(0)),
        (-1e15f64..1e15).prop_map(Kind::NumberValue),
        any::<String>().prop_map(Kind::StringValue),
        any::<bool>().prop_map(Kind::BoolValue),
    ]
    .prop_map(|kind| prost_types::Value { kind: Some(kind) });
    let value = leaf.prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            proptest::collection::btree_map("[a-z_]{1,10}", inner.clone(), 0..4)
                .prop_map(|fields| prost_types::Value { kind: Some(Kind::StructValue(prost_types::Struct { fields })) }),
            proptest::collection::vec(inner, 0..4)
                .prop_map(|values| prost_types::Value { kind: Some(Kind::ListValue(prost_types::ListValue { values })) }),
        ]
    });
    proptest::option::of(proptest::collection::btree_map("[a-z_]{1,10}", value, 0..4).prop_map(|fields| prost_types::Struct { fields }))
}

fn any_timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    proptest::option::of(prop_oneof![
        (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
        (1_600_000_000i64..1_790_000_000, 0i32..1_000_000_000).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    ])
}

fn any_event() -> impl Strategy<Value = pb::AuditEvent> {
    (
        (any_text(), any_text(), any_timestamp(), any_text()),
        (any_text(), any::<i32>(), any_text()),
        (any_text(), any_text(), any_text(), any::<i32>(), any_text(), any_text()),
        proptest::collection::vec(any_text(), 6),
        (any_struct(), any_struct(), any_struct()),
    )
        .prop_map(
            |(
                (id, tenant_id, occurred_at, action),
                (actor_id, actor_type, actor_name),
                (target_type, target_id, target_name, result, error_code, reason),
                context,
                (before, after, metadata),
            )| pb::AuditEvent {
                subject_id: String::new(),
                id,
                tenant_id,
                occurred_at,
                action,
                actor: Some(pb::Actor { id: actor_id, r#type: actor_type, name: actor_name }),
                target: Some(pb::Target { r#type: target_type, id: target_id, name: target_name }),
                outcome: Some(pb::Outcome { result, error_code, reason }),
                context: Some(pb::Context {
                    request_id: context[0].clone(),
                    correlation_id: context[1].clone(),
                    session_id: context[2].clone(),
                    source_ip: context[3].clone(),
                    user_agent: context[4].clone(),
                    service: context[5].clone(),
                }),
                before,
                after,
                metadata,
            },
        )
}

/// Events the validator must accept: every required field well-formed, the rest arbitrary but
/// within limits.
fn valid_event() -> impl Strategy<Value = pb::AuditEvent> {
    (
        "[a-z0-9-]{0,40}",
        "[a-z][a-z0-9-]{0,30}",
        (1_600_000_000_000_000i64..NOW),
        "[a-z]{1,10}\\.[a-z_]{1,12}",
        "[a-zA-Z0-9@._-]{1,40}",
        1i32..=5,
        1i32..=3,
        proptest::collection::vec("[ -~]{0,30}", 4),
        proptest::option::of(prop_oneof![Just("10.1.2.3".to_string()), Just("2001:db8::1".to_string())]),
        valid_struct(),
    )
        .prop_map(|(id, tenant_id, occurred_at, action, actor_id, actor_type, result, texts, source_ip, metadata)| pb::AuditEvent {
            subject_id: String::new(),
            id,
            tenant_id,
            occurred_at: Some(auditum_proto::convert::timestamp_from_micros(occurred_at)),
            action,
            actor: Some(pb::Actor { id: actor_id, r#type: actor_type, name: texts[0].clone() }),
            target: Some(pb::Target { r#type: texts[1].clone(), id: texts[2].clone(), name: String::new() }),
            outcome: Some(pb::Outcome { result, error_code: String::new(), reason: texts[3].clone() }),
            context: Some(pb::Context { source_ip: source_ip.unwrap_or_default(), ..Default::default() }),
            before: None,
            after: None,
            metadata,
        })
}

/// What a record must survive: the WAL frame, the column encoding and the §7 JSON form.
fn assert_round_trips(record: &EventRecord) -> Result<(), TestCaseError> {
    let mut columns = Vec::new();
    record.encode_columns(&mut columns);
    prop_assert_eq!(&EventRecord::decode_columns(&columns).unwrap(), record);
    let mut framed = Vec::new();
    auditum_format::wal::encode_record(record, &mut framed);
    let (decoded, len) = auditum_format::wal::decode_record(&framed).unwrap().unwrap();
    prop_assert_eq!(&decoded, record);
    prop_assert_eq!(len, framed.len());
    let from_json = EventRecord::from_json(&record.to_json()).unwrap();
    prop_assert_eq!(&from_json, record);
    prop_assert_eq!(from_json.leaf_hash(), record.leaf_hash());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn validation_never_panics_and_what_it_accepts_round_trips(event in any_event(), seq in any::<u64>(), received in any::<i64>()) {
        if let Ok(mut record) = validator().prepare(0, event, NOW) {
            record.seq = Seq(seq);
            record.received_at = received;
            assert_round_trips(&record)?;
        }
    }

    #[test]
    fn valid_events_are_accepted_and_round_trip(event in valid_event(), seq in any::<u64>()) {
        let mut record = validator().prepare(0, event.clone(), NOW).map_err(|error| TestCaseError::fail(format!("{error} for {event:?}")))?;
        prop_assert_eq!(&record.tenant_id, &event.tenant_id);
        prop_assert_eq!(&record.action, &event.action);
        record.seq = Seq(seq);
        record.received_at = NOW;
        assert_round_trips(&record)?;
        // Canonical: validating the stored form again gives the same bytes and leaf.
        let json = record.to_json();
        prop_assert_eq!(EventRecord::from_json(&json).unwrap().canonical_bytes(), record.canonical_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_column_or_wal_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = EventRecord::decode_columns(&bytes);
        let _ = auditum_format::wal::decode_record(&bytes);
        // A well-formed frame around arbitrary content: the checksum passes, the content is hostile.
        let mut framed = Vec::new();
        framed.extend_from_slice(&((bytes.len() + 1) as u32).to_be_bytes());
        let mut payload = vec![0x01];
        payload.extend_from_slice(&bytes);
        framed.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        framed.extend_from_slice(&payload);
        let _ = auditum_format::wal::decode_record(&framed);
    }

    #[test]
    fn damaged_wal_records_are_refused_or_torn_never_misread(event in valid_event(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut record = validator().prepare(0, event, NOW).unwrap();
        record.seq = Seq(7);
        record.received_at = NOW;
        let mut framed = Vec::new();
        auditum_format::wal::encode_record(&record, &mut framed);
        // Any strict prefix is a torn write.
        let cut = cut.index(framed.len());
        prop_assert_eq!(auditum_format::wal::decode_record(&framed[..cut]), Ok(None));
        // Any single flipped bit is caught (the length, the checksum or the CRC-32C of the payload).
        let mut damaged = framed.clone();
        damaged[flip.index(framed.len())] ^= 1 << bit;
        if let Ok(Some((decoded, _))) = auditum_format::wal::decode_record(&damaged) {
            prop_assert!(false, "a damaged record decoded as {decoded:?}");
        }
    }
}
