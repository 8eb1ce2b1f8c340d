//! Subscribe (DESIGN §10) against the real binary: subscribers that drop their stream at random
//! points and resume with their last cursor receive exactly the brute-force list of matching
//! events, in seq order, across seals and a kill -9 restart; a stalled subscriber holds the
//! server's memory to a bound and then still receives everything; a key bound to another tenant
//! is refused; the CLI prints events and its cursor.

use crate::common::*;
use auditum_engine::auth::Scope;
use auditum_proto::pb;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TENANTS: [&str; 2] = ["acme", "globex"];
const ACTIONS: [&str; 4] = ["user.login", "user.logout", "doc.read", "doc.share"];

/// Every stored event of `tenant` (sealed or not), the server's own `auditum.*` records included.
async fn everything(url: &str, tenant: &str) -> Vec<pb::StoredEvent> {
    let channel = auditum_client::channel(url, &Default::default()).await.unwrap();
    let filter = pb::EventFilter { tenant_id: tenant.into(), ..Default::default() };
    let mut pager = auditum_client::query::Pager::new(channel, filter, false);
    let mut events = Vec::new();
    while let Some(page) = pager.next_page(1000).await.unwrap() {
        events.extend(page.events);
    }
    events.sort_by_key(|stored| stored.seq);
    events
}

/// The filter's rules, written here independently of the server's.
fn brute_force_matches(filter: &pb::EventFilter, stored: &pb::StoredEvent) -> bool {
    let event = stored.event.as_ref().unwrap();
    let action_ok = filter.actions.is_empty()
        || filter.actions.iter().any(|wanted| match wanted.strip_suffix(".*") {
            Some(prefix) => event.action.starts_with(&format!("{prefix}.")),
            None => &event.action == wanted,
        });
    let outcome_ok = filter.outcome == 0 || event.outcome.as_ref().map(|outcome| outcome.result) == Some(filter.outcome);
    let actor_ok = filter.actor_id.is_empty() || event.actor.as_ref().map(|actor| actor.id.as_str()) == Some(filter.actor_id.as_str());
    event.tenant_id == filter.tenant_id && action_ok && outcome_ok && actor_ok
}

fn random_event(rng: &mut StdRng) -> pb::AuditEvent {
    let mut event = event(TENANTS[rng.gen_range(0..2)], ACTIONS[rng.gen_range(0..4)], &format!("u{}", rng.gen_range(0..4)));
    let result = if rng.gen_bool(0.3) { pb::OutcomeResult::Failure } else { pb::OutcomeResult::Success };
    event.outcome = Some(pb::Outcome { result: result as i32, ..Default::default() });
    event
}

fn random_filter(rng: &mut StdRng) -> pb::EventFilter {
    let mut filter = pb::EventFilter { tenant_id: TENANTS[rng.gen_range(0..2)].into(), ..Default::default() };
    match rng.gen_range(0..3) {
        0 => {}
        1 => filter.actions = vec!["user.*".into()],
        _ => filter.actions = vec!["doc.read".into(), "user.logout".into()],
    }
    if rng.gen_bool(0.5) {
        filter.outcome = pb::OutcomeResult::Failure as i32;
    }
    if rng.gen_bool(0.3) {
        filter.actor_id = "u1".into();
    }
    filter
}

/// What one subscriber has seen: its events and its cursor.
#[derive(Default)]
struct Seen {
    events: Vec<pb::StoredEvent>,
    cursor: Option<u64>,
}

/// Subscribes with `filter`, drops the stream after a random number of messages and resumes
/// from its cursor, until told to stop; survives the server going away (it follows `url`).
async fn resuming_subscriber(
    url: Arc<Mutex<String>>,
    filter: pb::EventFilter,
    seed: u64,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let current = url.lock().unwrap().clone();
        let Ok(channel) = tonic::transport::Endpoint::from_shared(current).unwrap().connect().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let start = match seen.lock().unwrap().cursor {
            Some(cursor) => pb::subscribe_request::Start::AfterSeq(cursor),
            None => pb::subscribe_request::Start::FromBeginning(true),
        };
        let request = pb::SubscribeRequest { filter: Some(filter.clone()), start: Some(start) };
        let Ok(response) = QueryServiceClient::new(channel).subscribe(request).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = response.into_inner();
        let take = rng.gen_range(1..40);
        for _ in 0..take {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let message = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
            match message {
                Ok(Ok(Some(pb::SubscribeResponse { item: Some(pb::subscribe_response::Item::Event(stored)) }))) => {
                    let mut seen = seen.lock().unwrap();
                    seen.cursor = Some(stored.seq);
                    seen.events.push(stored);
                }
                Ok(Ok(Some(pb::SubscribeResponse { item: Some(pb::subscribe_response::Item::Progress(progress)) }))) => {
                    seen.lock().unwrap().cursor = Some(progress.cursor);
                }
                Ok(Ok(Some(_))) => {}
                // The server went away (killed) or the stream ended: resume.
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => panic!("no message within 10 s: progress must come at least every 5 s"),
            }
        }
        // Dropping the stream here is the disconnect.
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_subscribers_get_exactly_the_matching_events_across_seals_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["--seal-interval", "1s"].iter().map(|arg| arg.to_string()).collect();
    let (mut server, first_url) = spawn_binary(dir.path(), &args).await;
    let url = Arc::new(Mutex::new(first_url));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let filters: Vec<pb::EventFilter> = (0..4).map(|_| random_filter(&mut rng)).collect();
    // One subscriber whose filter matches everything of a tenant, whatever the draw.
    let filters: Vec<pb::EventFilter> =
        filters.into_iter().chain([pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }]).collect();
    let seen: Vec<Arc<Mutex<Seen>>> = filters.iter().map(|_| Arc::default()).collect();
    let subscribers: Vec<_> = filters
        .iter()
        .zip(&seen)
        .enumerate()
        .map(|(index, (filter, seen))| {
            tokio::spawn(resuming_subscriber(url.clone(), filter.clone(), index as u64, seen.clone(), stop.clone()))
        })
        .collect();

    // Appends, with seals every second, and a kill -9 and restart half way.
    let mut last_appended = 0;
    for round in 0..40 {
        if round == 20 {
            server.start_kill().unwrap();
            server.wait().await.unwrap();
            let (restarted, new_url) = spawn_binary(dir.path(), &args).await;
            server = restarted;
            *url.lock().unwrap() = new_url;
        }
        let current = url.lock().unwrap().clone();
        let mut client = auditum_client::connect(&current).await.unwrap();
        let events: Vec<pb::AuditEvent> = (0..15).map(|_| random_event(&mut rng)).collect();
        let answer = client.append(request(events)).await.unwrap().into_inner();
        last_appended = answer.results.iter().map(|result| result.seq).max().unwrap_or(last_appended);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..120))).await;
    }

    // The brute-force lists, from everything stored (the subscriptions' own records included).
    let current = url.lock().unwrap().clone();
    let mut all = Vec::new();
    for tenant in TENANTS {
        all.extend(everything(&current, tenant).await);
    }
    // Up to our last append, `all` (read after it) has every record: later ones (these reads' own
    // records) are left out of the comparison.
    let last_seq = last_appended;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let caught_up = seen.iter().all(|seen| seen.lock().unwrap().cursor.is_some_and(|cursor| cursor >= last_seq));
        if caught_up {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "subscribers did not reach seq {last_seq}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for subscriber in subscribers {
        subscriber.await.unwrap();
    }
    for (filter, seen) in filters.iter().zip(&seen) {
        let expected: Vec<u64> = all.iter().filter(|stored| brute_force_matches(filter, stored)).map(|stored| stored.seq).collect();
        let got: Vec<u64> = seen.lock().unwrap().events.iter().map(|stored| stored.seq).filter(|seq| *seq <= last_seq).collect();
        assert!(!expected.is_empty(), "a filter that matches nothing proves nothing: {filter:?}");
        assert_eq!(got, expected, "filter {filter:?}");
        // Each event is the stored one, and says whether it was sealed.
        for stored in seen.lock().unwrap().events.iter().filter(|stored| stored.seq <= last_seq) {
            let original = all.iter().find(|candidate| candidate.seq == stored.seq).unwrap();
            assert_eq!(stored.event, original.event);
            assert_eq!(stored.leaf_hash, original.leaf_hash);
        }
    }
    terminate(&mut server).await;
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Appends `total` events of tenant acme in calls of 1000, each with a 1 KiB actor name (so that
/// holding events shows in the server's memory); returns the server's RSS growth.
async fn append_many(url: &str, pid: u32, total: usize) -> u64 {
    let before = rss_bytes(pid);
    let mut client = auditum_client::connect(url).await.unwrap();
    for chunk in 0..total / 1000 {
        let events = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let mut event = event("acme", "doc.read", &format!("u{}", n % 50));
                event.actor.as_mut().unwrap().name = format!("{n:0>1024}");
                event
            })
            .collect();
        client.append(request(events)).await.unwrap();
    }
    rss_bytes(pid).saturating_sub(before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_holds_memory_to_a_bound_and_then_gets_everything() {
    const ROUND: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    // What a follower holds at once is one committed batch (the step it read, and the log's kept
    // recently sealed batch): capped at 10,000 events, it is the same on any machine, where a
    // seal interval alone lets a fast one gather a much larger batch.
    let args: Vec<String> = ["--seal-interval", "1s", "--batch-max-events", "10000"].iter().map(|arg| arg.to_string()).collect();
    let (mut server, url) = spawn_binary(dir.path(), &args).await;
    let pid = server.id().unwrap();

    // Warm-up: the allocator and the server's buffers reach their working size.
    append_many(&url, pid, ROUND).await;
    // The peer: two rounds of appends with no subscriber.
    let without = append_many(&url, pid, 2 * ROUND).await;
    // A subscriber from the beginning that reads nothing: one round puts it far behind, then two
    // more rounds are measured as the peer was.
    let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let filter = pb::EventFilter { tenant_id: "acme".into(), ..Default::default() };
    let request = pb::SubscribeRequest { filter: Some(filter), start: Some(pb::subscribe_request::Start::FromBeginning(true)) };
    let mut stream = QueryServiceClient::new(channel).max_decoding_message_size(16 << 20).subscribe(request).await.unwrap().into_inner();
    append_many(&url, pid, ROUND).await;
    let with = append_many(&url, pid, 2 * ROUND).await;
    eprintln!("rss growth over {} appends: {} MiB without a subscriber, {} MiB with a stalled one", 2 * ROUND, without >> 20, with >> 20);
    // Buffering what the subscriber has not taken would grow with every event appended: over
    // 200,000 events of more than 1 KiB, more than 200 MiB. Bounded, the subscription holds a
    // batch of 10,000 events (~10 MiB) and a few messages, whatever was appended (measured: up to
    // 28 MiB more than the peer; buffering everything: 428 MiB).
    assert!(with < without + (96 << 20), "a stalled subscriber grew the server by {} MiB (peer {} MiB)", with >> 20, without >> 20);

    // It was never dropped: it now receives every event (the 1 + 2 + 1 + 2 rounds), in seq
    // order, none missing.
    let mut next_expected = None;
    let mut received = 0;
    while received < 6 * ROUND {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.expect("the stream keeps flowing").unwrap();
        if let Some(pb::SubscribeResponse { item: Some(pb::subscribe_response::Item::Event(stored)) }) = message {
            if stored.event.as_ref().unwrap().action.starts_with("auditum.") {
                continue;
            }
            if let Some(expected) = next_expected {
                assert!(stored.seq >= expected, "seq order: {} after {}", stored.seq, expected - 1);
            }
            next_expected = Some(stored.seq + 1);
            received += 1;
        }
    }
    terminate(&mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_key_is_refused_and_the_cli_prints_events_and_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.api_keys = vec![key_config("acme-reader", "acme", &[Scope::Query]), key_config("writer", "*", &[Scope::Append, Scope::Query])];
    let running = auditum_server::start(config).await.unwrap();
    let url = format!("http://{}", running.addr);
    let writer = keyed_channel(&url, "writer").await;
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(writer);
    ingest
        .append(request(vec![event("acme", "user.login", "u1"), event("globex", "user.login", "g1"), event("acme", "doc.read", "u2")]))
        .await
        .unwrap();
    // Seqs 0-2 sealed, seq 3 not: the stream reads both the archive and memory.
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    ingest.append(request(vec![event("acme", "user.logout", "u1")])).await.unwrap();

    let reader = keyed_channel(&url, "acme-reader").await;
    let other = pb::SubscribeRequest {
        filter: Some(pb::EventFilter { tenant_id: "globex".into(), ..Default::default() }),
        start: Some(pb::subscribe_request::Start::FromBeginning(true)),
    };
    let refused = QueryServiceClient::new(reader).subscribe(other).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    let key = secret("writer");
    let (stdout, stderr, success) =
        run_binary(&["subscribe", "--server", &url, "--api-key", &key, "--tenant", "acme", "--from-beginning", "--json", "--limit", "3"]);
    assert!(success, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let seen: Vec<(&str, u64, bool)> = lines
        .iter()
        .map(|line| (line["action"].as_str().unwrap(), line["seq"].as_u64().unwrap(), line["sealed"].as_bool().unwrap()))
        .collect();
    assert_eq!(seen, [("user.login", 0, true), ("doc.read", 2, true), ("user.logout", 3, false)], "{stdout}");
    assert!(stderr.contains("cursor: 3 (limit reached; continue with --after-seq 3)"), "{stderr}");
    // Continuing from the cursor: the next acme event is the refused subscription's record.
    let (stdout, stderr, success) =
        run_binary(&["subscribe", "--server", &url, "--api-key", &key, "--tenant", "acme", "--after-seq", "3", "--json", "--limit", "1"]);
    assert!(success, "{stderr}");
    let next: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((next["action"].as_str(), next["outcome"].as_str()), (Some("auditum.subscribe"), Some("denied")), "{next}");
    assert!(next["seq"].as_u64().unwrap() > 3);
    // A graceful stop ends open subscriptions (UNAVAILABLE, naming the cursor) instead of
    // waiting on them.
    let channel = keyed_channel(&url, "writer").await;
    let open = pb::SubscribeRequest {
        filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
        start: Some(pb::subscribe_request::Start::AfterSeq(3)),
    };
    let mut stream = QueryServiceClient::new(channel).subscribe(open).await.unwrap().into_inner();
    let stopped = tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(8), running.stop()).await });
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(8), stream.message()).await.expect("the stream ends within 8 s") {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream must end with UNAVAILABLE, not as if complete"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("resume with after_seq"), "{}", ended.message());
    stopped.await.unwrap().expect("the server stops without waiting on the subscription").unwrap();
}
