//! Summarize (DESIGN §10) equals a brute-force count of the events Query returns, over random
//! filters, dimensions, buckets (ISO weeks across a year boundary, months of different lengths)
//! and limits, across sealed batches (cached partial counts) and unsealed events; and it keeps
//! Query's tenant binding, scopes and rules.

use crate::common::*;
use auditum_engine::auth::Scope;
use auditum_proto::pb;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use chrono::{Datelike, TimeZone, Timelike};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use tonic::transport::Channel;

const DIMENSIONS: [pb::SummaryDimension; 8] = [
    pb::SummaryDimension::Action,
    pb::SummaryDimension::ActorId,
    pb::SummaryDimension::ActorType,
    pb::SummaryDimension::TargetType,
    pb::SummaryDimension::TargetId,
    pb::SummaryDimension::Outcome,
    pb::SummaryDimension::Service,
    pb::SummaryDimension::SourceIp,
];

fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros()
}

/// From 2025-01-15 to 2026-11-20: a year boundary, February, months of 30 and 31 days.
fn random_event(rng: &mut rand::rngs::StdRng, index: usize) -> pb::AuditEvent {
    let tenant = ["acme", "globex"][rng.gen_range(0..2)];
    let action = ["user.login", "user.logout", "doc.read", "doc.delete", "settings.update"][rng.gen_range(0..5)];
    let mut event = with_id(event(tenant, action, &format!("u{}", rng.gen_range(0..6))), &format!("e{index}"));
    event.occurred_at = Some(timestamp(rng.gen_range(micros("2025-01-15T00:00:00Z")..micros("2026-11-20T00:00:00Z"))));
    if rng.gen_bool(0.5) {
        event.actor.as_mut().unwrap().r#type = pb::ActorType::Service as i32;
    }
    if rng.gen_bool(0.7) {
        event.target = Some(pb::Target {
            r#type: ["doc", "account"][rng.gen_range(0..2)].into(),
            id: format!("t{}", rng.gen_range(0..4)),
            name: String::new(),
        });
    }
    let result = [pb::OutcomeResult::Success, pb::OutcomeResult::Failure, pb::OutcomeResult::Denied][rng.gen_range(0..3)];
    event.outcome = Some(pb::Outcome { result: result as i32, ..Default::default() });
    if rng.gen_bool(0.6) {
        event.context = Some(pb::Context {
            service: ["web", "api"][rng.gen_range(0..2)].into(),
            source_ip: if rng.gen_bool(0.5) { format!("10.0.0.{}", rng.gen_range(1..4)) } else { String::new() },
            ..Default::default()
        });
    }
    event
}

fn random_filter(rng: &mut rand::rngs::StdRng) -> pb::EventFilter {
    let mut filter = pb::EventFilter { tenant_id: ["acme", "globex"][rng.gen_range(0..2)].into(), ..Default::default() };
    if rng.gen_bool(0.3) {
        filter.actor_id = format!("u{}", rng.gen_range(0..6));
    }
    if rng.gen_bool(0.3) {
        filter.actions = vec![["user.*", "doc.read", "settings.update"][rng.gen_range(0..3)].into()];
    }
    if rng.gen_bool(0.2) {
        filter.outcome = pb::OutcomeResult::Failure as i32;
    }
    if rng.gen_bool(0.5) {
        let start = rng.gen_range(micros("2025-01-01T00:00:00Z")..micros("2026-10-01T00:00:00Z"));
        filter.start_time = Some(timestamp(start));
        filter.end_time = Some(timestamp(start + rng.gen_range(3_600_000_000i64..400 * 86_400_000_000)));
    }
    filter
}

/// The bucket start, computed with the calendar rather than arithmetic on microseconds.
fn bucket_start(bucket: pb::TimeBucket, occurred_at: i64, whole_start: i64) -> i64 {
    let time = chrono::Utc.timestamp_micros(occurred_at).unwrap();
    let midnight = |date: chrono::NaiveDate| date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros();
    match bucket {
        pb::TimeBucket::Unspecified => whole_start,
        pb::TimeBucket::Hour => time.with_minute(0).unwrap().with_second(0).unwrap().with_nanosecond(0).unwrap().timestamp_micros(),
        pb::TimeBucket::Day => midnight(time.date_naive()),
        pb::TimeBucket::Week => {
            let week = time.iso_week();
            midnight(chrono::NaiveDate::from_isoywd_opt(week.year(), week.week(), chrono::Weekday::Mon).unwrap())
        }
        pb::TimeBucket::Month => midnight(chrono::NaiveDate::from_ymd_opt(time.year(), time.month(), 1).unwrap()),
    }
}

fn key(record: &auditum_format::event::EventRecord, dimension: pb::SummaryDimension) -> String {
    let value = match dimension {
        pb::SummaryDimension::Action => Some(record.action.as_str()),
        pb::SummaryDimension::ActorId => Some(record.actor_id.as_str()),
        pb::SummaryDimension::ActorType => record.actor_type.as_deref(),
        pb::SummaryDimension::TargetType => record.target_type.as_deref(),
        pb::SummaryDimension::TargetId => record.target_id.as_deref(),
        pb::SummaryDimension::Outcome => Some(record.outcome.as_str()),
        pb::SummaryDimension::Service => record.service.as_deref(),
        pb::SummaryDimension::SourceIp => record.source_ip.as_deref(),
        pb::SummaryDimension::Unspecified => unreachable!(),
    };
    value.unwrap_or_default().to_string()
}

/// (bucket start, keys, count).
type Row = (i64, Vec<String>, u64);

/// The brute force: (rows, total, truncated) as DESIGN §10 defines them.
fn expected(events: &[pb::StoredEvent], request: &pb::SummarizeRequest) -> (Vec<Row>, u64, bool) {
    let filter = request.filter.as_ref().unwrap();
    let whole_start = filter.start_time.as_ref().map(|time| time.seconds * 1_000_000 + i64::from(time.nanos) / 1000).unwrap_or(0);
    let bucket = pb::TimeBucket::try_from(request.bucket).unwrap();
    let mut counts: HashMap<(i64, Vec<String>), u64> = HashMap::new();
    for stored in events {
        let record = auditum_proto::convert::record_of(stored).unwrap();
        let keys = request.group_by.iter().map(|value| key(&record, pb::SummaryDimension::try_from(*value).unwrap())).collect();
        *counts.entry((bucket_start(bucket, record.occurred_at, whole_start), keys)).or_default() += 1;
    }
    let total = counts.values().sum();
    let mut rows: Vec<Row> = counts.into_iter().map(|((start, keys), count)| (start, keys, count)).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then_with(|| a.1.cmp(&b.1)));
    let limit = if request.limit == 0 { 100 } else { request.limit as usize };
    let mut per_bucket: HashMap<i64, usize> = HashMap::new();
    let mut truncated = false;
    rows.retain(|row| {
        let seen = per_bucket.entry(row.0).or_default();
        *seen += 1;
        truncated |= *seen > limit;
        *seen <= limit
    });
    (rows, total, truncated)
}

fn rows_of(response: &pb::SummarizeResponse) -> Vec<Row> {
    response
        .rows
        .iter()
        .map(|row| {
            let start = row.bucket_start.as_ref().unwrap();
            (start.seconds * 1_000_000 + i64::from(start.nanos) / 1000, row.keys.clone(), row.count)
        })
        .collect()
}

async fn check_random_summaries(client: &mut QueryServiceClient<Channel>, rng: &mut rand::rngs::StdRng, rounds: usize) {
    let buckets = [pb::TimeBucket::Unspecified, pb::TimeBucket::Hour, pb::TimeBucket::Day, pb::TimeBucket::Week, pb::TimeBucket::Month];
    for _ in 0..rounds {
        let filter = random_filter(rng);
        let dimensions = rng.gen_range(0..=2);
        let group_by = (0..dimensions).map(|_| DIMENSIONS[rng.gen_range(0..DIMENSIONS.len())] as i32).collect();
        let request = pb::SummarizeRequest {
            filter: Some(filter.clone()),
            group_by,
            bucket: buckets[rng.gen_range(0..buckets.len())] as i32,
            limit: [0, 1, 2, 5, 10_000][rng.gen_range(0..5)],
        };
        let events = query_all(client, &filter, false, 1000).await.0;
        let (rows, total, truncated) = expected(&events, &request);
        let response = client.summarize(request.clone()).await.unwrap().into_inner();
        assert_eq!(response.total_events, total, "{request:?}");
        assert_eq!(response.truncated, truncated, "{request:?}");
        assert!(rows_of(&response) == rows, "{request:?}: summarize equals the brute-force count");
        assert!(!response.checkpoint.is_empty(), "the checkpoint the summary began at");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarize_equals_a_brute_force_count_over_sealed_and_unsealed_events() {
    let dir = tempfile::tempdir().unwrap();
    let config = auditum_server::config::Config { row_group_rows: 500, page_rows: 50, meta_audit: false, ..test_config(dir.path()) };
    let (running, mut ingest) = start(config).await;
    let log = running.logs.by_name("default").unwrap().clone();
    let mut client = QueryServiceClient::connect(format!("http://{}", running.addr)).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let mut next = 0;
    let mut append = |count: usize, rng: &mut rand::rngs::StdRng| {
        let events: Vec<pb::AuditEvent> = (next..next + count).map(|index| random_event(rng, index)).collect();
        next += count;
        events
    };
    for chunk in append(3000, &mut rng).chunks(500) {
        ingest.append(request(chunk.to_vec())).await.unwrap();
    }
    log.seal_now().await.unwrap();
    ingest.append(request(append(400, &mut rng))).await.unwrap();
    // Sealed batches (their partial counts computed, then cached) and unsealed events.
    check_random_summaries(&mut client, &mut rng, 40).await;
    // Another batch and more open events: cached batches plus new ones still add up.
    log.seal_now().await.unwrap();
    ingest.append(request(append(300, &mut rng))).await.unwrap();
    check_random_summaries(&mut client, &mut rng, 30).await;

    // The command line: the same counts, as JSON lines.
    let url = format!("http://{}", running.addr);
    let (stdout, stderr, ok) =
        run_binary(&["summarize", "--server", &url, "--tenant", "acme", "--by", "action,outcome", "--bucket", "month", "--json"]);
    assert!(ok, "{stderr}");
    let summed: u64 = stdout.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["count"].as_u64().unwrap()).sum();
    let acme = pb::SummarizeRequest {
        filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
        bucket: pb::TimeBucket::Month as i32,
        group_by: vec![pb::SummaryDimension::Action as i32, pb::SummaryDimension::Outcome as i32],
        ..Default::default()
    };
    assert_eq!(summed, client.summarize(acme).await.unwrap().into_inner().total_events);
    assert!(stdout.lines().next().unwrap().contains("\"outcome\""), "{stdout}");

    // The request's rules, each naming its field.
    let filter = Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() });
    let action = pb::SummaryDimension::Action as i32;
    for (request, field) in [
        (pb::SummarizeRequest { filter: filter.clone(), group_by: vec![action; 3], ..Default::default() }, "group_by"),
        (pb::SummarizeRequest { filter: filter.clone(), group_by: vec![0], ..Default::default() }, "group_by[0]"),
        (pb::SummarizeRequest { filter: filter.clone(), group_by: vec![99], ..Default::default() }, "group_by[0]"),
        (pb::SummarizeRequest { filter: filter.clone(), bucket: 9, ..Default::default() }, "bucket"),
        (pb::SummarizeRequest { filter: filter.clone(), limit: 10_001, ..Default::default() }, "limit"),
        (pb::SummarizeRequest { filter: None, ..Default::default() }, "filter"),
    ] {
        let status = client.summarize(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(&format!("{field}:")), "{field}: {}", status.message());
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarize_keeps_tenant_binding_and_scopes_and_is_meta_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.api_keys = vec![
        key_config("acme-reader", "acme", &[Scope::Query, Scope::Append]),
        key_config("acme-writer", "acme", &[Scope::Append]),
        key_config("platform", "*", &[Scope::Query]),
    ];
    let (running, _) = start(config).await;
    let url = format!("http://{}", running.addr);
    let mut writer = pb::ingest_service_client::IngestServiceClient::new(keyed_channel(&url, "acme-reader").await);
    writer.append(request(vec![event("acme", "user.login", "u1"), event("acme", "user.login", "u2")])).await.unwrap();
    let summarize = |tenant: &str| pb::SummarizeRequest {
        filter: Some(pb::EventFilter { tenant_id: tenant.into(), actions: vec!["user.login".into()], ..Default::default() }),
        group_by: vec![pb::SummaryDimension::ActorId as i32],
        ..Default::default()
    };
    let mut acme = QueryServiceClient::new(keyed_channel(&url, "acme-reader").await);
    let answer = acme.summarize(summarize("acme")).await.unwrap().into_inner();
    assert_eq!(answer.total_events, 2);
    let denied = acme.summarize(summarize("globex")).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("filter.tenant_id"), "{}", denied.message());
    let mut append_only = QueryServiceClient::new(keyed_channel(&url, "acme-writer").await);
    let denied = append_only.summarize(summarize("acme")).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    // Each call is recorded (`auditum.summarize`), refused attempts too.
    let mut platform = QueryServiceClient::new(keyed_channel(&url, "platform").await);
    let filter = pb::EventFilter { tenant_id: "acme".into(), actions: vec!["auditum.summarize".into()], ..Default::default() };
    let records =
        platform.query(pb::QueryRequest { filter: Some(filter), page_size: 100, ..Default::default() }).await.unwrap().into_inner().events;
    let outcomes: Vec<i32> = records.iter().map(|stored| stored.event.as_ref().unwrap().outcome.as_ref().unwrap().result).collect();
    assert!(
        outcomes.contains(&(pb::OutcomeResult::Success as i32)) && outcomes.contains(&(pb::OutcomeResult::Denied as i32)),
        "{outcomes:?}"
    );
    running.stop().await.unwrap();
}
