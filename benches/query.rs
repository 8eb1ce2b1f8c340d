//! Query benchmark: `cargo bench --bench query` (results in BENCHMARKS.md; needs `pip install duckdb`).
//!
//! Builds a BENCH_EVENTS-event archive (default 10,000,000) through the real write path:
//! 100,000 actors (Zipf) in 200 tenants (Zipf), 200 actions (Zipf), ~500-byte events spread over
//! the past 365 days in arrival order with 2 % late by up to two days, sealed into
//! 100,000-event batches. Then it starts the release `auditum serve` on it and measures over
//! loopback gRPC, with DuckDB running the same queries over the same files in the same run:
//! - needle: one actor, 30 days (warm: footers cached; median of 20 runs);
//! - selective: one action of the largest tenant over a week (all pages of 1000);
//! - export: the largest tenant's month as JSONL, in events/s, and the server's peak RSS.
//!
//! BENCH_QUERY_ARCHIVE=DIR keeps the archive for reruns (default target/bench-query-archive).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (dir, total, start_time) = query_archive().await;
        let queries = Queries::new(&mix(), start_time);
        // Meta-audit off: the numbers are the queries' own (a record costs one WAL fsync).
        let (mut server, url) = spawn_server(&dir, &[("AUDITUM_META_AUDIT", "false")]).await;
        let pid = server.id().unwrap();
        let mut client = QueryClient::connect(url).await.unwrap().max_decoding_message_size(256 * 1024 * 1024);

        let (needle, selective, month) = (&queries.needle, &queries.selective, &queries.month);
        let (needle_rows, cold_stats) = query_all(&mut client, needle).await;
        let mut needle_ms = Vec::new();
        let mut warm_stats = cold_stats;
        for _ in 0..20 {
            let started = Instant::now();
            let (rows, stats) = query_all(&mut client, needle).await;
            needle_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(rows, needle_rows);
            warm_stats = stats;
        }
        let mut selective_ms = Vec::new();
        let mut selective_rows = 0;
        for _ in 0..5 {
            let started = Instant::now();
            selective_rows = query_all(&mut client, selective).await.0;
            selective_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let rss_before_export = status_mb(pid, "VmRSS:");
        let peak_before_export = status_mb(pid, "VmHWM:");
        // Sampled while the exports run.
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = std::thread::spawn({
            let sampling = sampling.clone();
            move || {
                let mut peak: f64 = 0.0;
                while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(status_mb(pid, "VmRSS:"));
                    std::thread::sleep(Duration::from_millis(5));
                }
                peak
            }
        });
        let mut export_rates = Vec::new();
        let mut export_rows = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let (rows, bytes) = export_jsonl(&mut client, month).await;
            export_rows = rows;
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("export: {export_rows} rows, {bytes} bytes in {seconds:.2}s");
            export_rates.push(export_rows as f64 / seconds);
        }
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let rss_during_export = sampler.join().unwrap();
        let peak_after_export = status_mb(pid, "VmHWM:");

        // DuckDB over the same files, same queries, same run.
        let duckdb_out = dir.join("duckdb-export.jsonl");
        let duck = run_duckdb(&dir, duckdb_spec(&dir.join("store/default/batches"), &queries, &duckdb_out));
        let duck_ms = |name: &str| duck_ms(&duck, name);
        let duck_rows = |name: &str| duck[name]["rows"].as_u64().unwrap();
        assert_eq!(duck_rows("needle") as usize, needle_rows, "both engines find the same needle rows");
        assert_eq!(duck_rows("selective") as usize, selective_rows);
        assert_eq!(duck_rows("export"), export_rows);
        let _ = std::fs::remove_file(&duckdb_out);

        let archive_bytes: u64 = walk_bytes(&dir.join("store/default/batches"));
        println!("archive: {total} events, {} batches, {:.0} MB of Parquet", cold_stats.batches_considered, archive_bytes as f64 / 1e6);
        println!("| query | auditum | DuckDB (same files, same run) | ratio | notes |\n|---|---|---|---|---|");
        let needle_p50 = median(&mut needle_ms);
        println!(
            "| needle: one actor, 30 days ({needle_rows} rows) | {needle_p50:.1} ms p50 warm | {:.1} ms | {:.1}× faster | cold first run read {} KB in {} requests; warm: {} of {} batches pruned by the catalog, {} of {} row groups pruned ({} by bloom), {} rows decoded, {} KB read |",
            duck_ms("needle"),
            duck_ms("needle") / needle_p50,
            cold_stats.bytes_read / 1024,
            cold_stats.read_requests,
            warm_stats.batches_pruned,
            warm_stats.batches_considered,
            warm_stats.row_groups_pruned,
            warm_stats.row_groups_considered,
            warm_stats.row_groups_pruned_by_bloom,
            warm_stats.rows_read,
            warm_stats.bytes_read / 1024
        );
        let selective_p50 = median(&mut selective_ms);
        println!(
            "| selective: one action of the largest tenant, 7 days ({selective_rows} rows) | {selective_p50:.1} ms | {:.1} ms | {:.1}× | all pages of 1000 |",
            duck_ms("selective"),
            duck_ms("selective") / selective_p50
        );
        let export_rate = median(&mut export_rates);
        let duck_export_rate = export_rows as f64 / (duck_ms("export") / 1000.0);
        println!(
            "| export: largest tenant's month, JSONL ({export_rows} rows) | {export_rate:.0} events/s | {duck_export_rate:.0} events/s (COPY … FORMAT JSON) | {:.2}× | server RSS {rss_before_export:.0} MB before, at most {rss_during_export:.0} MB during the exports; peak RSS since start {peak_before_export:.0} MB before, {peak_after_export:.0} MB after |",
            export_rate / duck_export_rate
        );
        let _ = server.kill().await;
    });
}
