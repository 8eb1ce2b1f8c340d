//! CPU per event of the delivery thread's two jobs, on the streams bench's load (`cargo bench
//! --bench streams`): 20 alert rules counting failures per actor, and the JSON body of a stream.
//! `cargo run --release -p auditum-deliver --example deliver_cpu`

use auditum_deliver::alerts::Evaluator;
use auditum_deliver::body;
use auditum_deliver::config::{AlertRule, DEFAULT_MAX_GROUPS, GroupBy};
use auditum_format::event::{EventRecord, Seq};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let events: u64 = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(3_000_000);
    let rules: Vec<AlertRule> = (0..20)
        .map(|rule| AlertRule {
            name: format!("rule-{rule}"),
            tenant: "*".into(),
            actions: vec![format!("bench.action{rule}")],
            outcome: Some("failure".into()),
            group_by: GroupBy::ActorId,
            window: Duration::from_secs(60),
            threshold: 5,
            cooldown: None,
            sinks: vec!["hook".into()],
        })
        .collect();
    let start = auditum_format::time::now_micros();
    // As the bench: every event a new actor, 25 actions of which 20 have a rule, all failures.
    let records: Vec<Arc<EventRecord>> = (0..events)
        .map(|seq| {
            Arc::new(EventRecord {
                seq: Seq(seq),
                id: format!("{seq:032x}"),
                tenant_id: format!("tenant-{}", seq % 7),
                occurred_at: start + seq as i64 * 6,
                received_at: start + seq as i64 * 6,
                action: format!("bench.action{}", seq % 25),
                actor_id: format!("u0-{}-{}-{}", seq % 4, seq / 400, seq % 100),
                actor_type: Some("user".into()),
                outcome: "failure".into(),
                ..EventRecord::default()
            })
        })
        .collect();

    let max_groups = std::env::var("MAX_GROUPS").ok().and_then(|text| text.parse().ok()).unwrap_or(DEFAULT_MAX_GROUPS);
    let mut evaluator = Evaluator::new(rules, max_groups);
    let started = Instant::now();
    let mut fired = 0;
    for record in &records {
        fired += evaluator.observe(record).len();
    }
    let rules_ns = started.elapsed().as_nanos() as f64 / events as f64;

    let started = Instant::now();
    let mut bytes = 0;
    for chunk in records.chunks(1000) {
        let body = body::json_body("hook", "default", chunk);
        bytes += body.len();
        std::hint::black_box(body::signature(b"bench-secret", &body));
    }
    let body_ns = started.elapsed().as_nanos() as f64 / events as f64;
    println!(
        "{events} events: rules {rules_ns:.0} ns/event ({fired} alerts), body and signature {body_ns:.0} ns/event ({} bytes/event)",
        bytes as u64 / events
    );
}
