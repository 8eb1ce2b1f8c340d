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

use auditum::config::Config;
use auditum::pb;
use auditum::sample::ArchiveMix;
use auditum::validate::{Redactor, Validator};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000_000;
const TENANTS: usize = 200;
const MIX_SEED: u64 = 42;

async fn build_archive(dir: &Path, total: usize) -> i64 {
    let marker = dir.join("complete");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        return text.trim().parse().expect("archive marker holds its start time");
    }
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        seal_interval: Duration::from_secs(3600),
        batch_max_events: 100_000,
        page_rows: std::env::var("BENCH_PAGE_ROWS").ok().and_then(|text| text.parse().ok()).unwrap_or(Config::default().page_rows),
        wal_max_bytes: 64 * 1024 * 1024 * 1024,
        ..Config::default()
    };
    let running = auditum::server::start(config).await.expect("server");
    let log = running.logs.by_name("default").unwrap().clone();
    let validator = Arc::new(Validator { redactor: Redactor::default() });
    let mix = Arc::new(ArchiveMix::new(TENANTS, &mut rand::rngs::StdRng::seed_from_u64(MIX_SEED)));
    let started = Instant::now();
    let start_time = auditum::log::now_micros() - 365 * DAY;
    let step = 365 * DAY / total as i64;
    let writers = 2;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (log, validator, mix) = (log.clone(), validator.clone(), mix.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(writer as u64);
            // Writers interleave, so both move through time together, as arrivals do.
            let mut index = writer;
            while index < total {
                let now = auditum::log::now_micros();
                let mut events = Vec::with_capacity(1000);
                while events.len() < 1000 && index < total {
                    let late = if rng.gen_bool(0.02) { rng.gen_range(0..2 * DAY) } else { 0 };
                    events.push(mix.event(&mut rng, start_time + index as i64 * step - late));
                    index += writers;
                }
                let records = tokio::task::block_in_place(|| {
                    events.into_iter().enumerate().map(|(i, event)| validator.prepare(i, event, now).unwrap()).collect::<Vec<_>>()
                });
                log.append(records).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    log.seal_now().await.unwrap();
    eprintln!("archive: {total} events appended and sealed in {:.1}s", started.elapsed().as_secs_f64());
    running.stop().await.unwrap();
    std::fs::write(&marker, start_time.to_string()).unwrap();
    start_time
}

/// A /proc/PID/status field in MB (VmHWM: peak resident set; VmRSS: current).
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn iso(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).unwrap().format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

type Client = pb::query_service_client::QueryServiceClient<tonic::transport::Channel>;

async fn query_all(client: &mut Client, filter: &pb::EventFilter) -> (usize, pb::QueryStats) {
    let (mut rows, mut token, mut stats) = (0, String::new(), pb::QueryStats::default());
    loop {
        let request = pb::QueryRequest { filter: Some(filter.clone()), page_size: 1000, page_token: token, descending: false };
        let response = client.query(request).await.unwrap().into_inner();
        rows += response.events.len();
        stats = response.stats.unwrap_or(stats);
        token = response.next_page_token;
        if token.is_empty() {
            return (rows, stats);
        }
    }
}

async fn spawn_server(dir: &Path) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--seal-interval", "1h", "--data-dir"])
        .arg(dir)
        // The archive was just built, so all of it was sealed within the default hour: keep the
        // idempotency preload to what a server running for a year would hold.
        .env("AUDITUM_IDEMPOTENCY_WINDOW", "60s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(addr) = line.strip_prefix("auditum listening on ") {
            return (child, format!("http://{addr}"));
        }
    }
    panic!("server exited before listening");
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let total: usize = std::env::var("BENCH_EVENTS").ok().and_then(|text| text.parse().ok()).unwrap_or(10_000_000);
    let dir = std::env::var("BENCH_QUERY_ARCHIVE").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target/bench-query-archive"));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::path::absolute(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let start_time = build_archive(&dir, total).await;
        let mix = ArchiveMix::new(TENANTS, &mut rand::rngs::StdRng::seed_from_u64(MIX_SEED));
        let (mut server, url) = spawn_server(&dir).await;
        let pid = server.id().unwrap();
        let mut client = Client::connect(url).await.unwrap().max_decoding_message_size(256 * 1024 * 1024);

        // The needle: a moderately active actor, a 30-day window in the middle of the year.
        let actor = 500;
        let needle_start = start_time + 180 * DAY;
        let needle = pb::EventFilter {
            tenant_id: mix.tenant_of(actor),
            actor_id: ArchiveMix::actor_name(actor),
            start_time: Some(auditum::api::timestamp_from_micros(needle_start)),
            end_time: Some(auditum::api::timestamp_from_micros(needle_start + 30 * DAY)),
            ..Default::default()
        };
        // The largest tenant: the one most actors' events land in.
        let top_tenant = mix.tenant_of(0);
        let week_start = start_time + 200 * DAY;
        let selective = pb::EventFilter {
            tenant_id: top_tenant.clone(),
            actions: vec![mix.action_name(20).to_string()],
            start_time: Some(auditum::api::timestamp_from_micros(week_start)),
            end_time: Some(auditum::api::timestamp_from_micros(week_start + 7 * DAY)),
            ..Default::default()
        };
        let month_start = start_time + 240 * DAY;
        let month = pb::EventFilter {
            tenant_id: top_tenant.clone(),
            start_time: Some(auditum::api::timestamp_from_micros(month_start)),
            end_time: Some(auditum::api::timestamp_from_micros(month_start + 30 * DAY)),
            ..Default::default()
        };

        let (needle_rows, cold_stats) = query_all(&mut client, &needle).await;
        let mut needle_ms = Vec::new();
        let mut warm_stats = cold_stats;
        for _ in 0..20 {
            let started = Instant::now();
            let (rows, stats) = query_all(&mut client, &needle).await;
            needle_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(rows, needle_rows);
            warm_stats = stats;
        }
        let mut selective_ms = Vec::new();
        let mut selective_rows = 0;
        for _ in 0..5 {
            let started = Instant::now();
            selective_rows = query_all(&mut client, &selective).await.0;
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
            let request = pb::ExportRequest { filter: Some(month.clone()), format: pb::ExportFormat::Jsonl as i32, include_unsealed: false };
            let mut stream = client.export(request).await.unwrap().into_inner();
            let mut bytes = 0usize;
            while let Some(message) = stream.message().await.unwrap() {
                match message.item {
                    Some(pb::export_response::Item::Chunk(chunk)) => bytes += chunk.len(),
                    Some(pb::export_response::Item::Summary(summary)) => export_rows = summary.rows,
                    None => {}
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("export: {export_rows} rows, {bytes} bytes in {seconds:.2}s");
            export_rates.push(export_rows as f64 / seconds);
        }
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let rss_during_export = sampler.join().unwrap();
        let peak_after_export = status_mb(pid, "VmHWM:");

        // DuckDB over the same files, same queries, same run.
        let where_time = "occurred_at >= ?::TIMESTAMPTZ AND occurred_at < ?::TIMESTAMPTZ";
        let duckdb_out = dir.join("duckdb-export.jsonl");
        let spec = serde_json::json!({
            "batches": dir.join("store/default/batches"),
            "repeat": 5,
            "queries": [
                {"name": "needle", "sql": format!("SELECT * FROM events WHERE tenant_id = ? AND actor_id = ? AND {where_time} ORDER BY occurred_at, seq"),
                 "params": [needle.tenant_id, needle.actor_id, iso(needle_start), iso(needle_start + 30 * DAY)]},
                {"name": "selective", "sql": format!("SELECT * FROM events WHERE tenant_id = ? AND action = ? AND {where_time} ORDER BY occurred_at, seq"),
                 "params": [top_tenant, mix.action_name(20), iso(week_start), iso(week_start + 7 * DAY)]},
            ],
            "exports": [
                {"name": "export", "sql": format!("SELECT * EXCLUDE (date, hour, leaf_hash) FROM events WHERE tenant_id = ? AND {where_time} ORDER BY occurred_at, seq"),
                 "params": [top_tenant, iso(month_start), iso(month_start + 30 * DAY)], "out": duckdb_out},
            ],
            "export_repeat": 3,
        });
        let spec_path = dir.join("duckdb-spec.json");
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/duckdb_queries.py");
        let output = std::process::Command::new("python3").arg(script).arg(&spec_path).output().expect("python3");
        assert!(output.status.success(), "duckdb: {}", String::from_utf8_lossy(&output.stderr));
        let duck: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let duck_ms = |name: &str| -> f64 {
            let mut runs: Vec<f64> = duck[name]["ms"].as_array().unwrap().iter().skip(1).map(|value| value.as_f64().unwrap()).collect();
            if runs.is_empty() {
                runs = duck[name]["ms"].as_array().unwrap().iter().map(|value| value.as_f64().unwrap()).collect();
            }
            median(&mut runs)
        };
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

fn walk_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0) };
    entries.flatten().map(|entry| walk_bytes(&entry.path())).sum()
}
