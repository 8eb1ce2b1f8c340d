//! Verification benchmark: `cargo bench --bench verify` (results in BENCHMARKS.md).
//!
//! Builds a BENCH_EVENTS-event archive (default 10,000,000) on the file store through the real
//! write path (validation, WAL with fsync, sealing into 200,000-event batches), then measures:
//! - full offline verification (`verify::verify_log_with`: every ledger entry, batch, row, leaf,
//!   root and checkpoint) in events/s;
//! - GetEventProof latency over loopback gRPC, warm (its batch cached), p50/p99.
//!
//! BENCH_ARCHIVE=DIR reuses (or keeps) the archive in DIR between runs.

use auditum_proto::pb;
use auditum_proto::validate::{Redactor, Validator};
use auditum_server::config::Config;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn build_archive(config: Config, total: usize) {
    let running = auditum_server::start(config).await.expect("server");
    let log = running.logs.by_name("default").unwrap().clone();
    if log.committed_next().0 as usize >= total {
        running.stop().await.unwrap();
        return;
    }
    let validator = Arc::new(Validator { redactor: Redactor::default() });
    let started = Instant::now();
    let writers = 4;
    let per_writer = total / writers;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let log = log.clone();
        let validator = validator.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(writer as u64);
            let now = auditum_format::time::now_micros();
            let mut done = 0;
            while done < per_writer {
                let count = 1000.min(per_writer - done);
                let events: Vec<pb::AuditEvent> = (0..count)
                    .map(|i| auditum_proto::sample::realistic_event(&mut rng, now - ((done + i) as i64 % 86_400_000_000)))
                    .collect();
                let records = tokio::task::block_in_place(|| {
                    events.into_iter().enumerate().map(|(index, event)| validator.prepare(index, event, now).unwrap()).collect::<Vec<_>>()
                });
                log.append(records).await.unwrap();
                done += count;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    log.seal_now().await.unwrap();
    eprintln!("archive: {} events appended and sealed in {:.1}s", writers * per_writer, started.elapsed().as_secs_f64());
    running.stop().await.unwrap();
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let total: usize = std::env::var("BENCH_EVENTS").ok().and_then(|text| text.parse().ok()).unwrap_or(10_000_000);
    let kept = std::env::var("BENCH_ARCHIVE").ok().map(std::path::PathBuf::from);
    let temporary = tempfile::tempdir().unwrap();
    let dir = kept.clone().unwrap_or_else(|| temporary.path().to_path_buf());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.clone(),
            seal_interval: Duration::from_secs(3600),
            wal_max_bytes: 64 * 1024 * 1024 * 1024,
            http_listen: None,
            ..Config::default()
        };
        build_archive(config.clone(), total).await;

        let store = auditum_store::open(&config.default_store_url(), &Default::default()).await.unwrap();
        let verifier =
            auditum_format::checkpoint::Verifier::parse(&std::fs::read_to_string(dir.join("keys/default.vkey")).unwrap()).unwrap();
        let store_bytes: u64 = walk_bytes(&dir.join("store"));
        println!("| benchmark | result | notes |\n|---|---|---|");
        for _ in 0..2 {
            let started = Instant::now();
            let report = auditum_verify::verify_log_with(store.as_ref(), "default", &verifier, &Default::default(), |_| {}).await.unwrap();
            let elapsed = started.elapsed().as_secs_f64();
            assert!(report.ok(), "{:?}", report.problems);
            println!(
                "| full verification, {} events in {} batches ({:.0} MB) | {:.0} events/s ({elapsed:.1} s) | file store, page cache warm |",
                report.events,
                report.entries,
                store_bytes as f64 / 1e6,
                report.events as f64 / elapsed
            );
        }

        let running = auditum_server::start(config).await.unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr)).unwrap().connect().await.unwrap();
        let mut client = pb::proof_service_client::ProofServiceClient::new(channel);
        let committed = running.logs.by_name("default").unwrap().committed_next().0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // Warm: seqs from four batches, each fetched once before measuring.
        let batch_starts: Vec<u64> = (0..4).map(|_| rng.gen_range(0..committed / 200_000) * 200_000).collect();
        let pick = |rng: &mut rand::rngs::StdRng| batch_starts[rng.gen_range(0..4)] + rng.gen_range(0..200_000u64).min(committed - 1);
        for start in &batch_starts {
            let request = pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::Seq(*start)) };
            client.get_event_proof(request).await.unwrap();
        }
        let mut latencies = Vec::new();
        for _ in 0..1000 {
            let request = pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::Seq(pick(&mut rng))) };
            let sent = Instant::now();
            client.get_event_proof(request).await.unwrap();
            latencies.push(sent.elapsed());
        }
        latencies.sort();
        let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0;
        println!(
            "| GetEventProof by seq, warm (batch cached), 1000 calls | p50 {:.2} ms, p99 {:.2} ms | loopback gRPC |",
            at(0.5),
            at(0.99)
        );
        let cold_seq = committed / 2 + 17;
        let sent = Instant::now();
        client
            .get_event_proof(pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::Seq(cold_seq)) })
            .await
            .unwrap();
        println!("| GetEventProof by seq, cold (batch read and decoded) | {:.0} ms | |", sent.elapsed().as_secs_f64() * 1000.0);
        running.stop().await.unwrap();
    });
    if kept.is_none() {
        drop(temporary);
    }
}

fn walk_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() { walk_bytes(&path) } else { std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0) }
        })
        .sum()
}
