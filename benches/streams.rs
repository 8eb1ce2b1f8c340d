//! Streams and alerts benchmark: `cargo bench --bench streams` (results in BENCHMARKS.md).
//!
//! Against the release `auditum serve` on 127.0.0.1:
//! 1. Subscribe catch-up from the archive: a BENCH_EVENTS (default 1,000,000) event archive over
//!    200 tenants; one subscription `from_beginning` for the busiest tenant, timed until its
//!    cursor reaches the end. Rates: seqs considered per second, events delivered per second.
//! 2. Detection latency: 20 alert rules sending to a webhook on 127.0.0.1, a background load of
//!    1,000 events/s; every 200 ms a fresh actor reaches one rule's threshold. Latency: from the
//!    Append acknowledgement of the threshold-reaching event to the webhook's receipt of its alert.
//! 3. Ingest throughput with those 20 rules and one stream of every event to the webhook, against
//!    the same server with none (4 clients, 100 events per call; three alternating 10 s rounds,
//!    medians; after each round with the stream, the bench waits until the webhook has every
//!    event, so no delivery work spills into the next round).

mod support;

use auditum_proto::pb;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A webhook on 127.0.0.1 that notes when each alert arrives, by its target (the actor); with
/// `parse` off it only reads the bodies (a SIEM's own parsing is not auditum's cost).
/// Besides the alerts, it keeps one past the highest seq delivered (from `x-auditum-delivery`,
/// `{sink}-{log}-{first}-{last}`), so the bench can wait until a stream has caught up.
async fn webhook(parse: bool) -> (String, Arc<Mutex<HashMap<String, Instant>>>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let alerts: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let delivered_end = Arc::new(AtomicU64::new(0));
    let seen = alerts.clone();
    let end = delivered_end.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let seen = seen.clone();
            let end = end.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                        let lowercase = line.to_ascii_lowercase();
                        if let Some(value) = lowercase.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if let Some(last) = lowercase.strip_prefix("x-auditum-delivery:").and_then(|id| id.trim().rsplit('-').next()) {
                            end.fetch_max(last.parse::<u64>().unwrap_or(0) + 1, Ordering::Relaxed);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let arrived = Instant::now();
                    if !parse {
                    } else if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) {
                        for event in body["events"].as_array().into_iter().flatten() {
                            if event["action"] == "auditum.alert" {
                                let actor = event["target_id"].as_str().unwrap_or_default().to_string();
                                seen.lock().unwrap().entry(actor).or_insert(arrived);
                            }
                        }
                    }
                    if reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, alerts, delivered_end)
}

/// The webhook sink, `rules` alert rules sending to it, and optionally a stream of every event.
fn rules_config(url: &str, rules: usize, with_stream: bool) -> String {
    let mut text = format!("[[sinks]]\nname = \"hook\"\nurl = \"{url}\"\nformat = \"json\"\nsecret_env = \"BENCH_SINK_SECRET\"\n");
    for rule in 0..rules {
        text.push_str(&format!(
            "\n[[alerts]]\nname = \"rule-{rule}\"\ntenant = \"*\"\nactions = [\"bench.action{rule}\"]\noutcome = \"failure\"\ngroup_by = \"actor_id\"\nwindow = \"1m\"\nthreshold = 5\nsinks = [\"hook\"]\n"
        ));
    }
    if with_stream {
        text.push_str("\n[[streams]]\nname = \"all\"\ntenant = \"*\"\nsink = \"hook\"\n");
    }
    text
}

fn failed(tenant: &str, action: &str, actor: &str) -> pb::AuditEvent {
    pb::AuditEvent {
        tenant_id: tenant.into(),
        occurred_at: Some(auditum_proto::convert::now_timestamp()),
        action: action.into(),
        actor: Some(pb::Actor { id: actor.into(), r#type: pb::ActorType::User as i32, name: String::new() }),
        outcome: Some(pb::Outcome { result: pb::OutcomeResult::Failure as i32, ..Default::default() }),
        ..Default::default()
    }
}

/// The release `auditum serve` on `dir` with `config` as its config file.
async fn spawn_with_config(dir: &std::path::Path, config: &str) -> (tokio::process::Child, String) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("auditum.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir)
        .env("BENCH_SINK_SECRET", "bench-secret");
    support::listening(command).await
}

async fn catch_up(events: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("archive");
    std::fs::create_dir_all(&data).unwrap();
    let start_time = support::build_archive(&data, events, 100_000, 4096).await;
    // The busiest tenant of the mix, from a sample of the stream.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in support::event_chunk(&support::mix(), 0, events, start_time) {
        *counts.entry(event.tenant_id).or_default() += 1;
    }
    let tenant = counts.into_iter().max_by_key(|(_, count)| *count).map(|(tenant, _)| tenant).unwrap();
    let (mut server, url) = support::spawn_server(&data, &[]).await;
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let mut client = pb::query_service_client::QueryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let filter = pb::EventFilter { tenant_id: tenant.clone(), ..Default::default() };
    let request = pb::SubscribeRequest { filter: Some(filter), start: Some(pb::subscribe_request::Start::FromBeginning(true)) };
    let started = Instant::now();
    let mut stream = client.subscribe(request).await.unwrap().into_inner();
    let mut delivered = 0u64;
    let last = events as u64 - 1;
    while let Some(message) = stream.message().await.unwrap() {
        match message.item {
            Some(pb::subscribe_response::Item::Event(stored)) => {
                delivered += 1;
                if stored.seq >= last {
                    break;
                }
            }
            Some(pb::subscribe_response::Item::Progress(progress)) if progress.cursor >= last => break,
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "| Subscribe catch-up, {tenant}, {events} events archived | {:.0} seqs considered/s | {:.0} events delivered/s ({delivered} events, {seconds:.2} s) | target ≥ 500,000/s |",
        events as f64 / seconds,
        delivered as f64 / seconds
    );
    server.kill().await.unwrap();
}

async fn detection_latency() {
    let (url, alerts, _) = webhook(true).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, server_url) = spawn_with_config(&dir.path().join("server"), &rules_config(&url, 20, false)).await;
    let mut background = auditum_client::connect(&server_url).await.unwrap();
    let mut trigger = auditum_client::connect(&server_url).await.unwrap();
    // 1,000 events/s of unrelated traffic, 50 every 50 ms.
    let load = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for round in 0..400u64 {
            tick.tick().await;
            let events = (0..50).map(|i| failed(&format!("tenant-{}", i % 20), "bench.noise", &format!("n{round}-{i}"))).collect();
            background.append(pb::AppendRequest { events, wait_for_seal: false }).await.unwrap();
        }
    });
    let mut acks: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for round in 0..90 {
        tick.tick().await;
        let rule = round % 20;
        let actor = format!("attacker-{round}");
        let action = format!("bench.action{rule}");
        let four = (0..4).map(|_| failed("tenant-1", &action, &actor)).collect();
        trigger.append(pb::AppendRequest { events: four, wait_for_seal: false }).await.unwrap();
        trigger.append(pb::AppendRequest { events: vec![failed("tenant-1", &action, &actor)], wait_for_seal: false }).await.unwrap();
        acks.insert(actor, Instant::now());
    }
    load.await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = alerts.lock().unwrap().clone();
    let mut latencies: Vec<f64> = acks
        .iter()
        .filter_map(|(actor, acked)| received.get(actor).map(|arrived| arrived.saturating_duration_since(*acked).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!(
        "| detection latency, 20 rules, 1,000 events/s background | p50 {:.0} ms | p99 {:.0} ms | {} of {} alerts arrived | target p99 ≤ 1,000 ms |",
        percentile(0.5),
        percentile(0.99),
        latencies.len(),
        acks.len()
    );
    server.kill().await.unwrap();
}

/// Events/s appended by 4 clients × 100 events per call for `seconds`; `round` keeps actors unique
/// across phases.
async fn ingest(url: &str, seconds: u64, round: usize) -> (f64, u64) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client_index in 0..4 {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = auditum_client::connect(&url).await.unwrap();
            let mut sent = 0u64;
            let mut calls = 0u64;
            let round_of_phase = round;
            while Instant::now() < deadline {
                let events = (0..100)
                    .map(|i| {
                        failed(
                            &format!("tenant-{}", i % 20),
                            &format!("bench.action{}", i % 25),
                            &format!("u{round_of_phase}-{client_index}-{calls}-{i}"),
                        )
                    })
                    .collect();
                client.append(pb::AppendRequest { events, wait_for_seal: false }).await.unwrap();
                sent += 100;
                calls += 1;
            }
            sent
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    (total as f64 / started.elapsed().as_secs_f64(), total)
}

/// Rounds of the ingest comparison, alternating the two servers (runs on this shared machine
/// drift by several points within a minute; alternating and taking medians keeps the drift out of
/// the difference).
const INGEST_ROUNDS: usize = 3;
const INGEST_PHASE_SECONDS: u64 = 10;

async fn ingest_overhead() {
    let (url, _, delivered_end) = webhook(false).await;
    let dir = tempfile::tempdir().unwrap();
    // BENCH_INGEST_WITH=rules|stream (for profiling one of the two); both by default.
    let with = std::env::var("BENCH_INGEST_WITH").unwrap_or_else(|_| "both".into());
    let config = rules_config(&url, if with == "stream" { 0 } else { 20 }, with != "rules");
    let (mut plain, plain_url) = spawn_with_config(&dir.path().join("plain"), "").await;
    let (mut ruled, ruled_url) = spawn_with_config(&dir.path().join("ruled"), &config).await;
    let (plain_pid, ruled_pid) = (plain.id().unwrap_or_default(), ruled.id().unwrap_or_default());
    let (mut without, mut with_rates, mut ruled_total) = (Vec::new(), Vec::new(), 0u64);
    let (mut plain_cpu, mut ruled_cpu, mut plain_total) = (0.0, 0.0, 0u64);
    // This process's CPU too: the load generator, and with the stream, the receiver reading it.
    let (bench_pid, mut bench_plain_cpu, mut bench_ruled_cpu) = (std::process::id(), 0.0, 0.0);
    let mut catch_up = Vec::new();
    for round in 0..INGEST_ROUNDS {
        let (cpu_before, bench_before) = (support::cpu_seconds(plain_pid), support::cpu_seconds(bench_pid));
        let (rate, appended) = ingest(&plain_url, INGEST_PHASE_SECONDS, round).await;
        without.push(rate);
        plain_total += appended;
        plain_cpu += support::cpu_seconds(plain_pid) - cpu_before;
        bench_plain_cpu += support::cpu_seconds(bench_pid) - bench_before;
        let (cpu_before, bench_before) = (support::cpu_seconds(ruled_pid), support::cpu_seconds(bench_pid));
        let (rate, appended) = ingest(&ruled_url, INGEST_PHASE_SECONDS, round).await;
        with_rates.push(rate);
        ruled_total += appended;
        // The stream must not carry its work into the next phase: wait until it delivered all.
        let waiting = Instant::now();
        if with != "rules" {
            while delivered_end.load(Ordering::Relaxed) < ruled_total && waiting.elapsed() < Duration::from_secs(120) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        catch_up.push(waiting.elapsed().as_secs_f64());
        // The server's CPU counts its delivery work too, done during the wait.
        ruled_cpu += support::cpu_seconds(ruled_pid) - cpu_before;
        bench_ruled_cpu += support::cpu_seconds(bench_pid) - bench_before;
    }
    plain.kill().await.unwrap();
    ruled.kill().await.unwrap();
    let median = |rates: &[f64]| {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let rounds: Vec<String> = without
        .iter()
        .zip(&with_rates)
        .map(|(without, with)| format!("{without:.0} → {with:.0} ({:+.1} %)", (with / without - 1.0) * 100.0))
        .collect();
    let (without, with_rate) = (median(&without), median(&with_rates));
    let configured = match with.as_str() {
        "rules" => "20 rules",
        "stream" => "one stream",
        _ => "20 rules and one stream",
    };
    println!(
        "| ingest, 4 clients × 100 events per call, median of {INGEST_ROUNDS} alternating {INGEST_PHASE_SECONDS} s rounds | {without:.0} events/s with nothing | {with_rate:.0} events/s with {configured} | {:+.1} % (rounds: {}; stream caught up {} s after each) | target ≥ −10 % |",
        (with_rate / without - 1.0) * 100.0,
        rounds.join(", "),
        catch_up.iter().map(|seconds| format!("{seconds:.1}")).collect::<Vec<_>>().join(" / "),
    );
    println!(
        "| CPU per appended event (delivery included): server / bench process (load and receiver) | {:.1} / {:.1} µs with nothing | {:.1} / {:.1} µs with {configured} | |",
        plain_cpu * 1e6 / plain_total.max(1) as f64,
        bench_plain_cpu * 1e6 / plain_total.max(1) as f64,
        ruled_cpu * 1e6 / ruled_total.max(1) as f64,
        bench_ruled_cpu * 1e6 / ruled_total.max(1) as f64,
    );
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let events: usize = std::env::var("BENCH_EVENTS").ok().and_then(|text| text.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        println!("| measurement | result | | | target |");
        println!("|---|---|---|---|---|");
        // BENCH_ONLY=latency|ingest|catch-up runs one part (for profiling); unset runs all.
        let only = std::env::var("BENCH_ONLY").ok();
        let runs = |part: &str| only.as_deref().is_none_or(|only| only == part);
        if runs("latency") {
            detection_latency().await;
        }
        if runs("ingest") {
            ingest_overhead().await;
        }
        if runs("catch-up") {
            catch_up(events).await;
        }
    });
}
