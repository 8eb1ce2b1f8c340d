//! Needles on S3: `cargo bench --bench s3_query` (results in BENCHMARKS.md; needs
//! `pip install 'moto[server]'`).
//!
//! Builds a BENCH_S3_EVENTS-event archive (default 1,000,000; the query benchmark's event stream,
//! 100,000-event batches) through the real write path twice: once onto `moto_server` (S3 with
//! Object Lock, on loopback) and once onto the file store, the peer. The release `auditum serve`
//! then runs on each (meta-audit off), and the same queries go to both over loopback gRPC:
//! - the fixed needle (one actor, 30 days), cold (the server's first query: footers fetched) and
//!   warm (median of 10);
//! - needles of a different random actor each time: 10 that warm the footer cache, then 40
//!   measured (p50, p90), with the GETs (`read_requests`), pages and bytes each needed.
//!
//! moto answers a GET in a few milliseconds on loopback; real S3 takes tens, so the GET count is
//! the number that carries over.

#[path = "../tests/it/common/s3.rs"]
mod s3;
mod support;

use auditum_proto::pb;
use std::time::Instant;
use support::*;

/// For `s3::governed_config`, which this benchmark does not call.
#[allow(dead_code)]
fn test_config(dir: &std::path::Path) -> auditum_server::config::Config {
    auditum_server::config::Config { data_dir: dir.to_path_buf(), ..Default::default() }
}

const BUCKET_URL: &str = "s3://archive/bench";

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    s3::runtime().block_on(async {
        let total: usize = std::env::var("BENCH_S3_EVENTS").ok().and_then(|text| text.parse().ok()).unwrap_or(1_000_000);
        let page_rows = auditum_server::config::Config::default().page_rows;
        let moto = s3::Moto::start().await;
        moto.locked_bucket("archive").await;
        let (s3_dir, file_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let endpoint = moto.endpoint.clone();
        let s3_start = build_archive_with(s3_dir.path(), total, 100_000, page_rows, |config| {
            config.store = Some(BUCKET_URL.into());
            config.s3_endpoint = Some(endpoint.clone());
            config.retention_mode = Some(auditum_store::RetentionMode::Governance);
            config.retention_days = Some(1);
        })
        .await;
        let file_start = build_archive(file_dir.path(), total, 100_000, page_rows).await;

        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--data-dir"])
            .arg(s3_dir.path())
            .args(s3::serve_args(BUCKET_URL, &moto.endpoint, "1h"))
            .env("AUDITUM_META_AUDIT", "false")
            .env("AUDITUM_IDEMPOTENCY_WINDOW", "60s");
        let (mut s3_server, s3_url) = listening(command).await;
        let (mut file_server, file_url) = spawn_server(file_dir.path(), &[("AUDITUM_META_AUDIT", "false")]).await;

        let mix = mix();
        let s3 = measure(&s3_url, &Queries::new(&mix, s3_start)).await;
        warm_page_cache(&file_dir.path().join("store"));
        let file = measure(&file_url, &Queries::new(&mix, file_start)).await;
        assert_eq!(s3.rows, file.rows, "both stores return the same rows for every needle");

        println!("archive: {total} events in 100,000-event batches, on moto (S3) and on the file store");
        println!("| measure | S3 (moto) | file store (same events, same run) |\n|---|---|---|");
        let line = |name: &str, s3: String, file: String| println!("| {name} | {s3} | {file} |");
        line("fixed needle, cold (first query of the server)", s3.cold.describe(), file.cold.describe());
        line("fixed needle, warm (median of 10)", s3.warm.describe(), file.warm.describe());
        line("random needle: p50 / p90 (40 actors)", s3.random_times(), file.random_times());
        line("random needle: mean per query", s3.random.describe(), file.random.describe());
        let (mut s3_gets, mut file_reads) = (s3.random_gets.clone(), file.random_gets.clone());
        line(
            "random needle: GETs (reads) p50 / max",
            format!("{:.0} / {:.0}", percentile(&mut s3_gets, 0.5), s3_gets[s3_gets.len() - 1]),
            format!("{:.0} / {:.0}", percentile(&mut file_reads, 0.5), file_reads[file_reads.len() - 1]),
        );
        let _ = s3_server.kill().await;
        let _ = file_server.kill().await;
    });
}

/// A query's time and what it fetched (for several queries: their mean).
#[derive(Default, Clone)]
struct Cost {
    ms: f64,
    requests: f64,
    pages: f64,
    kb: f64,
}

impl Cost {
    fn of(ms: f64, stats: &pb::QueryStats) -> Cost {
        Cost { ms, requests: stats.read_requests as f64, pages: stats.pages_read as f64, kb: stats.bytes_read as f64 / 1024.0 }
    }

    fn mean(costs: &[Cost]) -> Cost {
        let count = costs.len().max(1) as f64;
        Cost {
            ms: costs.iter().map(|cost| cost.ms).sum::<f64>() / count,
            requests: costs.iter().map(|cost| cost.requests).sum::<f64>() / count,
            pages: costs.iter().map(|cost| cost.pages).sum::<f64>() / count,
            kb: costs.iter().map(|cost| cost.kb).sum::<f64>() / count,
        }
    }

    fn describe(&self) -> String {
        format!("{:.1} ms; {:.0} reads for {:.0} pages, {:.0} KB", self.ms, self.requests, self.pages, self.kb)
    }
}

struct Measured {
    cold: Cost,
    warm: Cost,
    random: Cost,
    random_ms: Vec<f64>,
    random_gets: Vec<f64>,
    rows: Vec<usize>,
}

impl Measured {
    fn random_times(&self) -> String {
        let mut times = self.random_ms.clone();
        format!("{:.1} / {:.1} ms", percentile(&mut times, 0.5), percentile(&mut times, 0.9))
    }
}

async fn measure(url: &str, queries: &Queries) -> Measured {
    let mut client = QueryClient::connect(url.to_string()).await.unwrap();
    let started = Instant::now();
    let (fixed_rows, stats) = query_all(&mut client, &queries.needle).await;
    let cold = Cost::of(started.elapsed().as_secs_f64() * 1000.0, &stats);
    let mut warm_runs = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let (rows, stats) = query_all(&mut client, &queries.needle).await;
        assert_eq!(rows, fixed_rows);
        warm_runs.push(Cost::of(started.elapsed().as_secs_f64() * 1000.0, &stats));
    }
    warm_runs.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    let warm = warm_runs[warm_runs.len() / 2].clone();
    for needle in &queries.random_needles[..WARMUP_NEEDLES] {
        query_all(&mut client, needle).await;
    }
    let (mut costs, mut rows) = (Vec::new(), vec![fixed_rows]);
    for needle in &queries.random_needles[WARMUP_NEEDLES..WARMUP_NEEDLES + MEASURED_NEEDLES] {
        let started = Instant::now();
        let (found, stats) = query_all(&mut client, needle).await;
        costs.push(Cost::of(started.elapsed().as_secs_f64() * 1000.0, &stats));
        rows.push(found);
    }
    Measured {
        cold,
        warm,
        random: Cost::mean(&costs),
        random_ms: costs.iter().map(|cost| cost.ms).collect(),
        random_gets: costs.iter().map(|cost| cost.requests).collect(),
        rows,
    }
}
