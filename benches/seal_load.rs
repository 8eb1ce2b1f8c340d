//! Appends while a seal runs: `cargo bench --bench seal_load` (results in BENCHMARKS.md, issue #18
//! "reads under write load").
//!
//! The release `auditum serve` (a separate process on 127.0.0.1, fresh data dir,
//! `--batch-max-events 200000`, meta-audit off) takes 199,999 realistic events; then one client
//! sends single-event Appends one after another (each acknowledged after its fsync) for 3 s as
//! the baseline; then one more event fills the batch, which starts the seal of 200,000 events
//! (sort, leaf hashes, Merkle root, Parquet with zstd, ledger entry, checkpoint), and the same
//! client keeps sending single-event Appends until the checkpoint grows. Reported: the Append
//! latency percentiles in both phases, and the seal's duration as the client saw it.

mod support;

use support::{checkpoint_size, percentile, realistic_events};

use auditum_proto::pb;
use std::time::{Duration, Instant};

fn summary(name: &str, mut millis: Vec<f64>) {
    let (p50, p99, p999) = (percentile(&mut millis, 0.5), percentile(&mut millis, 0.99), percentile(&mut millis, 0.999));
    let max = millis.last().copied().unwrap_or_default();
    println!("| {name} | {} | {p50:.2} ms | {p99:.2} ms | {p999:.2} ms | {max:.2} ms |", millis.len());
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    const BATCH: usize = 200_000;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--seal-interval", "3600s"])
            .args(["--batch-max-events", &BATCH.to_string(), "--data-dir"])
            .arg(dir.path())
            .env("AUDITUM_META_AUDIT", "false");
        let (_server, url) = support::listening(command).await;
        let mut ingest = pb::ingest_service_client::IngestServiceClient::connect(url.clone()).await.unwrap();
        let mut proof = pb::proof_service_client::ProofServiceClient::connect(url).await.unwrap();

        let mut single = realistic_events(40_000, 7).into_iter();
        async fn append_one(
            ingest: &mut pb::ingest_service_client::IngestServiceClient<tonic::transport::Channel>,
            event: pb::AuditEvent,
        ) -> f64 {
            let started = Instant::now();
            ingest.append(pb::AppendRequest { events: vec![event], wait_for_seal: false }).await.unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        }

        // Baseline: no seal running (a small open batch).
        const BASELINE: usize = 3000;
        let mut quiet = Vec::with_capacity(BASELINE);
        for _ in 0..BASELINE {
            quiet.push(append_one(&mut ingest, single.next().unwrap()).await);
        }
        // The open batch filled to one event short of full.
        let started = Instant::now();
        let mut sent = BASELINE;
        while sent < BATCH - 1 {
            let count = (BATCH - 1 - sent).min(1000);
            ingest.append(pb::AppendRequest { events: realistic_events(count, sent as u64), wait_for_seal: false }).await.unwrap();
            sent += count;
        }
        eprintln!("{sent} events appended in {:.1}s", started.elapsed().as_secs_f64());
        // The next single event fills the batch: its seal starts, and the appends go on.
        let before = checkpoint_size(&mut proof).await;
        let seal_started = Instant::now();
        let mut during = Vec::new();
        let mut polled = Instant::now();
        loop {
            during.push(append_one(&mut ingest, single.next().unwrap()).await);
            if polled.elapsed() > Duration::from_millis(50) {
                polled = Instant::now();
                if checkpoint_size(&mut proof).await > before {
                    break;
                }
            }
            assert!(seal_started.elapsed() < Duration::from_secs(120), "the seal finishes");
        }
        let seal_ms = seal_started.elapsed().as_secs_f64() * 1000.0;
        println!("| phase | appends | p50 | p99 | p99.9 | max |");
        println!("|---|---|---|---|---|---|");
        summary("single-event Append, no seal running", quiet);
        summary(&format!("single-event Append while a seal of {BATCH} events runs"), during);
        println!("\nseal of {BATCH} events, as the client saw it: {seal_ms:.0} ms");
    });
}
