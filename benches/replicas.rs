//! Read-only nodes benchmark: `cargo bench --bench replicas` (results in BENCHMARKS.md).
//!
//! Against the release binary on 127.0.0.1, over a BENCH_EVENTS-event archive (default
//! 2,000,000; the query benchmark's event mix: 200 tenants, 100,000 actors, a year of events) in
//! the file store:
//! 1. Queries/s with 1, 2 and 3 `serve --read-only` processes, for the needle (a *different
//!    random actor each time*, 30 days) and the selective query (the largest tenant, one action,
//!    7 days): two query clients per reader for BENCH_SECONDS (default 10) each; the CPU time
//!    each reader process used (/proc/PID/stat), per query — the number that transfers to more
//!    machines, since here every process shares the same two cores. Meta-audit off (a reader
//!    with `meta_audit_writer` adds one Append on the writer per read). The peer, in the same
//!    run: the writer process itself (`serve` on the archive, no readers) under the same load.
//! 2. Reader staleness under ingest: a writer on a fresh data directory appends BENCH_RATE
//!    events/s (default 100,000; 4 clients, 1,000 events per call, paced) and seals every second
//!    while two readers follow it; every 10 ms the bench reads GetCheckpoint from the writer and each reader, and a
//!    reader's staleness for a checkpoint is the time from the writer answering it to the reader
//!    answering it. Run with the default follow interval (2 s) and with 250 ms, BENCH_FOLLOW_SECONDS
//!    (default 60) each.
//!
//! BENCH_REPLICA_ARCHIVE=DIR keeps the archive for reruns (default target/bench-replica-archive);
//! BENCH_ONLY=queries|staleness runs one part.

mod support;

use auditum_proto::pb;
use auditum_proto::sample::ArchiveMix;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{DAY, QueryClient, checkpoint_size};

/// Starts `serve --read-only` on the archive's store; returns it and its URL.
async fn spawn_reader(archive: &Path, dir: &Path, follow_interval: &str) -> (tokio::process::Child, String) {
    std::fs::create_dir_all(dir).unwrap();
    let store = format!("file://{}", std::path::absolute(archive.join("store")).unwrap().display());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"));
    command
        .args(["serve", "--read-only", "--listen", "127.0.0.1:0", "--http-listen", "", "--data-dir"])
        .arg(dir)
        .args(["--store", &store, "--follow-interval", follow_interval, "--trusted-key"])
        .arg(archive.join("keys/default.vkey"))
        .env("AUDITUM_META_AUDIT", "false");
    support::listening(command).await
}

async fn client(url: &str) -> QueryClient {
    QueryClient::new(tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap())
}

#[derive(Clone, Copy)]
enum Kind {
    Needle,
    Selective,
}

fn filter(kind: Kind, mix: &ArchiveMix, start_time: i64, rng: &mut impl Rng) -> pb::EventFilter {
    match kind {
        Kind::Needle => {
            // Actors below 20,000 have events all year at this size; a fresh one every query.
            let actor = rng.gen_range(0..20_000);
            support::needle(mix, actor, start_time + rng.gen_range(0..330) * DAY)
        }
        Kind::Selective => {
            let (start, end) = support::window(start_time + rng.gen_range(0..350) * DAY, 7);
            pb::EventFilter {
                tenant_id: mix.tenant_of(0),
                actions: vec![mix.action_name(20).to_string()],
                start_time: start,
                end_time: end,
                ..Default::default()
            }
        }
    }
}

/// Queries/s of `kind` over `urls` with two clients per reader, and CPU seconds per query of
/// each reader process (over the queries that process answered).
async fn throughput(urls: &[String], pids: &[u32], kind: Kind, start_time: i64, seconds: u64) -> (f64, Vec<f64>, u64) {
    let mix = Arc::new(support::mix());
    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Vec<AtomicU64>> = Arc::new(urls.iter().map(|_| AtomicU64::new(0)).collect());
    let rows = Arc::new(AtomicU64::new(0));
    let before: Vec<f64> = pids.iter().map(|pid| support::cpu_seconds(*pid)).collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, url) in urls.iter().enumerate() {
        for lane in 0..2 {
            let (mix, stop, answered, rows) = (mix.clone(), stop.clone(), answered.clone(), rows.clone());
            let mut client = client(url).await;
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64((index * 2 + lane) as u64);
                while !stop.load(Ordering::Relaxed) {
                    let (count, _) = support::query_all(&mut client, &filter(kind, &mix, start_time, &mut rng)).await;
                    rows.fetch_add(count as u64, Ordering::Relaxed);
                    answered[index].fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_process: Vec<u64> = answered.iter().map(|count| count.load(Ordering::Relaxed)).collect();
    let queries: u64 = per_process.iter().sum();
    let cpu_per_query = pids
        .iter()
        .zip(&before)
        .zip(&per_process)
        .map(|((pid, before), answered)| (support::cpu_seconds(*pid) - before) / (*answered).max(1) as f64)
        .collect();
    (queries as f64 / elapsed, cpu_per_query, rows.load(Ordering::Relaxed))
}

fn percentile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() as f64 * fraction).ceil() as usize).clamp(1, values.len()) - 1]
}

/// Staleness of two readers following a writer that appends `rate` events/s for `seconds`. The
/// writer starts on a fresh data directory of its own, so the query archive stays as built.
async fn staleness(work: &Path, follow_interval: &str, rate: u64, seconds: u64) {
    let archive = work.join(format!("live-{follow_interval}"));
    std::fs::create_dir_all(&archive).unwrap();
    let archive = archive.as_path();
    let (mut writer, writer_url) =
        support::spawn_server(archive, &[("AUDITUM_SEAL_INTERVAL", "1s"), ("AUDITUM_META_AUDIT", "false")]).await;
    // Its verifier key is written at its first start, before it listens.
    assert!(archive.join("keys/default.vkey").exists(), "the live writer's verifier key");
    let mut readers = Vec::new();
    for index in 0..2 {
        readers.push(spawn_reader(archive, &work.join(format!("follow-{follow_interval}-{index}")), follow_interval).await);
    }
    let mix = Arc::new(support::mix());
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let mut appenders = Vec::new();
    let clients = 4u64;
    for lane in 0..clients {
        let (mix, stop, appended) = (mix.clone(), stop.clone(), appended.clone());
        let mut ingest = auditum_client::connect(&writer_url).await.unwrap();
        appenders.push(tokio::spawn(async move {
            let per_call = 1000;
            let interval = Duration::from_secs_f64(per_call as f64 * clients as f64 / rate as f64);
            let mut next = Instant::now();
            let mut chunk = lane as usize;
            while !stop.load(Ordering::Relaxed) {
                let now = auditum_format::time::now_micros();
                let mut events = support::event_chunk(&mix, chunk % 1000, 1000 * 1000, now - 365 * DAY);
                for (index, event) in events.iter_mut().enumerate() {
                    event.id = format!("live-{lane}-{chunk}-{index}");
                    event.occurred_at = Some(auditum_proto::convert::timestamp_from_micros(now));
                }
                ingest.append(pb::AppendRequest { events, wait_for_seal: false }).await.unwrap();
                appended.fetch_add(per_call, Ordering::Relaxed);
                chunk += clients as usize;
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }));
    }
    let connect = |url: String| async move {
        pb::proof_service_client::ProofServiceClient::new(tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap())
    };
    let mut writer_proofs = connect(writer_url.clone()).await;
    let mut reader_proofs = Vec::new();
    for (_, url) in &readers {
        reader_proofs.push(connect(url.clone()).await);
    }
    // size → when the writer first answered it; per reader, size → when it first did.
    let mut published: std::collections::BTreeMap<u64, Instant> = Default::default();
    let mut served: Vec<std::collections::BTreeMap<u64, Instant>> = vec![Default::default(); readers.len()];
    let started = Instant::now();
    let ingest_until = started + Duration::from_secs(seconds);
    while Instant::now() < ingest_until + Duration::from_secs(5) {
        if Instant::now() >= ingest_until {
            stop.store(true, Ordering::Relaxed);
        }
        let size = checkpoint_size(&mut writer_proofs).await;
        published.entry(size).or_insert_with(Instant::now);
        for (index, proofs) in reader_proofs.iter_mut().enumerate() {
            let size = checkpoint_size(proofs).await;
            served[index].entry(size).or_insert_with(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for appender in appenders {
        appender.await.unwrap();
    }
    let held_rate = appended.load(Ordering::Relaxed) as f64 / seconds as f64;
    let first_size = *published.keys().next().unwrap();
    let mut lags = Vec::new();
    for reader in &served {
        for (size, at) in published.iter().filter(|(size, _)| **size > first_size) {
            // The first time the reader served this size or a later one.
            if let Some((_, reader_at)) = reader.range(size..).map(|(size, at)| (size, *at)).min_by_key(|(_, at)| *at) {
                lags.push(reader_at.saturating_duration_since(*at).as_secs_f64() * 1000.0);
            }
        }
    }
    let checkpoints = published.len() - 1;
    let (p50, p99, max) = (percentile(&mut lags, 0.5), percentile(&mut lags, 0.99), percentile(&mut lags, 1.0));
    println!(
        "| staleness, follow_interval {follow_interval} | {held_rate:.0} events/s appended (target {rate}), {checkpoints} checkpoints × 2 readers | p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms |"
    );
    let _ = writer.kill().await;
    let _ = writer.wait().await;
    for (mut child, _) in readers {
        let _ = child.kill().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: usize = std::env::var("BENCH_EVENTS").ok().and_then(|text| text.parse().ok()).unwrap_or(2_000_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(10);
    let rate: u64 = std::env::var("BENCH_RATE").ok().and_then(|text| text.parse().ok()).unwrap_or(100_000);
    let archive =
        std::env::var("BENCH_REPLICA_ARCHIVE").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target/bench-replica-archive"));
    let archive = std::path::absolute(&archive).unwrap();
    std::fs::create_dir_all(&archive).unwrap();
    let start_time = support::build_archive(&archive, total, 100_000, 1024).await;
    // The archive's writer wrote its verifier key beside its signing key.
    assert!(archive.join("keys/default.vkey").exists(), "the archive's verifier key");
    let work = tempfile::tempdir().unwrap();
    println!(
        "\n{total} events, file store; {} cores; {seconds} s per measurement\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let follow_seconds: u64 = std::env::var("BENCH_FOLLOW_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(60);
    if only.is_empty() || only == "queries" {
        query_rates(&archive, work.path(), start_time, seconds).await;
    }
    if only.is_empty() || only == "staleness" {
        println!("\n| measure | load | reader staleness (writer's checkpoint → reader serves it) |");
        println!("|---|---|---|");
        for follow_interval in ["2s", "250ms"] {
            staleness(work.path(), follow_interval, rate, follow_seconds).await;
        }
    }
}

async fn query_rates(archive: &Path, work: &Path, start_time: i64, seconds: u64) {
    println!("| serving processes | query | queries/s (all processes) | rows/query | CPU ms per query, each process |");
    println!("|---|---|---|---|---|");
    // 0: the peer, the writer itself serving the same reads.
    for readers in 0..=3 {
        let mut children = Vec::new();
        if readers == 0 {
            children.push(support::spawn_server(archive, &[("AUDITUM_META_AUDIT", "false")]).await);
        }
        for index in 0..readers {
            children.push(spawn_reader(archive, &work.join(format!("reader-{readers}-{index}")), "2s").await);
        }
        let urls: Vec<String> = children.iter().map(|(_, url)| url.clone()).collect();
        let pids: Vec<u32> = children.iter().map(|(child, _)| child.id().unwrap()).collect();
        for (name, kind) in [("needle (random actor)", Kind::Needle), ("selective", Kind::Selective)] {
            // Warm the footer caches first, as a serving node's are.
            throughput(&urls, &pids, kind, start_time, 2).await;
            let (per_second, cpu, rows) = throughput(&urls, &pids, kind, start_time, seconds).await;
            let queries = (per_second * seconds as f64).max(1.0);
            let cpu_ms: Vec<String> = cpu.iter().map(|seconds| format!("{:.2}", seconds * 1000.0)).collect();
            let processes = if readers == 0 { "the writer (peer)".to_string() } else { format!("{readers} read-only") };
            println!("| {processes} | {name} | {per_second:.0} | {:.0} | {} |", rows as f64 / queries, cpu_ms.join(", "));
        }
        for (mut child, _) in children {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }
}
