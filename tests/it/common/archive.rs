//! A generated archive for the query tests: several tenants (skewed), late events, several seals,
//! an open batch left unsealed; and an independent brute-force reading of the EventFilter.

use auditum_batch as batch;
use auditum_format::event::EventRecord;
use auditum_proto::pb;
use auditum_proto::pb::ingest_service_client::IngestServiceClient;
use auditum_server::RunningServer;
use rand::Rng;
use rand::rngs::StdRng;
use tonic::transport::Channel;

pub const TENANTS: [(&str, u32); 5] = [("acme", 50), ("globex", 25), ("initech", 12), ("umbrella", 8), ("hooli", 5)];
pub const ACTIONS: [&str; 12] = [
    "user.login",
    "user.logout",
    "user.role.updated",
    "user.password.changed",
    "billing.invoice.paid",
    "billing.invoice.voided",
    "data.export.started",
    "data.export.finished",
    "api_key.created",
    "api_key.revoked",
    "admin.settings.changed",
    "auth.mfa.failed",
];
pub const ACTION_PREFIXES: [&str; 7] = ["user.*", "user.role.*", "billing.*", "billing.invoice.*", "data.*", "api_key.*", "auth.*"];
const DAY_MICROS: i64 = 86_400_000_000;

/// Small row groups and pages, so the statistics, bloom filters, actor index and page index all
/// get used.
pub fn archive_config(dir: &std::path::Path) -> auditum_server::config::Config {
    // Queries are compared with a scan of the archive: no meta-audit events of their own.
    auditum_server::config::Config { row_group_rows: 500, page_rows: 50, meta_audit: false, ..super::test_config(dir) }
}

pub async fn query_client(running: &RunningServer) -> pb::query_service_client::QueryServiceClient<Channel> {
    pb::query_service_client::QueryServiceClient::connect(format!("http://{}", running.addr))
        .await
        .unwrap()
        .max_decoding_message_size(64 * 1024 * 1024)
}

fn weighted_tenant(rng: &mut StdRng) -> &'static str {
    let total: u32 = TENANTS.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.gen_range(0..total);
    for (tenant, weight) in TENANTS {
        if pick < weight {
            return tenant;
        }
        pick -= weight;
    }
    TENANTS[0].0
}

/// Skewed towards small numbers, like real actors.
fn skewed(rng: &mut StdRng, n: u32) -> u32 {
    let x: f64 = rng.r#gen::<f64>();
    ((x * x * x) * n as f64) as u32
}

pub fn random_event(rng: &mut StdRng, occurred_at: i64) -> pb::AuditEvent {
    let string = |value: String| value;
    let actor_type = rng.gen_range(0..6);
    let ip = if rng.gen_bool(0.5) {
        format!("10.0.{}.{}", rng.gen_range(0..4), rng.gen_range(0..40))
    } else {
        // Upper-case, non-canonical on the wire: stored canonical.
        format!("2001:DB8::{:X}", rng.gen_range(0..200))
    };
    let mut metadata = prost_types::Struct::default();
    if rng.gen_bool(0.6) {
        metadata.fields.insert(
            "region".into(),
            prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(["eu", "us", "ap"][rng.gen_range(0..3)].into())) },
        );
        metadata
            .fields
            .insert("attempt".into(), prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(rng.gen_range(1..5) as f64)) });
        metadata.fields.insert(
            "note".into(),
            prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("comma, \"quote\"\nnewline".into())) },
        );
    }
    pb::AuditEvent {
        subject_id: String::new(),
        id: String::new(),
        tenant_id: weighted_tenant(rng).to_string(),
        occurred_at: Some(auditum_proto::convert::timestamp_from_micros(occurred_at)),
        action: ACTIONS[skewed(rng, ACTIONS.len() as u32) as usize].to_string(),
        actor: Some(pb::Actor {
            id: format!("user-{}", skewed(rng, 40)),
            r#type: actor_type,
            name: if rng.gen_bool(0.5) { "Ann Example".into() } else { String::new() },
        }),
        target: rng.gen_bool(0.7).then(|| pb::Target {
            r#type: ["document", "invoice", "user", "project"][rng.gen_range(0..4)].into(),
            id: format!("t-{}", rng.gen_range(0..60)),
            name: String::new(),
        }),
        outcome: Some(pb::Outcome {
            result: [1, 1, 1, 1, 1, 1, 1, 1, 2, 3][rng.gen_range(0..10)],
            error_code: if rng.gen_bool(0.1) { "E42".into() } else { String::new() },
            reason: String::new(),
        }),
        context: rng.gen_bool(0.8).then(|| pb::Context {
            request_id: string(format!("req-{}", rng.gen_range(0..2000))),
            correlation_id: format!("corr-{}", rng.gen_range(0..300)),
            session_id: if rng.gen_bool(0.7) { format!("sess-{}", rng.gen_range(0..100)) } else { String::new() },
            source_ip: ip,
            user_agent: "Mozilla/5.0".into(),
            service: "web".into(),
        }),
        before: None,
        after: None,
        metadata: (!metadata.fields.is_empty()).then_some(metadata),
    }
}

/// Appends `rounds` rounds of `per_round` events over 30 days (a tenth of them late, falling in
/// earlier days), sealing after each round but the last, which stays unsealed. Returns the
/// number of events acknowledged.
pub async fn build(
    running: &RunningServer,
    client: &mut IngestServiceClient<Channel>,
    rng: &mut StdRng,
    rounds: i64,
    per_round: usize,
) -> usize {
    let base = auditum_format::time::now_micros() - 30 * DAY_MICROS;
    let span = 30 * DAY_MICROS / rounds;
    let mut acknowledged = 0;
    for round in 0..rounds {
        let events: Vec<pb::AuditEvent> = (0..per_round)
            .map(|_| {
                let occurred_at = if round > 0 && rng.gen_bool(0.1) {
                    base + rng.gen_range(0..round * span)
                } else {
                    base + round * span + rng.gen_range(0..span)
                };
                random_event(rng, occurred_at)
            })
            .collect();
        for chunk in events.chunks(1000) {
            let response = client.append(super::request(chunk.to_vec())).await.expect("append").into_inner();
            acknowledged += response.results.len();
        }
        if round + 1 < rounds {
            for log in running.logs.all() {
                log.seal_now().await.expect("seal");
            }
        }
    }
    acknowledged
}

/// Every event of the default log by a plain scan: every batch read whole, then the unsealed ones.
pub async fn all_events(running: &RunningServer) -> (Vec<(EventRecord, Option<u64>)>, usize) {
    let log = running.logs.by_name("default").expect("default log");
    let snapshot = log.read_snapshot("", Default::default());
    let mut out = Vec::new();
    for entry in &snapshot.entries {
        let bytes = log.store().get(&entry.object, entry.version.as_deref()).await.expect("batch");
        for row in batch::read_batch(bytes).expect("batch decodes") {
            out.push((row.record, Some(entry.index)));
        }
    }
    for record in &snapshot.unsealed {
        out.push((record.as_ref().clone(), None));
    }
    (out, snapshot.checkpoint_size)
}

fn nanos(timestamp: &prost_types::Timestamp) -> i128 {
    timestamp.seconds as i128 * 1_000_000_000 + timestamp.nanos as i128
}

/// The filter semantics of docs/API.md, written independently of the server's.
pub fn brute_force_matches(filter: &pb::EventFilter, record: &EventRecord) -> bool {
    let occurred_nanos = record.occurred_at as i128 * 1000;
    let equals = |wanted: &str, stored: Option<&str>| wanted.is_empty() || stored == Some(wanted);
    let enum_name = |name: &str, prefix: &str| name.trim_start_matches(prefix).to_ascii_lowercase();
    record.tenant_id == filter.tenant_id
        && filter.start_time.as_ref().is_none_or(|start| occurred_nanos >= nanos(start))
        && filter.end_time.as_ref().is_none_or(|end| occurred_nanos < nanos(end))
        && equals(&filter.actor_id, Some(&record.actor_id))
        && (filter.actor_type == 0
            || record.actor_type.as_deref() == Some(enum_name(filter.actor_type().as_str_name(), "ACTOR_TYPE_").as_str()))
        && (filter.actions.is_empty()
            || filter.actions.iter().any(|action| match action.strip_suffix('*') {
                Some(prefix) => record.action.starts_with(prefix),
                None => &record.action == action,
            }))
        && equals(&filter.target_type, record.target_type.as_deref())
        && equals(&filter.target_id, record.target_id.as_deref())
        && (filter.outcome == 0 || record.outcome == enum_name(filter.outcome().as_str_name(), "OUTCOME_RESULT_"))
        && equals(&filter.request_id, record.request_id.as_deref())
        && equals(&filter.correlation_id, record.correlation_id.as_deref())
        && equals(&filter.session_id, record.session_id.as_deref())
        && (filter.source_ip.is_empty()
            || record.source_ip.as_deref().and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                == filter.source_ip.parse::<std::net::IpAddr>().ok())
}

/// A random filter: conditions drawn from a random event's values (sometimes another tenant's,
/// to probe isolation), time windows, exact actions and prefixes.
pub fn random_filter(rng: &mut StdRng, events: &[(EventRecord, Option<u64>)]) -> pb::EventFilter {
    let (seed, _) = &events[rng.gen_range(0..events.len())];
    let (other, _) = &events[rng.gen_range(0..events.len())];
    let tenant = match rng.gen_range(0..20) {
        0 => "nobody".to_string(),
        1..=4 => TENANTS[rng.gen_range(0..TENANTS.len())].0.to_string(),
        _ => seed.tenant_id.clone(),
    };
    // Usually the seed's values; sometimes another event's (often another tenant's).
    let source = if rng.gen_bool(0.2) { other } else { seed };
    let mut filter = pb::EventFilter { tenant_id: tenant, ..Default::default() };
    let mut pick = |probability: f64| rng.gen_bool(probability);
    if pick(0.3) {
        filter.actor_id = source.actor_id.clone();
    }
    if pick(0.1) {
        filter.actor_type = source
            .actor_type
            .as_deref()
            .and_then(|name| auditum_proto::convert::parse_actor_type(name).ok())
            .unwrap_or(pb::ActorType::User as i32);
    }
    if pick(0.15) {
        filter.target_type = source.target_type.clone().unwrap_or_default();
    }
    if pick(0.15) {
        filter.target_id = source.target_id.clone().unwrap_or_default();
    }
    if pick(0.2) {
        filter.outcome = auditum_proto::convert::parse_outcome(&source.outcome).unwrap_or(pb::OutcomeResult::Success as i32);
    }
    if pick(0.1) {
        filter.request_id = source.request_id.clone().unwrap_or_default();
    }
    if pick(0.1) {
        filter.correlation_id = source.correlation_id.clone().unwrap_or_default();
    }
    if pick(0.1) {
        filter.session_id = source.session_id.clone().unwrap_or_default();
    }
    if pick(0.1) {
        filter.source_ip = source.source_ip.clone().unwrap_or_default().to_uppercase();
    }
    if rng.gen_bool(0.35) {
        let count = rng.gen_range(1..=3);
        filter.actions = (0..count)
            .map(|_| {
                if rng.gen_bool(0.5) {
                    ACTIONS[rng.gen_range(0..ACTIONS.len())].to_string()
                } else {
                    ACTION_PREFIXES[rng.gen_range(0..ACTION_PREFIXES.len())].to_string()
                }
            })
            .collect();
    }
    if rng.gen_bool(0.5) {
        let centre = seed.occurred_at;
        let width = rng.gen_range(1..(10 * DAY_MICROS));
        let start = centre - rng.gen_range(0..width);
        let nanos_part = |rng: &mut StdRng| if rng.gen_bool(0.2) { rng.gen_range(0..1_000_000_000) } else { 0 };
        match rng.gen_range(0..4) {
            0 => filter.start_time = Some(prost_types::Timestamp { seconds: start.div_euclid(1_000_000), nanos: nanos_part(rng) }),
            1 => filter.end_time = Some(prost_types::Timestamp { seconds: (start + width).div_euclid(1_000_000), nanos: nanos_part(rng) }),
            2 => {
                // Exactly an event's microsecond: the start is inclusive.
                filter.start_time = Some(auditum_proto::convert::timestamp_from_micros(centre));
                filter.end_time = Some(auditum_proto::convert::timestamp_from_micros(centre + width));
            }
            _ => {
                filter.start_time = Some(auditum_proto::convert::timestamp_from_micros(start));
                filter.end_time = Some(auditum_proto::convert::timestamp_from_micros(start + width));
            }
        }
    }
    filter
}
