//! Every rule of docs/API.md, AuditEvent over real gRPC: INVALID_ARGUMENT whose message names the event
//! index, the field and the rule; a rejected call appends nothing.

use crate::common::*;
use auditum_proto::pb;
use auditum_proto::sample::{number_value, string_value, struct_of};
use prost_types::value::Kind;

/// Appends `[good, good, bad]` and checks the error names `events[2].<field>` and the rule.
async fn assert_rejected(
    client: &mut pb::ingest_service_client::IngestServiceClient<tonic::transport::Channel>,
    bad: pb::AuditEvent,
    field: &str,
    rule: &str,
) {
    let events = vec![event("acme", "user.login", "u1"), event("acme", "user.login", "u2"), bad];
    let status = client.append(request(events)).await.expect_err(&format!("{field} must be rejected"));
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}: {}", status.message());
    let expected_field = if field.is_empty() { "events[2]:".to_string() } else { format!("events[2].{field}:") };
    assert!(status.message().starts_with(&expected_field), "expected {expected_field:?} in {:?}", status.message());
    assert!(status.message().contains(rule), "expected rule {rule:?} in {:?}", status.message());
}

fn nested(depth: usize) -> prost_types::Struct {
    let mut value = struct_of(vec![("leaf", string_value("x"))]);
    for _ in 1..depth {
        value = struct_of(vec![("child", prost_types::Value { kind: Some(Kind::StructValue(value)) })]);
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_names_the_field_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    let base = || event("acme", "user.login", "u1");
    let now = now_micros();

    let mut bad = base();
    bad.id = "x".repeat(129);
    assert_rejected(&mut client, bad, "id", "129 bytes exceeds the limit of 128 bytes").await;

    let mut bad = base();
    bad.tenant_id = String::new();
    assert_rejected(&mut client, bad, "tenant_id", "required").await;
    let mut bad = base();
    bad.tenant_id = "t".repeat(129);
    assert_rejected(&mut client, bad, "tenant_id", "limit of 128").await;
    let mut bad = base();
    bad.tenant_id = "acme/../globex".into();
    assert_rejected(&mut client, bad, "tenant_id", "[A-Za-z0-9._:-]+").await;

    let mut bad = base();
    bad.occurred_at = None;
    assert_rejected(&mut client, bad, "occurred_at", "required").await;
    let mut bad = base();
    bad.occurred_at = Some(timestamp(now + 6 * 60 * 1_000_000));
    assert_rejected(&mut client, bad, "occurred_at", "more than 5 minutes in the future").await;
    let mut bad = base();
    bad.occurred_at = Some(prost_types::Timestamp { seconds: 1, nanos: -1 });
    assert_rejected(&mut client, bad, "occurred_at", "nanos").await;
    let mut bad = base();
    bad.occurred_at = Some(prost_types::Timestamp { seconds: i64::MIN, nanos: 0 });
    assert_rejected(&mut client, bad, "occurred_at", "outside 0001-01-01..9999-12-31").await;

    let mut bad = base();
    bad.action = String::new();
    assert_rejected(&mut client, bad, "action", "required").await;
    let mut bad = base();
    bad.action = "a".repeat(129);
    assert_rejected(&mut client, bad, "action", "limit of 128").await;
    for action in ["User.Login", "user..login", "user.login.", "user login"] {
        let mut bad = base();
        bad.action = action.into();
        assert_rejected(&mut client, bad, "action", "must match ^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$").await;
    }

    let mut bad = base();
    bad.actor = None;
    assert_rejected(&mut client, bad, "actor", "required").await;
    let mut bad = base();
    bad.actor.as_mut().unwrap().id = String::new();
    assert_rejected(&mut client, bad, "actor.id", "required").await;
    let mut bad = base();
    bad.actor.as_mut().unwrap().id = "a".repeat(257);
    assert_rejected(&mut client, bad, "actor.id", "257 bytes exceeds the limit of 256 bytes").await;
    let mut bad = base();
    bad.actor.as_mut().unwrap().r#type = 99;
    assert_rejected(&mut client, bad, "actor.type", "unknown enum value 99").await;

    let mut bad = base();
    bad.outcome = None;
    assert_rejected(&mut client, bad, "outcome", "required").await;
    let mut bad = base();
    bad.outcome.as_mut().unwrap().result = pb::OutcomeResult::Unspecified as i32;
    assert_rejected(&mut client, bad, "outcome.result", "required").await;
    let mut bad = base();
    bad.outcome.as_mut().unwrap().result = 42;
    assert_rejected(&mut client, bad, "outcome.result", "unknown enum value 42").await;

    let mut bad = base();
    bad.context = Some(pb::Context { source_ip: "300.1.2.3".into(), ..Default::default() });
    assert_rejected(&mut client, bad, "context.source_ip", "valid IPv4 or IPv6").await;

    for field in ["before", "after", "metadata"] {
        let mut bad = base();
        let value = Some(struct_of(vec![("n", number_value(f64::NAN))]));
        match field {
            "before" => bad.before = value,
            "after" => bad.after = value,
            _ => bad.metadata = value,
        }
        assert_rejected(&mut client, bad, field, "finite").await;
    }
    let mut bad = base();
    bad.metadata = Some(nested(33));
    assert_rejected(&mut client, bad, "metadata", "nesting depth exceeds the limit of 32").await;

    let mut bad = base();
    bad.metadata = Some(struct_of(vec![("blob", string_value(&"x".repeat(70_000)))]));
    assert_rejected(&mut client, bad, "", "exceeds the limit of 65536 bytes").await;

    // Call-level limits.
    let status = client.append(request(Vec::new())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("events: at least one event"), "{}", status.message());
    let status = client.append(request((0..1001).map(|_| base()).collect())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("1001 events exceeds the limit of 1000"), "{}", status.message());
    let big = || {
        let mut event = base();
        event.metadata = Some(struct_of(vec![("blob", string_value(&"y".repeat(60_000)))]));
        event
    };
    let status = client.append(request((0..80).map(|_| big()).collect())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("request: encoded size") && status.message().contains("limit of 4194304 bytes"),
        "{}",
        status.message()
    );

    // None of the rejected calls appended anything: the next event gets seq 0.
    let ok = client.append(request(vec![base()])).await.unwrap().into_inner();
    assert_eq!(ok.results[0].seq, 0);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_strings_and_unspecified_actor_type_are_stored_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    let mut minimal = event("acme", "user.login", "u1");
    minimal.actor.as_mut().unwrap().r#type = pb::ActorType::Unspecified as i32;
    minimal.target = Some(pb::Target::default());
    minimal.metadata = Some(prost_types::Struct::default());
    minimal.context = Some(pb::Context { source_ip: "2001:DB8::1".into(), ..Default::default() });
    client.append(request(vec![minimal])).await.unwrap();
    let log = running.logs.by_name("default").unwrap();
    let stored = log.unsealed_events();
    let record = &stored[0];
    assert_eq!(record.actor_type, None);
    assert_eq!((record.target_type.as_deref(), record.target_id.as_deref()), (None, None));
    assert_eq!(record.metadata, None, "an empty Struct is stored as null");
    assert_eq!(record.source_ip.as_deref(), Some("2001:db8::1"), "addresses are stored canonically");
    running.stop().await.unwrap();
}
