//! Erasure benchmark: `cargo bench --bench erasure` (results in BENCHMARKS.md, "Erasure").
//!
//! Against the release `auditum serve` on 127.0.0.1, two servers in the same run, one with
//! `encrypt_fields` = 7 fields (actor_name, target_name, reason, user_agent, before, after,
//! metadata; source_ip stays filterable) and one without:
//! 1. Ingest throughput: 4 clients × 100 realistic events per call (2,000 actors = subjects), 15 s,
//!    alternating peer / encrypted twice; and each server's CPU per ingested event (/proc), which
//!    the load generator sharing the cores does not blur. `BENCH_ONLY=ingest` stops after this.
//! 2. Read throughput with decryption: what was ingested is sealed, then the busiest tenant is
//!    paged through with Query (1,000 per page) and exported as JSONL, on both servers.
//! 3. Erasure time: 100,000 events of one subject are appended to the encrypted server (and
//!    sealed), then `EraseSubject` is timed (it deletes one key) — median of 5 subjects.

mod support;

use auditum_proto::pb;
use rand::SeedableRng;
use std::time::{Duration, Instant};

const KEK_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const INGEST_SECONDS: u64 = 15;

/// The release server on `dir`; encrypting the 7 fields when `encrypted`.
async fn spawn(dir: &std::path::Path, encrypted: bool) -> (tokio::process::Child, String) {
    std::fs::create_dir_all(dir).unwrap();
    let config = if encrypted {
        format!(
            "encrypt_fields = [\"actor_name\", \"target_name\", \"reason\", \"user_agent\", \"before\", \"after\", \"metadata\"]\nkeyring = \"file://{}\"\nkek_env = \"BENCH_KEK\"\n",
            dir.join("keyring").display()
        )
    } else {
        String::new()
    };
    let path = dir.join("auditum.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--seal-interval", "5s", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir)
        .env("BENCH_KEK", KEK_HEX)
        .env("AUDITUM_META_AUDIT", "false");
    support::listening(command).await
}

fn event(rng: &mut rand::rngs::StdRng) -> pb::AuditEvent {
    let mut event = auditum_proto::sample::realistic_event(rng, auditum_format::time::now_micros());
    // Every one of the 7 fields set (the sample leaves the outcome's reason empty).
    event.outcome.as_mut().unwrap().reason = "quarterly access review".into();
    event
}

/// Events/s appended by 4 clients over INGEST_SECONDS, and the server's CPU microseconds per
/// event over the same time (what carries over to a machine where the load has its own cores).
async fn ingest(url: &str, server_pid: u32) -> (f64, f64) {
    let cpu_before = support::cpu_seconds(server_pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(INGEST_SECONDS);
    let mut tasks = Vec::new();
    for client_index in 0..4u64 {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = auditum_client::connect(&url).await.unwrap().max_decoding_message_size(64 << 20);
            let mut rng = rand::rngs::StdRng::seed_from_u64(client_index);
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let events = (0..100).map(|_| event(&mut rng)).collect();
                client.append(pb::AppendRequest { events, wait_for_seal: false }).await.unwrap();
                sent += 100;
            }
            sent
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let cpu_micros_per_event = (support::cpu_seconds(server_pid) - cpu_before) * 1e6 / total.max(1) as f64;
    (total as f64 / started.elapsed().as_secs_f64(), cpu_micros_per_event)
}

/// Waits for what is open to be sealed (the next 5 s seal): a wait_for_seal append of one event.
async fn seal(url: &str) {
    let mut client = auditum_client::connect(url).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    client.append(pb::AppendRequest { events: vec![event(&mut rng)], wait_for_seal: true }).await.ok();
}

/// (Query events/s, Export events/s) over one tenant.
async fn reads(url: &str, tenant: &str) -> (f64, f64, usize) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    let mut client = pb::query_service_client::QueryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let filter = pb::EventFilter { tenant_id: tenant.into(), ..Default::default() };
    // Warm: footers and keys.
    support::query_all(&mut client, &filter).await;
    let started = Instant::now();
    let (rows, _) = support::query_all(&mut client, &filter).await;
    let query_rate = rows as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (exported, _) = support::export_jsonl(&mut client, &filter).await;
    let export_rate = exported as f64 / started.elapsed().as_secs_f64();
    (query_rate, export_rate, rows)
}

/// Median milliseconds of EraseSubject for subjects with `events_each` events each.
async fn erasure(url: &str, events_each: usize) -> f64 {
    let mut client = auditum_client::connect(url).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let subjects: Vec<String> = (0..5).map(|index| format!("hot-subject-{index}")).collect();
    for subject in &subjects {
        for _ in 0..events_each / 1000 {
            let events = (0..1000)
                .map(|_| {
                    let mut event = event(&mut rng);
                    event.tenant_id = "acme".into();
                    event.subject_id = subject.clone();
                    event
                })
                .collect();
            client.append(pb::AppendRequest { events, wait_for_seal: false }).await.unwrap();
        }
    }
    seal(url).await;
    let channel = tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    let mut admin = pb::admin_service_client::AdminServiceClient::new(channel);
    let mut times = Vec::new();
    for subject in &subjects {
        let request = pb::EraseSubjectRequest { tenant_id: "acme".into(), subject_id: subject.clone(), reason: "benchmark".into() };
        let started = Instant::now();
        let answer = admin.erase_subject(request).await.unwrap().into_inner();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(answer.kids.len(), 1);
    }
    support::median(&mut times)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut plain, plain_url) = spawn(&dir.path().join("plain"), false).await;
        let (mut encrypted, encrypted_url) = spawn(&dir.path().join("encrypted"), true).await;
        // Alternate, twice each (the mean is reported), so neither side gets the warmer machine.
        let (plain_pid, encrypted_pid) = (plain.id().unwrap_or_default(), encrypted.id().unwrap_or_default());
        let mut without = Vec::new();
        let mut with = Vec::new();
        for _ in 0..2 {
            without.push(ingest(&plain_url, plain_pid).await);
            with.push(ingest(&encrypted_url, encrypted_pid).await);
        }
        let mean = |runs: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| runs.iter().map(pick).sum::<f64>() / runs.len() as f64;
        let (rate_without, rate_with) = (mean(&without, |run| run.0), mean(&with, |run| run.0));
        let (cpu_without, cpu_with) = (mean(&without, |run| run.1), mean(&with, |run| run.1));
        println!("| measurement | no encryption | 7 encrypted fields | change | target |");
        println!("|---|---|---|---|---|");
        println!(
            "| ingest, 4 clients × 100 events per call | {rate_without:.0} events/s | {rate_with:.0} events/s | {:+.1} % | ≥ −15 % |",
            (rate_with / rate_without - 1.0) * 100.0
        );
        println!(
            "| server CPU per ingested event | {cpu_without:.1} µs | {cpu_with:.1} µs | {:+.1} % | |",
            (cpu_with / cpu_without - 1.0) * 100.0
        );
        // BENCH_ONLY=ingest stops here (for profiling the ingest phase).
        if std::env::var("BENCH_ONLY").is_ok_and(|only| only == "ingest") {
            plain.kill().await.ok();
            encrypted.kill().await.ok();
            return;
        }
        seal(&plain_url).await;
        seal(&encrypted_url).await;
        let (plain_query, plain_export, plain_rows) = reads(&plain_url, "acme").await;
        let (query, export, rows) = reads(&encrypted_url, "acme").await;
        println!(
            "| Query, tenant acme, pages of 1,000 ({plain_rows} / {rows} events) | {plain_query:.0} events/s | {query:.0} events/s | {:+.1} % | |",
            (query / plain_query - 1.0) * 100.0
        );
        println!(
            "| Export JSONL, tenant acme | {plain_export:.0} events/s | {export:.0} events/s | {:+.1} % | |",
            (export / plain_export - 1.0) * 100.0
        );
        let erase_ms = erasure(&encrypted_url, 100_000).await;
        println!("| EraseSubject of a subject with 100,000 events (median of 5) | | {erase_ms:.1} ms | | ≤ 100 ms |");
        plain.kill().await.ok();
        encrypted.kill().await.ok();
    });
}
