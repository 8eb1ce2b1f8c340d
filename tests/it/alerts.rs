//! Alert rules and delivery (DESIGN §11) against the real binary and receivers on 127.0.0.1: an
//! alert fires exactly once for 5 failed logins within the window (not for 4, not spread wider),
//! is an event in the archive with a verifiable proof, and reaches the webhook HMAC-signed; a
//! receiver answering 500 for 30 s and a kill -9 mid-delivery lose nothing and keep seq order;
//! a Splunk HEC receiver parses what it gets as HEC does.

use crate::common::*;
use hmac::{Hmac, Mac};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const SECRET: &str = "whsec-test-0123456789";

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP/1.1 receiver on 127.0.0.1 that records every request and answers 200, or 500 while
/// `failing` is set.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
    pub(crate) failing: Arc<AtomicBool>,
    /// Milliseconds to wait before answering (a slow receiver).
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Receiver { url, received: Arc::default(), failing: Arc::default(), delay_ms: Arc::default() };
        let state = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(state.clone().serve(stream));
            }
        });
        receiver
    }

    async fn serve(self, stream: tokio::net::TcpStream) {
        let mut reader = BufReader::new(stream);
        loop {
            let mut headers = BTreeMap::new();
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let trimmed = line.trim_end();
                if trimmed.is_empty() {
                    break;
                }
                if let Some((name, value)) = trimmed.split_once(':') {
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                }
            }
            let length: usize = headers.get("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            let delay = self.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let failing = self.failing.load(Ordering::SeqCst);
            if !failing {
                self.received.lock().unwrap().push(Received { headers, body });
            }
            let answer: &[u8] = if failing {
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
            };
            if reader.get_mut().write_all(answer).await.is_err() {
                return;
            }
        }
    }

    /// Every event object received, in arrival order, from json bodies.
    pub(crate) fn json_events(&self) -> Vec<serde_json::Value> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .flat_map(|request| {
                let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                body["events"].as_array().cloned().unwrap_or_default()
            })
            .collect()
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn config_file(dir: &std::path::Path, text: &str) -> Vec<String> {
    let path = dir.join("auditum.toml");
    std::fs::write(&path, text).unwrap();
    vec!["--config".into(), path.display().to_string(), "--seal-interval".into(), "1s".into()]
}

pub(crate) async fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {seconds} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn login(tenant: &str, actor: &str, at: i64) -> auditum_proto::pb::AuditEvent {
    let mut event = event(tenant, "user.login", actor);
    event.occurred_at = Some(timestamp(at));
    event.outcome = Some(auditum_proto::pb::Outcome { result: auditum_proto::pb::OutcomeResult::Failure as i32, ..Default::default() });
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_logins_fire_one_signed_alert_that_is_in_the_record() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let args = config_file(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"secops\"\nurl = \"{}\"\nformat = \"json\"\nsecret_env = \"AUDITUM_TEST_SINK\"\n\n\
             [[alerts]]\nname = \"brute-force\"\ntenant = \"*\"\nactions = [\"user.login\"]\noutcome = \"failure\"\n\
             group_by = \"actor_id\"\nwindow = \"5m\"\nthreshold = 5\nsinks = [\"secops\"]\n",
            receiver.url
        ),
    );
    let (mut server, url, _) = spawn_binary_with_env(dir.path(), &args, &[("AUDITUM_TEST_SINK", SECRET)]).await;
    let mut client = auditum_client::connect(&url).await.unwrap();
    let now = now_micros();
    let minute = 60_000_000;
    // mallory: 6 within 3 minutes (one alert, the sixth in the cooldown); eve: 4; trudy: 5 spread
    // over 8 minutes; all in tenant acme, mallory's also once in globex (counted apart).
    let mut events = Vec::new();
    events.extend((0..6).map(|i| login("acme", "mallory", now - 3 * minute + i * minute / 2)));
    events.extend((0..4).map(|i| login("acme", "eve", now - minute + i)));
    events.extend((0..5).map(|i| login("acme", "trudy", now - 8 * minute + i * 2 * minute)));
    events.push(login("globex", "mallory", now));
    client.append(request(events)).await.unwrap();

    wait_for("the alert reaches the webhook", 30, || receiver.json_events().iter().any(|event| event["action"] == "auditum.alert")).await;
    // Give the others every chance to (wrongly) fire, through a seal too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts: Vec<serde_json::Value> = receiver.json_events().into_iter().filter(|event| event["action"] == "auditum.alert").collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(
        (alert["tenant_id"].as_str(), alert["actor_id"].as_str(), alert["actor_type"].as_str()),
        (Some("acme"), Some("brute-force"), Some("system"))
    );
    assert_eq!(
        (alert["target_type"].as_str(), alert["target_id"].as_str(), alert["log"].as_str()),
        (Some("actor_id"), Some("mallory"), Some("default"))
    );
    let metadata: serde_json::Value = serde_json::from_str(alert["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(
        (metadata["rule"].as_str(), metadata["count"].as_u64(), metadata["threshold"].as_u64()),
        (Some("brute-force"), Some(5), Some(5))
    );
    assert_eq!(
        (metadata["window_seconds"].as_u64(), metadata["first_seq"].as_u64(), metadata["last_seq"].as_u64()),
        (Some(300), Some(0), Some(4))
    );
    // Every request is signed with the sink's secret, over the exact body.
    for request in receiver.received.lock().unwrap().iter() {
        assert_eq!(request.headers.get("x-auditum-signature"), Some(&sign(&request.body)));
        assert!(request.headers.get("x-auditum-delivery").is_some_and(|id| !id.is_empty()));
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["sink"], "secops");
    }

    // The alert is an event in the archive: queryable, sealed, and its proof verifies offline.
    let seq = alert["seq"].as_u64().unwrap();
    let stored = wait_sealed(&url, "acme", seq).await;
    assert_eq!(stored.event.as_ref().unwrap().action, "auditum.alert");
    let proof = dir.path().join("alert-proof.json");
    let (_, stderr, success) = run_binary(&["proof", "--server", &url, "--seq", &seq.to_string(), "--out", proof.to_str().unwrap()]);
    assert!(success, "{stderr}");
    let key = std::fs::read_to_string(dir.path().join("keys/default.vkey")).unwrap();
    let (stdout, _, success) = run_binary(&["verify-proof", proof.to_str().unwrap(), "--trusted-key", key.trim()]);
    assert!(success && stdout.starts_with("OK"), "{stdout}");
    terminate(&mut server).await;
}

/// The stored event `seq` of `tenant` once it is sealed.
async fn wait_sealed(url: &str, tenant: &str, seq: u64) -> auditum_proto::pb::StoredEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let channel = auditum_client::channel(url, &Default::default()).await.unwrap();
        let filter = auditum_proto::pb::EventFilter { tenant_id: tenant.into(), ..Default::default() };
        let mut pager = auditum_client::query::Pager::new(channel, filter, false);
        while let Some(page) = pager.next_page(1000).await.unwrap() {
            if let Some(stored) = page.events.into_iter().find(|stored| stored.seq == seq && stored.sealed) {
                return stored;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "seq {seq} sealed within 30 s");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Ids of our events (not the server's own records) in the order received; a repeat must be a
/// whole repeated delivery, so after removing repeats the order is the seq order.
fn delivered_in_order(events: &[serde_json::Value]) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut seqs = Vec::new();
    for event in events.iter().filter(|event| event["action"] == "doc.read") {
        let seq = event["seq"].as_u64().unwrap();
        if seen.insert(seq) {
            seqs.push(seq);
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_survives_a_failing_receiver_and_a_kill_in_order_and_hec_parses() {
    let webhook = Receiver::start().await;
    let hec = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let args = config_file(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"secops\"\nurl = \"{}\"\nformat = \"json\"\nsecret_env = \"AUDITUM_TEST_SINK\"\n\n\
             [[sinks]]\nname = \"splunk\"\nurl = \"{}\"\nformat = \"splunk_hec\"\nsecret_env = \"AUDITUM_TEST_HEC\"\n\n\
             [[streams]]\nname = \"siem\"\ntenant = \"*\"\nsink = \"secops\"\n\n\
             [[streams]]\nname = \"splunk-docs\"\ntenant = \"acme\"\nactions = [\"doc.*\"]\nsink = \"splunk\"\n",
            webhook.url, hec.url
        ),
    );
    let env = [("AUDITUM_TEST_SINK", SECRET), ("AUDITUM_TEST_HEC", "hec-token-1")];
    let (mut server, url, _) = spawn_binary_with_env(dir.path(), &args, &env).await;

    // The webhook answers 500 for 30 s while events arrive; then it recovers.
    webhook.failing.store(true, Ordering::SeqCst);
    let mut appended = Vec::new();
    let mut client = auditum_client::connect(&url).await.unwrap();
    let failing_until = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < failing_until {
        let events = (0..10).map(|i| event(["acme", "globex"][i % 2], "doc.read", "u1")).collect();
        let answer = client.append(request(events)).await.unwrap().into_inner();
        appended.extend(answer.results.iter().map(|result| result.seq));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(webhook.received.lock().unwrap().is_empty(), "nothing is acknowledged while it fails");
    webhook.failing.store(false, Ordering::SeqCst);
    wait_for("the backlog arrives after the receiver recovers", 60, || delivered_in_order(&webhook.json_events()).len() >= appended.len())
        .await;
    assert_eq!(delivered_in_order(&webhook.json_events()), appended, "every event, in seq order");

    // kill -9 while a large backlog is being delivered (the receiver takes 300 ms per request, so
    // 2,000 events take a few requests), then restart: delivery resumes from the cursor, and
    // nothing is missing.
    webhook.delay_ms.store(300, Ordering::SeqCst);
    let before_backlog = appended.len();
    for _ in 0..20 {
        let events = (0..100).map(|i| event(["acme", "globex"][i % 2], "doc.read", "u2")).collect();
        let answer = client.append(request(events)).await.unwrap().into_inner();
        appended.extend(answer.results.iter().map(|result| result.seq));
    }
    wait_for("delivery under way", 30, || delivered_in_order(&webhook.json_events()).len() > before_backlog).await;
    let delivered_at_kill = delivered_in_order(&webhook.json_events()).len();
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    assert!(delivered_at_kill < appended.len(), "killed mid-delivery: {delivered_at_kill} of {}", appended.len());
    webhook.delay_ms.store(0, Ordering::SeqCst);
    let (mut server, _, _) = spawn_binary_with_env(dir.path(), &args, &env).await;
    wait_for("everything arrives after the restart", 60, || delivered_in_order(&webhook.json_events()).len() >= appended.len()).await;
    assert_eq!(delivered_in_order(&webhook.json_events()), appended, "every event once at least, in seq order");
    // A repeat is a whole repeated delivery: same id, same body.
    let requests = webhook.received.lock().unwrap().clone();
    let mut by_id: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for request in &requests {
        let id = request.headers["x-auditum-delivery"].clone();
        if let Some(body) = by_id.get(&id) {
            assert_eq!(body, &request.body, "a repeated delivery id carries the same events");
        }
        by_id.insert(id, request.body.clone());
    }

    // Splunk HEC: the token, and a body HEC parses (JSON objects one after another), acme's
    // doc.* events only.
    wait_for("HEC receives acme's events", 30, || !hec.received.lock().unwrap().is_empty()).await;
    let hec_requests = hec.received.lock().unwrap().clone();
    let mut hec_seqs = Vec::new();
    for request in &hec_requests {
        assert_eq!(request.headers.get("authorization").map(String::as_str), Some("Splunk hec-token-1"));
        for object in serde_json::Deserializer::from_slice(&request.body).into_iter::<serde_json::Value>() {
            let object = object.expect("HEC reads concatenated JSON objects");
            assert!(object["time"].is_f64() || object["time"].is_u64(), "{object}");
            assert_eq!(object["sourcetype"], "auditum:event");
            let event = &object["event"];
            assert_eq!((event["tenant_id"].as_str(), event["action"].as_str()), (Some("acme"), Some("doc.read")));
            hec_seqs.push(event["seq"].as_u64().unwrap());
        }
    }
    assert!(hec_seqs.windows(2).all(|pair| pair[0] < pair[1] || hec_seqs.iter().filter(|seq| **seq == pair[1]).count() > 1), "seq order");
    terminate(&mut server).await;
}

/// The `auditum.alert` events stored in `tenant`.
async fn stored_alerts(url: &str, tenant: &str) -> Vec<auditum_proto::pb::StoredEvent> {
    let channel = auditum_client::channel(url, &Default::default()).await.unwrap();
    let filter = auditum_proto::pb::EventFilter { tenant_id: tenant.into(), actions: vec!["auditum.alert".into()], ..Default::default() };
    let mut pager = auditum_client::query::Pager::new(channel, filter, false);
    let mut alerts = Vec::new();
    while let Some(page) = pager.next_page(1000).await.unwrap() {
        alerts.extend(page.events);
    }
    alerts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_state_survives_a_kill_and_a_replay_records_no_alert_twice() {
    let dir = tempfile::tempdir().unwrap();
    let args = config_file(
        dir.path(),
        "[[alerts]]\nname = \"brute-force\"\ntenant = \"*\"\nactions = [\"user.login\"]\noutcome = \"failure\"\n\
         group_by = \"actor_id\"\nwindow = \"10m\"\nthreshold = 5\n",
    );
    let (mut server, url, _) = spawn_binary_with_env(dir.path(), &args, &[]).await;
    let now = now_micros();
    let mut client = auditum_client::connect(&url).await.unwrap();
    // mallory reaches the threshold; eve is three short of it.
    let mut events: Vec<_> = (0..5).map(|i| login("acme", "mallory", now - 60_000_000 + i)).collect();
    events.extend((0..2).map(|i| login("acme", "eve", now - 30_000_000 + i)));
    client.append(request(events)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stored_alerts(&url, "acme").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "mallory's alert within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the rules' cursor move past everything, then kill -9.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();

    let (mut server, url, _) = spawn_binary_with_env(dir.path(), &args, &[]).await;
    let mut client = auditum_client::connect(&url).await.unwrap();
    // Three more for eve: five within the window only if the first two were remembered.
    client.append(request((0..3).map(|i| login("acme", "eve", now - 20_000_000 + i)).collect())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = stored_alerts(&url, "acme").await;
        let groups: Vec<String> = alerts.iter().map(|stored| stored.event.as_ref().unwrap().target.as_ref().unwrap().id.clone()).collect();
        if groups.len() >= 2 {
            // mallory's was replayed after the restart and stored once; eve's counted across it.
            assert_eq!(groups, ["mallory", "eve"], "{alerts:#?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "eve's alert within 30 s of the restart: {groups:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stored_alerts(&url, "acme").await.len(), 2, "nothing fired twice");
    terminate(&mut server).await;
}
