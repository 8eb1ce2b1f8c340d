//! Query benchmark: `cargo bench --bench query` (results in BENCHMARKS.md; needs `pip install duckdb`).
//!
//! Builds a BENCH_EVENTS-event archive (default 10,000,000) through the real write path:
//! 100,000 actors (Zipf) in 200 tenants (Zipf), 200 actions (Zipf), ~500-byte events spread over
//! the past 365 days in arrival order with 2 % late by up to two days, sealed into
//! 100,000-event batches. Then it starts the release `auditum serve` on it and measures over
//! loopback gRPC, with DuckDB running the same queries over the same files in the same run:
//! - needle: one actor, 30 days (warm: footers cached; median of 20 runs);
//! - random needles: a different random actor each time (its tenant, a random 30-day window); after
//!   10 that warm the server's caches, 40 with the OS page cache as the machine leaves it, then 40
//!   others after reading the archive into the page cache, against DuckDB's times for the same
//!   actors (the archive read into the page cache before DuckDB runs too). BENCH_NEEDLE_ROUNDS=N
//!   repeats the second set N times, for a profiler to watch;
//! - selective: one action of the largest tenant over a week (all pages of 1000);
//! - export: the largest tenant's month as JSONL, in events/s (median of BENCH_EXPORT_ROUNDS, default
//!   3), and the server's peak RSS.
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
        for needle in &queries.random_needles[..WARMUP_NEEDLES] {
            query_all(&mut client, needle).await;
        }
        let batches_dir = dir.join("store/default/batches");
        let (cold_cache_ms, _) = random_needles(&mut client, &queries.random_needles[WARMUP_NEEDLES..WARMUP_NEEDLES + MEASURED_NEEDLES], 1).await;
        warm_page_cache(&batches_dir);
        let rounds: usize = std::env::var("BENCH_NEEDLE_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(1);
        let (random_ms, random_rows) = random_needles(&mut client, &queries.random_needles[WARMUP_NEEDLES + MEASURED_NEEDLES..], rounds).await;
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
        let export_rounds: usize = std::env::var("BENCH_EXPORT_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(3);
        for _ in 0..export_rounds {
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
        warm_page_cache(&batches_dir);
        let duck = run_duckdb(&dir, duckdb_spec(&batches_dir, &queries, &duckdb_out));
        let duck_ms = |name: &str| duck_ms(&duck, name);
        let duck_rows = |name: &str| duck[name]["rows"].as_u64().unwrap();
        assert_eq!(duck_rows("needle") as usize, needle_rows, "both engines find the same needle rows");
        assert_eq!(duck_rows("selective") as usize, selective_rows);
        let mut duck_random_ms = Vec::new();
        for (index, rows) in random_rows.iter().enumerate() {
            let name = format!("random_needle_{}", WARMUP_NEEDLES + MEASURED_NEEDLES + index);
            assert_eq!(duck_rows(&name) as usize, *rows, "both engines find the same rows for {name}");
            duck_random_ms.push(duck_ms(&name));
        }
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
        let mut cold_cache_sorted = cold_cache_ms.clone();
        println!(
            "| needle: a different random actor each time, 30 days, OS page cache as the machine left it ({} actors) | {:.1} ms p50, {:.1} ms p90 | | | |",
            cold_cache_ms.len(),
            percentile(&mut cold_cache_sorted, 0.5),
            percentile(&mut cold_cache_sorted, 0.9)
        );
        let (mut random_sorted, mut duck_sorted) = (random_ms.clone(), duck_random_ms.clone());
        let (random_p50, duck_random_p50) = (percentile(&mut random_sorted, 0.5), percentile(&mut duck_sorted, 0.5));
        let mut row_counts = random_rows.clone();
        row_counts.sort_unstable();
        println!(
            "| needle: a different random actor each time, 30 days, archive in the page cache ({} actors, {}–{} rows, median {}) | {random_p50:.1} ms p50, {:.1} ms p90, {:.1} ms max | {duck_random_p50:.1} ms p50, {:.1} ms p90 | {:.2}× DuckDB's time | target p50 ≤ 5 ms and ≤ 0.25× DuckDB |",
            random_rows.len(),
            row_counts[0],
            row_counts[row_counts.len() - 1],
            row_counts[row_counts.len() / 2],
            percentile(&mut random_sorted, 0.9),
            random_sorted[random_sorted.len() - 1],
            percentile(&mut duck_sorted, 0.9),
            random_p50 / duck_random_p50
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

/// Runs each needle `rounds` times (more than one only for a profiler) and prints what the
/// pruning chain did. Returns each query's time in ms (every round) and rows (the first round).
async fn random_needles(client: &mut QueryClient, needles: &[auditum_proto::pb::EventFilter], rounds: usize) -> (Vec<f64>, Vec<usize>) {
    let (mut times, mut rows) = (Vec::new(), Vec::new());
    let mut total = auditum_proto::pb::QueryStats::default();
    for round in 0..rounds {
        for needle in needles {
            let started = Instant::now();
            let (found, stats) = query_all(client, needle).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if round == 0 {
                rows.push(found);
                total.batches_considered += stats.batches_considered;
                total.batches_pruned += stats.batches_pruned;
                total.row_groups_considered += stats.row_groups_considered;
                total.row_groups_pruned += stats.row_groups_pruned;
                total.row_groups_pruned_by_bloom += stats.row_groups_pruned_by_bloom;
                total.rows_read += stats.rows_read;
                total.bytes_read += stats.bytes_read;
            }
        }
    }
    let count = needles.len() as u64;
    println!(
        "random needles, mean per query: {} of {} batches pruned by the catalog, {} of {} row groups pruned ({} by bloom), {} rows decoded, {} KB read",
        total.batches_pruned / count,
        total.batches_considered / count,
        total.row_groups_pruned / count,
        total.row_groups_considered / count,
        total.row_groups_pruned_by_bloom / count,
        total.rows_read / count,
        total.bytes_read / count / 1024
    );
    (times, rows)
}
