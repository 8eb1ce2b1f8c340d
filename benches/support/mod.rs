//! Shared by the benchmarks: the archive generator (the query issue's event
//! stream), the release server, and small measuring helpers.
#![allow(dead_code)]

use auditum_proto::pb;
use auditum_proto::sample::ArchiveMix;
use auditum_proto::validate::{Redactor, Validator};
use auditum_server::config::Config;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DAY: i64 = 86_400_000_000;
pub const TENANTS: usize = 200;
pub const MIX_SEED: u64 = 42;
/// Events per generated chunk; chunk `i` is the same on every run.
pub const CHUNK: usize = 1000;

pub fn mix() -> ArchiveMix {
    ArchiveMix::new(TENANTS, &mut rand::rngs::StdRng::seed_from_u64(MIX_SEED))
}

/// Chunk `chunk` of a `total`-event stream over the 365 days from `start_time`, in arrival order
/// with 2 % late by up to two days. Deterministic, so two systems can be fed the same events.
pub fn event_chunk(mix: &ArchiveMix, chunk: usize, total: usize, start_time: i64) -> Vec<pb::AuditEvent> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1_000_003 + chunk as u64);
    let step = 365 * DAY / total as i64;
    let first = chunk * CHUNK;
    (first..(first + CHUNK).min(total))
        .map(|index| {
            let late = if rng.gen_bool(0.02) { rng.gen_range(0..2 * DAY) } else { 0 };
            mix.event(&mut rng, start_time + index as i64 * step - late)
        })
        .collect()
}

pub fn chunk_count(total: usize) -> usize {
    total.div_ceil(CHUNK)
}

/// Builds (once: a `complete` marker keeps it) a `total`-event archive in `dir` through the real
/// write path in process: validation, WAL with fsync, sealing into `batch_events`-event batches.
/// Returns the stream's start time.
pub async fn build_archive(dir: &Path, total: usize, batch_events: usize, page_rows: usize) -> i64 {
    build_archive_with(dir, total, batch_events, page_rows, |_| {}).await
}

/// As [`build_archive`], with the server's config adjusted first (a store on S3, say).
pub async fn build_archive_with(dir: &Path, total: usize, batch_events: usize, page_rows: usize, adjust: impl FnOnce(&mut Config)) -> i64 {
    let marker = dir.join("complete");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        return text.trim().parse().expect("archive marker holds its start time");
    }
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        seal_interval: Duration::from_secs(3600),
        batch_max_events: batch_events,
        page_rows,
        wal_max_bytes: 64 * 1024 * 1024 * 1024,
        meta_audit: false,
        http_listen: None,
        ..Config::default()
    };
    adjust(&mut config);
    let running = auditum_server::start(config).await.expect("server");
    let log = running.logs.by_name("default").unwrap().clone();
    let validator = Arc::new(Validator { redactor: Redactor::default() });
    let mix = Arc::new(mix());
    let started = Instant::now();
    let start_time = auditum_format::time::now_micros() - 365 * DAY;
    let writers = 2;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (log, validator, mix) = (log.clone(), validator.clone(), mix.clone());
        tasks.push(tokio::spawn(async move {
            // Writers interleave chunks, so both move through time together, as arrivals do.
            for chunk in (writer..chunk_count(total)).step_by(writers) {
                let now = auditum_format::time::now_micros();
                let records = tokio::task::block_in_place(|| {
                    event_chunk(&mix, chunk, total, start_time)
                        .into_iter()
                        .enumerate()
                        .map(|(i, event)| validator.prepare(i, event, now).unwrap())
                        .collect::<Vec<_>>()
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

/// Starts the release `auditum serve` on `dir` (127.0.0.1, a free port); returns it and its URL.
pub async fn spawn_server(dir: &Path, extra_env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    // AUDITUM_BIN: another build of the server, for paired runs against older code.
    let binary = std::env::var("AUDITUM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_auditum").to_string());
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--data-dir"])
        .arg(dir)
        // A freshly built archive was all sealed within the default hour: keep the idempotency
        // preload to what a server running for a year would hold.
        .env("AUDITUM_IDEMPOTENCY_WINDOW", "60s");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    listening(command).await
}

/// Spawns an `auditum serve` command (stdout piped, stderr dropped, killed on drop) and waits
/// for its "listening" line; returns it and its URL.
pub async fn listening(command: tokio::process::Command) -> (tokio::process::Child, String) {
    let (child, url, _) = listening_with_console(command).await;
    (child, url)
}

/// As [`listening`]; also returns the console's URL when the server serves one.
pub async fn listening_with_console(mut command: tokio::process::Command) -> (tokio::process::Child, String, Option<String>) {
    use tokio::io::AsyncBufReadExt;
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut console = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix("auditum console on ") {
            console = rest.split_whitespace().next().map(|url| url.trim_end_matches('/').to_string());
        }
        if let Some(addr) = line.strip_prefix("auditum listening on ") {
            return (child, format!("http://{addr}"), console);
        }
    }
    panic!("server exited before listening");
}

/// The query benchmarks' archive directory (absolute, created): BENCH_QUERY_ARCHIVE, default
/// target/bench-query-archive.
pub fn query_archive_dir() -> PathBuf {
    let dir = std::env::var("BENCH_QUERY_ARCHIVE").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target/bench-query-archive"));
    std::fs::create_dir_all(&dir).unwrap();
    std::path::absolute(&dir).unwrap()
}

/// The query benchmarks' archive: BENCH_EVENTS events (default 10,000,000) with BENCH_PAGE_ROWS
/// rows per page (default the server's) in [`query_archive_dir`], built once and then reused.
/// Returns the directory, the event count and the stream's start time.
pub async fn query_archive() -> (PathBuf, usize, i64) {
    let total: usize = std::env::var("BENCH_EVENTS").ok().and_then(|text| text.parse().ok()).unwrap_or(10_000_000);
    let page_rows = std::env::var("BENCH_PAGE_ROWS").ok().and_then(|text| text.parse().ok()).unwrap_or(Config::default().page_rows);
    let dir = query_archive_dir();
    let start_time = build_archive(&dir, total, 100_000, page_rows).await;
    (dir, total, start_time)
}

pub type QueryClient = pb::query_service_client::QueryServiceClient<tonic::transport::Channel>;

/// Every page of a query; the row count and the last page's stats.
pub async fn query_all(client: &mut QueryClient, filter: &pb::EventFilter) -> (usize, pb::QueryStats) {
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

/// A JSONL export: (rows, bytes).
pub async fn export_jsonl(client: &mut QueryClient, filter: &pb::EventFilter) -> (u64, usize) {
    let request =
        pb::ExportRequest { filter: Some(filter.clone()), format: pb::ExportFormat::Jsonl as i32, include_unsealed: false, raw: false };
    let mut stream = client.export(request).await.unwrap().into_inner();
    let (mut rows, mut bytes) = (0, 0usize);
    while let Some(message) = stream.message().await.unwrap() {
        match message.item {
            Some(pb::export_response::Item::Chunk(chunk)) => bytes += chunk.len(),
            Some(pb::export_response::Item::Summary(summary)) => rows = summary.rows,
            None => {}
        }
    }
    (rows, bytes)
}

/// The benchmark queries of the query issue over a stream starting at `start_time`.
pub struct Queries {
    pub needle: pb::EventFilter,
    /// Needles of a different random actor each (uniform over the actors, so most have a handful
    /// of events in their window), each with its tenant and a random 30-day window of the year:
    /// [`WARMUP_NEEDLES`] that warm the server's caches, then two measured sets of
    /// [`MEASURED_NEEDLES`] (see the query bench).
    pub random_needles: Vec<pb::EventFilter>,
    pub selective: pb::EventFilter,
    pub month: pb::EventFilter,
    /// The largest tenant's whole year (bench/run's year export and Summarize).
    pub year: pb::EventFilter,
}

pub fn window(start: i64, days: i64) -> (Option<prost_types::Timestamp>, Option<prost_types::Timestamp>) {
    (Some(auditum_proto::convert::timestamp_from_micros(start)), Some(auditum_proto::convert::timestamp_from_micros(start + days * DAY)))
}

/// Random needles that only warm caches (footers, the catalog) before the measured ones.
pub const WARMUP_NEEDLES: usize = 10;
/// Random needles in each measured set, each a different actor.
pub const MEASURED_NEEDLES: usize = 40;

/// A needle: one actor's events (in its tenant) over the 30 days from `start`.
pub fn needle(mix: &ArchiveMix, actor: usize, start: i64) -> pb::EventFilter {
    let (start, end) = window(start, 30);
    pb::EventFilter {
        tenant_id: mix.tenant_of(actor),
        actor_id: ArchiveMix::actor_name(actor),
        start_time: start,
        end_time: end,
        ..Default::default()
    }
}

impl Queries {
    pub fn new(mix: &ArchiveMix, start_time: i64) -> Queries {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1818);
        let random_needles = (0..WARMUP_NEEDLES + 2 * MEASURED_NEEDLES)
            .map(|_| {
                let actor = rng.gen_range(0..auditum_proto::sample::ARCHIVE_ACTORS);
                needle(mix, actor, start_time + rng.gen_range(0..335) * DAY)
            })
            .collect();
        // The needle: a moderately active actor, a 30-day window in the middle of the year.
        let needle = needle(mix, 500, start_time + 180 * DAY);
        // The largest tenant: the one most actors' events land in.
        let top_tenant = mix.tenant_of(0);
        let (start, end) = window(start_time + 200 * DAY, 7);
        let selective = pb::EventFilter {
            tenant_id: top_tenant.clone(),
            actions: vec![mix.action_name(20).to_string()],
            start_time: start,
            end_time: end,
            ..Default::default()
        };
        let (start, end) = window(start_time + 240 * DAY, 30);
        let month = pb::EventFilter { tenant_id: top_tenant.clone(), start_time: start, end_time: end, ..Default::default() };
        let (start, end) = window(start_time, 365);
        let year = pb::EventFilter { tenant_id: top_tenant, start_time: start, end_time: end, ..Default::default() };
        Queries { needle, random_needles, selective, month, year }
    }
}

pub fn micros(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    auditum_proto::convert::timestamp_micros(timestamp.as_ref().unwrap()).unwrap()
}

/// A /proc/PID/status field in MB (VmHWM: peak resident set; VmRSS: current).
pub fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// The `fraction` percentile (0.5, 0.99, …) of `values`, which it sorts: the value at rank
/// `round((n - 1) · fraction)`.
pub fn percentile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * fraction).round() as usize]
}

/// `count` realistic events (the sample generator's), occurring over the last second.
pub fn realistic_events(count: usize, seed: u64) -> Vec<pb::AuditEvent> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let now = auditum_format::time::now_micros();
    (0..count).map(|i| auditum_proto::sample::realistic_event(&mut rng, now - 1_000_000 + i as i64)).collect()
}

/// The size of the default log's latest checkpoint (0 before the first, or when the call fails).
pub async fn checkpoint_size(client: &mut pb::proof_service_client::ProofServiceClient<tonic::transport::Channel>) -> u64 {
    let Ok(response) = client.get_checkpoint(pb::GetCheckpointRequest { log: String::new() }).await else { return 0 };
    response.into_inner().checkpoint.lines().nth(1).and_then(|size| size.parse().ok()).unwrap_or(0)
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

pub fn iso(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).unwrap().format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// Reads every file under `dir` once, so the OS page cache holds it (this machine's kernel
/// reclaims cold page-cache pages, so a "warm" measurement has to ask for it).
pub fn warm_page_cache(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            warm_page_cache(&path);
        } else if let Ok(mut file) = std::fs::File::open(&path) {
            let _ = std::io::copy(&mut file, &mut std::io::sink());
        }
    }
}

pub fn walk_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0) };
    entries.flatten().map(|entry| walk_bytes(&entry.path())).sum()
}

/// Runs bench/duckdb_queries.py with `spec`; its JSON answer.
pub fn run_duckdb(dir: &Path, spec: serde_json::Value) -> serde_json::Value {
    let spec_path = dir.join("duckdb-spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/duckdb_queries.py");
    let output = std::process::Command::new("python3").arg(script).arg(&spec_path).output().expect("python3");
    assert!(output.status.success(), "duckdb: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Median of a DuckDB query's runs after the first (warm), in ms.
pub fn duck_ms(results: &serde_json::Value, name: &str) -> f64 {
    let all: Vec<f64> = results[name]["ms"].as_array().unwrap().iter().map(|value| value.as_f64().unwrap()).collect();
    let mut warm: Vec<f64> = if all.len() > 1 { all[1..].to_vec() } else { all };
    median(&mut warm)
}

/// DuckDB's versions of the three queries, over auditum's batch files.
pub fn duckdb_spec(batches: &Path, queries: &Queries, export_out: &Path) -> serde_json::Value {
    let where_time = "occurred_at >= ?::TIMESTAMPTZ AND occurred_at < ?::TIMESTAMPTZ";
    let (needle, selective, month) = (&queries.needle, &queries.selective, &queries.month);
    let needle_sql = format!("SELECT * FROM events WHERE tenant_id = ? AND actor_id = ? AND {where_time} ORDER BY occurred_at, seq");
    let random_needles: Vec<serde_json::Value> = queries
        .random_needles
        .iter()
        .enumerate()
        .map(|(index, needle)| {
            serde_json::json!({"name": format!("random_needle_{index}"), "sql": needle_sql,
                "params": [needle.tenant_id, needle.actor_id, iso(micros(&needle.start_time)), iso(micros(&needle.end_time))]})
        })
        .collect();
    serde_json::json!({
        "batches": batches,
        "repeat": 5,
        "queries": [
            {"name": "needle", "sql": needle_sql,
             "params": [needle.tenant_id, needle.actor_id, iso(micros(&needle.start_time)), iso(micros(&needle.end_time))]},
            {"name": "selective", "sql": format!("SELECT * FROM events WHERE tenant_id = ? AND action = ? AND {where_time} ORDER BY occurred_at, seq"),
             "params": [selective.tenant_id, selective.actions[0], iso(micros(&selective.start_time)), iso(micros(&selective.end_time))]},
        ],
        "once": random_needles,
        "exports": [
            {"name": "export", "sql": format!("SELECT * EXCLUDE (date, hour, leaf_hash) FROM events WHERE tenant_id = ? AND {where_time} ORDER BY occurred_at, seq"),
             "params": [month.tenant_id, iso(micros(&month.start_time)), iso(micros(&month.end_time))], "out": export_out},
        ],
        "export_repeat": 3,
    })
}

/// User plus system CPU seconds a process has used, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after its closing ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}
