//! Ingest benchmark: `cargo bench --bench ingest` (results in BENCHMARKS.md).
//!
//! Runs the release `auditum` binary as a separate process on 127.0.0.1 with a fresh data dir,
//! and measures from this process over loopback gRPC:
//! - durable Append throughput with calls of 100 and 1000 realistic events (~500 bytes each),
//!   several connections with several calls in flight;
//! - single-event Append latency at a fixed 1,000 requests/s (open loop);
//! - seal throughput (sort + leaf hashes + Merkle root + Parquet/zstd) in-process;
//! - bytes per event on disk once sealed.
//!
//! Environment: BENCH_SECONDS (default 10) per throughput phase; BENCH_SERVER=URL to load an
//! already running server instead (for profiling).

mod support;

use auditum_format::event::{EventRecord, Seq};
use auditum_proto::pb;
use auditum_proto::validate::{Redactor, Validator};
use prost::Message;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::realistic_events;
use tokio::io::{AsyncBufReadExt, BufReader};

const CONNECTIONS: usize = 4;
const IN_FLIGHT_PER_CONNECTION: usize = 4;

async fn start_server(data_dir: &Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--seal-interval", "60s"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("AUDITUM_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn auditum");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(addr) = line.strip_prefix("auditum listening on ") {
            return (child, format!("http://{addr}"));
        }
    }
    panic!("server did not start");
}

/// Distinct events for every call in a pool, so sealed batches compress as real traffic would.
fn request_pool(batch: usize, calls: usize) -> Vec<pb::AppendRequest> {
    (0..calls)
        .map(|call| pb::AppendRequest { events: realistic_events(batch, (batch * 1_000_003 + call) as u64), wait_for_seal: false })
        .collect()
}

async fn throughput(url: &str, batch: usize, seconds: u64) -> f64 {
    let pool = Arc::new(request_pool(batch, 200_000 / batch));
    let bytes_per_event = pool[0].encoded_len() / batch;
    let appended = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let client = auditum_client::connect(url).await.unwrap();
        for slot in 0..IN_FLIGHT_PER_CONNECTION {
            let mut client = client.clone();
            let pool = pool.clone();
            let appended = appended.clone();
            let mut next = connection * IN_FLIGHT_PER_CONNECTION + slot;
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let request = pool[next % pool.len()].clone();
                    next += CONNECTIONS * IN_FLIGHT_PER_CONNECTION;
                    let response = client.append(request).await.expect("append");
                    appended.fetch_add(response.into_inner().results.len() as u64, Ordering::Relaxed);
                }
            }));
        }
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = appended.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!(
        "| durable Append, {batch} events/call, {CONNECTIONS} connections × {IN_FLIGHT_PER_CONNECTION} in flight | {rate:.0} events/s | {bytes_per_event} B/event on the wire |"
    );
    rate
}

async fn latency(url: &str, rate_per_second: u64, seconds: u64) {
    let client = auditum_client::connect(url).await.unwrap();
    let events = realistic_events(1, 99);
    let interval = Duration::from_nanos(1_000_000_000 / rate_per_second);
    let total = rate_per_second * seconds;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut timer_lag = Duration::ZERO;
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        timer_lag = timer_lag.max(scheduled.elapsed());
        let mut client = client.clone();
        let request = pb::AppendRequest { events: events.clone(), wait_for_seal: false };
        // Open loop: each call is its own task, so a slow answer never delays later sends.
        // Latency counts from the actual send: tokio's 1 ms timer granularity is the load
        // generator's lag, not the server's.
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            client.append(request).await.expect("append");
            sent.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "| single-event Append at {rate_per_second} req/s for {seconds}s ({} calls) | p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms | open loop; max sender timer lag {:.2} ms |",
        latencies.len(),
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        latencies.last().unwrap().as_secs_f64() * 1000.0,
        timer_lag.as_secs_f64() * 1000.0
    );
}

fn seal_throughput(count: usize) {
    let validator = Validator { redactor: Redactor::default() };
    let now = auditum_format::time::now_micros();
    let records: Vec<Arc<EventRecord>> = realistic_events(count, 5)
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let mut record = validator.prepare(i, event.clone(), now).unwrap();
            record.seq = Seq(i as u64);
            record.received_at = now + i as i64;
            Arc::new(record)
        })
        .collect();
    let started = Instant::now();
    let built = auditum_batch::build_batch(&records, Default::default()).unwrap();
    let elapsed = started.elapsed();
    println!(
        "| seal (sort, leaf hashes, Merkle root, Parquet zstd) of {count} events, one core | {:.0} events/s | {:.1} B/event in the batch file |",
        count as f64 / elapsed.as_secs_f64(),
        built.bytes.len() as f64 / count as f64
    );
    // Where the bytes go, per column (compressed, all row groups).
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&built.bytes).unwrap();
    let mut per_column = vec![0i64; metadata.file_metadata().schema_descr().num_columns()];
    for row_group in metadata.row_groups() {
        for (index, column) in row_group.columns().iter().enumerate() {
            per_column[index] += column.compressed_size();
        }
    }
    let breakdown: Vec<String> = auditum_format::event::COLUMN_NAMES
        .iter()
        .zip(&per_column)
        .map(|(name, bytes)| format!("{name} {:.1}", *bytes as f64 / count as f64))
        .collect();
    println!("\nbytes per event by column (compressed): {}", breakdown.join(", "));
}

fn directory_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() { directory_bytes(&path) } else { std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0) }
        })
        .sum()
}

fn count_archived_events(store: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(store.join("default/ledger")) else { return 0 };
    entries
        .map(|entry| {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            auditum_format::ledger::LedgerEntry::parse(&text).unwrap().count
        })
        .sum()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        if let Ok(url) = std::env::var("BENCH_SERVER") {
            // Load only, against a server started elsewhere (for profiling).
            for batch in [100, 1000] {
                throughput(&url, batch, seconds).await;
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (mut server, url) = start_server(dir.path()).await;
        println!("| benchmark | result | notes |\n|---|---|---|");
        // Latency first, on a quiet server; throughput phases then seal in the background.
        latency(&url, 1000, seconds).await;
        for batch in [100, 1000] {
            throughput(&url, batch, seconds).await;
        }
        // Graceful stop seals everything, then measure what stays on disk.
        let pid = server.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        server.wait().await.unwrap();
        let store_bytes = directory_bytes(&dir.path().join("store"));
        let batch_bytes = directory_bytes(&dir.path().join("store/default/batches"));
        let events = count_archived_events(&dir.path().join("store"));
        println!(
            "| archive on disk after sealing {events} distinct events | {:.1} B/event (batch files only: {:.1}) | file store: Parquet + ledger + checkpoints |",
            store_bytes as f64 / events as f64,
            batch_bytes as f64 / events as f64
        );
        seal_throughput(200_000);
    });
}
