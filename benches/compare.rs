//! auditum against what users do today: the `audit_logs` table in Postgres 15, and DuckDB over
//! auditum's own Parquet files. Run through `bench/run` (installs Postgres, DuckDB, matplotlib),
//! or `cargo bench --bench compare` on a machine that has them. Results: BENCHMARKS.md.
//!
//! One event stream (the query issue's generator: 200 tenants, 100,000 actors, 200 actions, all
//! Zipf; BENCH_EVENTS, default 5,000,000, over 365 days) feeds both systems:
//! - storage and queries: auditum builds its archive through the real write path; Postgres loads
//!   the same events (COPY) into the typical table, with its two indexes, then ANALYZE;
//! - queries: needle, selective and export of the query issue, auditum (release server, loopback
//!   gRPC) vs Postgres (loopback, tokio-postgres) vs DuckDB (same Parquet files), warm medians;
//! - ingest: durable Append over gRPC vs multi-row INSERTs with `synchronous_commit = on`, 100 and
//!   1000 events per call, 16 calls in flight (auditum: 4 connections × 4; Postgres: 16
//!   connections), BENCH_SECONDS per run (default 10), BENCH_RUNS runs (default 3), medians;
//! - ingest under query load: the 1000-event phase into the loaded archive/table while two
//!   clients run the needle and selective queries back to back.
//!
//! Writes target/bench-compare/results.json (bench/plot.py draws it) and prints a markdown table.

mod support;

use auditum_proto::pb;
use auditum_proto::validate::{Redactor, Validator};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

#[path = "../tests/it/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;
use postgres::Postgres;

/// Tuned as an operator would for a write-heavy table (bigger shared buffers and WAL, no
/// checkpoints mid-run), durability untouched.
const POSTGRES_SETTINGS: &str =
    "-c shared_buffers=2GB -c max_wal_size=6GB -c checkpoint_timeout=30min -c wal_buffers=64MB -c synchronous_commit=on -c fsync=on";

async fn connect_postgres(port: u16) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Runs `ingest` while two loops (`query_loop(0)`, `query_loop(1)`) query back to back;
/// the ingest rate and the queries per second alongside it.
async fn with_query_load<L, Fut>(query_loop: L, ingest: impl std::future::Future<Output = f64>, seconds: f64) -> (f64, f64)
where
    L: Fn(usize, Arc<AtomicBool>, Arc<AtomicU64>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let running = Arc::new(AtomicBool::new(true));
    let done = Arc::new(AtomicU64::new(0));
    // BENCH_QUERY_CLIENTS: 2 by default (random needles, the selective query); 0 measures the ingest
    // alone, 1 the needles alone.
    let clients: usize = env_number("BENCH_QUERY_CLIENTS", 2).min(2);
    let loops: Vec<_> = (0..clients).map(|which| tokio::spawn(query_loop(which, running.clone(), done.clone()))).collect();
    let rate = ingest.await;
    running.store(false, Ordering::Relaxed);
    for query_loop in loops {
        query_loop.await.unwrap();
    }
    (rate, done.load(Ordering::Relaxed) as f64 / seconds)
}

/// The typical audit table.
const SCHEMA: &str = "
CREATE TABLE audit_logs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id text NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  target text,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX audit_logs_tenant_created ON audit_logs (tenant_id, created_at);
CREATE INDEX audit_logs_actor ON audit_logs (actor);
";

/// One event as the typical table holds it: the rest of the event in the JSONB payload.
#[derive(Clone)]
struct PgRow {
    tenant_id: String,
    actor: String,
    action: String,
    target: Option<String>,
    payload: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
}

fn pg_row(record: &auditum_format::event::EventRecord) -> PgRow {
    let mut payload = match record.to_json() {
        serde_json::Value::Object(object) => object,
        _ => unreachable!("an event is an object"),
    };
    for column in ["seq", "id", "tenant_id", "action", "actor_id", "occurred_at", "received_at", "target_type", "target_id"] {
        payload.remove(column);
    }
    payload.retain(|_, value| !value.is_null());
    // Nested JSON as JSON, as an application would store it.
    for column in ["before", "after", "metadata"] {
        if let Some(serde_json::Value::String(text)) = payload.get(column) {
            let parsed = serde_json::from_str(text).unwrap();
            payload.insert(column.to_string(), parsed);
        }
    }
    let target = match (&record.target_type, &record.target_id) {
        (Some(kind), Some(id)) => Some(format!("{kind}:{id}")),
        _ => None,
    };
    PgRow {
        tenant_id: record.tenant_id.clone(),
        actor: record.actor_id.clone(),
        action: record.action.clone(),
        target,
        payload: serde_json::Value::Object(payload),
        created_at: chrono::DateTime::from_timestamp_micros(record.occurred_at).unwrap(),
    }
}

fn records(events: Vec<pb::AuditEvent>) -> Vec<auditum_format::event::EventRecord> {
    let validator = Validator { redactor: Redactor::default() };
    let now = auditum_format::time::now_micros();
    events.into_iter().enumerate().map(|(i, event)| validator.prepare(i, event, now).unwrap()).collect()
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
fn copy_text(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
}

async fn load_postgres(postgres: &Postgres, mix: &auditum_proto::sample::ArchiveMix, total: usize, start_time: i64) -> f64 {
    use futures::SinkExt;
    let client = postgres.connect().await;
    client.batch_execute(SCHEMA).await.unwrap();
    let started = Instant::now();
    let sink = client.copy_in("COPY audit_logs (tenant_id, actor, action, target, payload, created_at) FROM STDIN").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    for chunk in 0..chunk_count(total) {
        let mut text = String::with_capacity(CHUNK * 900);
        for record in records(event_chunk(mix, chunk, total, start_time)) {
            let row = pg_row(&record);
            for (index, field) in [Some(&row.tenant_id), Some(&row.actor), Some(&row.action), row.target.as_ref()].into_iter().enumerate() {
                if index > 0 {
                    text.push('\t');
                }
                match field {
                    Some(value) => copy_text(&mut text, value),
                    None => text.push_str("\\N"),
                }
            }
            text.push('\t');
            copy_text(&mut text, &row.payload.to_string());
            text.push('\t');
            text.push_str(&row.created_at.to_rfc3339());
            text.push('\n');
        }
        sink.send(bytes::Bytes::from(text)).await.unwrap();
    }
    let rows = sink.as_mut().finish().await.unwrap();
    assert_eq!(rows as usize, total);
    client.batch_execute("ANALYZE audit_logs; CHECKPOINT;").await.unwrap();
    started.elapsed().as_secs_f64()
}

/// Events for the ingest phases: fresh, realistic, "now"; ids left to each system.
fn ingest_pool(mix: &auditum_proto::sample::ArchiveMix, chunks: usize) -> Vec<Vec<pb::AuditEvent>> {
    use rand::SeedableRng;
    let now = auditum_format::time::now_micros();
    (0..chunks)
        .map(|chunk| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7_000_000 + chunk as u64);
            (0..CHUNK).map(|_| mix.event(&mut rng, now)).collect()
        })
        .collect()
}

const IN_FLIGHT: usize = 16;

/// Holds writers to a target rate: a call may start once the events before it are due.
#[derive(Clone)]
struct Pace {
    origin: Instant,
    events_per_second: f64,
    dispatched: Arc<AtomicU64>,
}

impl Pace {
    fn new(events_per_second: f64) -> Pace {
        Pace { origin: Instant::now(), events_per_second, dispatched: Arc::default() }
    }

    async fn wait(&self, events: usize) {
        let before = self.dispatched.fetch_add(events as u64, Ordering::Relaxed);
        let due = self.origin + Duration::from_secs_f64(before as f64 / self.events_per_second);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Durable Append throughput (events/s): 4 connections × 4 calls in flight for `seconds`.
async fn auditum_ingest(url: &str, pool: &Arc<Vec<pb::AppendRequest>>, seconds: f64, pace: Option<Pace>) -> f64 {
    let acknowledged = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for connection in 0..4 {
        let client = auditum_client::connect(url).await.unwrap();
        for task in 0..IN_FLIGHT / 4 {
            let (mut client, pool, acknowledged, pace) = (client.clone(), pool.clone(), acknowledged.clone(), pace.clone());
            tasks.push(tokio::spawn(async move {
                let mut next = connection * 7 + task * 3;
                while Instant::now() < deadline {
                    let request = pool[next % pool.len()].clone();
                    next += 1;
                    if let Some(pace) = &pace {
                        pace.wait(request.events.len()).await;
                    }
                    let results = client.append(request).await.unwrap().into_inner().results;
                    acknowledged.fetch_add(results.len() as u64, Ordering::Relaxed);
                }
            }));
        }
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    acknowledged.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(seconds)
}

/// INSERT throughput (rows/s): 16 connections, one multi-row INSERT each at a time.
async fn postgres_ingest(postgres: &Postgres, pool: &Arc<Vec<Vec<PgRow>>>, seconds: f64, pace: Option<Pace>) -> f64 {
    let inserted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for connection in 0..IN_FLIGHT {
        let client = postgres.connect().await;
        let (pool, inserted, pace) = (pool.clone(), inserted.clone(), pace.clone());
        tasks.push(tokio::spawn(async move {
            let batch = pool[0].len();
            let values: Vec<String> = (0..batch)
                .map(|row| {
                    let base = row * 6;
                    format!("(${}, ${}, ${}, ${}, ${}, ${})", base + 1, base + 2, base + 3, base + 4, base + 5, base + 6)
                })
                .collect();
            let statement = client
                .prepare(&format!(
                    "INSERT INTO audit_logs (tenant_id, actor, action, target, payload, created_at) VALUES {}",
                    values.join(", ")
                ))
                .await
                .unwrap();
            let mut next = connection * 5;
            while Instant::now() < deadline {
                let rows = &pool[next % pool.len()];
                next += 1;
                if let Some(pace) = &pace {
                    pace.wait(rows.len()).await;
                }
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::with_capacity(batch * 6);
                for row in rows {
                    params.extend([
                        &row.tenant_id as &(dyn tokio_postgres::types::ToSql + Sync),
                        &row.actor,
                        &row.action,
                        &row.target,
                        &row.payload,
                        &row.created_at,
                    ]);
                }
                let count = client.execute(&statement, &params).await.unwrap();
                inserted.fetch_add(count, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    inserted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(seconds)
}

fn batches<T: Clone>(pool: &[Vec<T>], size: usize) -> Vec<Vec<T>> {
    pool.iter().flat_map(|chunk| chunk.chunks(size).map(<[T]>::to_vec).collect::<Vec<_>>()).collect()
}

/// The Postgres versions of the three queries.
struct PgQueries {
    needle: PgNeedle,
    /// The random-actor needles of [`Queries`], for the paced phase.
    random_needles: Vec<PgNeedle>,
    selective: (String, String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    export_sql: String,
    /// The largest tenant's year: exported, and counted by action per day.
    year_export_sql: String,
    year: (String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
}

/// (tenant, actor, start, end)
type PgNeedle = (String, String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

fn pg_needle(filter: &pb::EventFilter) -> PgNeedle {
    (filter.tenant_id.clone(), filter.actor_id.clone(), utc(&filter.start_time), utc(&filter.end_time))
}

fn utc(timestamp: &Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(micros(timestamp)).unwrap()
}

impl PgQueries {
    fn new(queries: &Queries) -> PgQueries {
        let (needle, selective, month, year) = (&queries.needle, &queries.selective, &queries.month, &queries.year);
        let export_sql = |filter: &pb::EventFilter| {
            format!(
                "COPY (SELECT to_jsonb(a) FROM audit_logs a WHERE tenant_id = '{}' AND created_at >= '{}' AND created_at < '{}' ORDER BY created_at) TO STDOUT",
                filter.tenant_id,
                utc(&filter.start_time).to_rfc3339(),
                utc(&filter.end_time).to_rfc3339()
            )
        };
        PgQueries {
            year_export_sql: export_sql(year),
            year: (year.tenant_id.clone(), utc(&year.start_time), utc(&year.end_time)),
            needle: pg_needle(needle),
            random_needles: queries.random_needles.iter().map(pg_needle).collect(),
            selective: (selective.tenant_id.clone(), selective.actions[0].clone(), utc(&selective.start_time), utc(&selective.end_time)),
            export_sql: export_sql(month),
        }
    }

    async fn needle(&self, client: &tokio_postgres::Client) -> usize {
        Self::needle_of(&self.needle, client).await
    }

    async fn needle_of((tenant, actor, start, end): &PgNeedle, client: &tokio_postgres::Client) -> usize {
        let sql =
            "SELECT * FROM audit_logs WHERE tenant_id = $1 AND actor = $2 AND created_at >= $3 AND created_at < $4 ORDER BY created_at";
        client.query(sql, &[tenant, actor, start, end]).await.unwrap().len()
    }

    async fn selective(&self, client: &tokio_postgres::Client) -> usize {
        let (tenant, action, start, end) = &self.selective;
        let sql =
            "SELECT * FROM audit_logs WHERE tenant_id = $1 AND action = $2 AND created_at >= $3 AND created_at < $4 ORDER BY created_at";
        client.query(sql, &[tenant, action, start, end]).await.unwrap().len()
    }

    /// Groups of the year's events by action per UTC day (the Summarize peer).
    async fn summarize(&self, client: &tokio_postgres::Client) -> usize {
        let (tenant, start, end) = &self.year;
        let sql = "SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AS day, action, count(*) FROM audit_logs \
                   WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1, 2";
        client.query(sql, &[tenant, start, end]).await.unwrap().len()
    }

    /// (rows, bytes) of the JSON-lines export of the month.
    async fn export(&self, client: &tokio_postgres::Client) -> (u64, usize) {
        Self::copy_out(&self.export_sql, client).await
    }

    async fn copy_out(sql: &str, client: &tokio_postgres::Client) -> (u64, usize) {
        use futures::StreamExt;
        let stream = client.copy_out(sql).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        let (mut rows, mut bytes) = (0u64, 0usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            bytes += chunk.len();
            rows += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
        }
        (rows, bytes)
    }
}

/// Milliseconds of each of `runs` runs of `query`.
async fn time_runs<F, Fut>(runs: usize, mut query: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        query().await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|text| text.parse().ok()).unwrap_or(default)
}

/// A server (with `BENCH_SERVER_ENV`, space-separated `NAME=value`s, in its environment) on a
/// fresh copy of `archive` under `root`, and a query client of it: the server, its URL, the
/// client and the copy's directory.
async fn server_on_copy(archive: &std::path::Path, root: &std::path::Path) -> (tokio::process::Child, String, QueryClient, PathBuf) {
    let server_env = std::env::var("BENCH_SERVER_ENV").unwrap_or_default();
    let server_env: Vec<(&str, &str)> = server_env.split_whitespace().filter_map(|pair| pair.split_once('=')).collect();
    let work = root.join("auditum-work");
    let _ = std::fs::remove_dir_all(&work);
    let copied = std::process::Command::new("cp").arg("-a").arg(archive).arg(&work).status().unwrap();
    assert!(copied.success(), "cp -a {} {}", archive.display(), work.display());
    let (server, url) = spawn_server(&work, &server_env).await;
    let client = QueryClient::connect(url.clone()).await.unwrap().max_decoding_message_size(256 * 1024 * 1024);
    (server, url, client, work)
}

/// `BENCH_ONLY=paced`: auditum's paced phase alone (no Postgres, no DuckDB), with each query's
/// latency, for work on reads under write load. `BENCH_SERVER_ENV="AUDITUM_META_AUDIT=false"`
/// (space-separated `NAME=value`s) sets the server's environment.
async fn paced_only(
    archive: &std::path::Path,
    root: &std::path::Path,
    mix: &auditum_proto::sample::ArchiveMix,
    start_time: i64,
    seconds: f64,
    runs: usize,
) {
    let paced_rate: f64 = env_number("BENCH_PACED_RATE", 100_000.0);
    let pool = ingest_pool(mix, 64);
    let pool_1000: Arc<Vec<pb::AppendRequest>> =
        Arc::new(batches(&pool, 1000).into_iter().map(|events| pb::AppendRequest { events, wait_for_seal: false }).collect());
    let (mut server, url, client, work) = server_on_copy(archive, root).await;
    // BENCH_UNTHROTTLED_FIRST=1: as in the full bench, an unthrottled phase before the paced runs.
    let unthrottled_first = std::env::var("BENCH_UNTHROTTLED_FIRST").is_ok();
    for run in 0..runs + usize::from(unthrottled_first) {
        let pace = (!unthrottled_first || run > 0).then(|| Pace::new(paced_rate));
        let latencies: Arc<std::sync::Mutex<[Vec<f64>; 2]>> = Arc::default();
        // Unsealed events the server copied and tested for the queries (QueryStats).
        let unsealed_considered = Arc::new(AtomicU64::new(0));
        let loops = |which: usize, running: Arc<AtomicBool>, done: Arc<AtomicU64>| {
            let (mut client, queries, latencies) = (client.clone(), Queries::new(mix, start_time), latencies.clone());
            let unsealed_considered = unsealed_considered.clone();
            async move {
                let mut next = run * 17;
                while running.load(Ordering::Relaxed) {
                    let filter = if which == 0 { &queries.random_needles[next % queries.random_needles.len()] } else { &queries.selective };
                    next += 1;
                    let started = Instant::now();
                    let (_, stats) = query_all(&mut client, filter).await;
                    latencies.lock().unwrap()[which].push(started.elapsed().as_secs_f64() * 1000.0);
                    unsealed_considered.fetch_add(stats.unsealed_considered, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let ingest = auditum_ingest(&url, &pool_1000, seconds, pace.clone());
        let (rate, queries_per_s) = with_query_load(loops, ingest, seconds).await;
        let mut latencies = latencies.lock().unwrap().clone();
        let [needles, selective] = &mut latencies;
        let per_query = unsealed_considered.load(Ordering::Relaxed) as f64 / (needles.len() + selective.len()).max(1) as f64;
        let (needle_count, selective_count) = (needles.len(), selective.len());
        // A query type that never finished within the run reads as 0 rather than panicking.
        for latencies in [&mut *needles, &mut *selective] {
            if latencies.is_empty() {
                latencies.push(0.0);
            }
        }
        eprintln!(
            "{} run {run}: {rate:.0} events/s held, {queries_per_s:.1} queries/s, {per_query:.0} unsealed events tested per query; needle ms p50 {:.1} p90 {:.1} max {:.1} ({}); selective ms p50 {:.1} p90 {:.1} max {:.1} ({})",
            if pace.is_some() { "paced" } else { "unthrottled" },
            percentile(needles, 0.5),
            percentile(needles, 0.9),
            percentile(needles, 1.0),
            needle_count,
            percentile(selective, 0.5),
            percentile(selective, 0.9),
            percentile(selective, 1.0),
            selective_count,
        );
    }
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&work);
}

/// Summarize of the largest tenant's year by action per UTC day: the bench's dashboard question.
fn year_by_action_per_day(queries: &Queries) -> pb::SummarizeRequest {
    pb::SummarizeRequest {
        filter: Some(queries.year.clone()),
        group_by: vec![pb::SummaryDimension::Action as i32],
        bucket: pb::TimeBucket::Day as i32,
        limit: 10_000,
    }
}

/// One read alone on a copy of the archive, for work on its time (`BENCH_SERVER_ENV` as for
/// `paced`), `BENCH_SUMMARIZE_CALLS` times (default 50):
/// - `BENCH_ONLY=summarize`: Summarize of the largest tenant's year by action per day, warm
///   calls after the first;
/// - `BENCH_ONLY=export`: JSON-lines exports of the largest tenant's month, then of its year.
async fn reads_only(archive: &std::path::Path, root: &std::path::Path, mix: &auditum_proto::sample::ArchiveMix, start_time: i64) {
    let calls: usize = env_number("BENCH_SUMMARIZE_CALLS", 50);
    let (mut server, _, client, work) = server_on_copy(archive, root).await;
    let queries = Queries::new(mix, start_time);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("export") {
        for (name, filter) in [("month", &queries.month), ("year", &queries.year)] {
            let mut rates = Vec::new();
            for _ in 0..calls {
                let started = Instant::now();
                let (rows, _) = export_jsonl(&mut client.clone(), filter).await;
                rates.push(rows as f64 / started.elapsed().as_secs_f64());
            }
            eprintln!(
                "export of the {name}, {calls} calls: events/s min {:.0} p50 {:.0} max {:.0}",
                percentile(&mut rates, 0.0),
                percentile(&mut rates, 0.5),
                percentile(&mut rates, 1.0)
            );
        }
        let _ = server.kill().await;
        let _ = std::fs::remove_dir_all(&work);
        return;
    }
    let summarize = year_by_action_per_day(&queries);
    let started = Instant::now();
    let rows = client.clone().summarize(summarize.clone()).await.unwrap().into_inner().rows.len();
    eprintln!("summarize first call: {:.1} ms, {rows} rows", started.elapsed().as_secs_f64() * 1000.0);
    let mut times = time_runs(calls, || {
        let mut client = client.clone();
        let request = summarize.clone();
        async move { client.summarize(request).await.unwrap().into_inner().rows.len() }
    })
    .await;
    eprintln!(
        "summarize warm, {calls} calls: ms min {:.1} p50 {:.1} p90 {:.1} max {:.1}",
        percentile(&mut times, 0.0),
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.9),
        percentile(&mut times, 1.0)
    );
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&work);
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let total: usize = env_number("BENCH_EVENTS", 5_000_000);
    let seconds: f64 = env_number("BENCH_SECONDS", 10.0);
    let runs: usize = env_number("BENCH_RUNS", 3);
    let root =
        std::path::absolute(PathBuf::from(std::env::var("BENCH_COMPARE_DIR").unwrap_or_else(|_| "target/bench-compare".into()))).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mix = mix();
        let archive = root.join(format!("auditum-archive-{total}"));
        std::fs::create_dir_all(&archive).unwrap();
        let build_started = Instant::now();
        let start_time = build_archive(&archive, total, 100_000, auditum_server::config::Config::default().page_rows).await;
        eprintln!("auditum archive ready in {:.0}s", build_started.elapsed().as_secs_f64());
        if std::env::var("BENCH_ONLY").as_deref() == Ok("paced") {
            return paced_only(&archive, &root, &mix, start_time, seconds, runs).await;
        }
        if matches!(std::env::var("BENCH_ONLY").as_deref(), Ok("summarize" | "export")) {
            return reads_only(&archive, &root, &mix, start_time).await;
        }
        let postgres = Postgres::start_with(POSTGRES_SETTINGS);
        let load_seconds = load_postgres(&postgres, &mix, total, start_time).await;
        eprintln!("postgres: {total} rows loaded with COPY, indexed and analyzed in {load_seconds:.0}s");

        // Storage.
        let auditum_bytes = walk_bytes(&archive.join("store"));
        let pg = postgres.connect().await;
        let table_bytes: i64 = pg.query_one("SELECT pg_total_relation_size('audit_logs')", &[]).await.unwrap().get(0);
        let heap_bytes: i64 = pg.query_one("SELECT pg_relation_size('audit_logs')", &[]).await.unwrap().get(0);
        let index_bytes: i64 = pg.query_one("SELECT pg_indexes_size('audit_logs')", &[]).await.unwrap().get(0);
        let storage = serde_json::json!({
            "auditum_bytes_per_event": auditum_bytes as f64 / total as f64,
            "postgres_bytes_per_event": table_bytes as f64 / total as f64,
            "postgres_heap_bytes_per_event": heap_bytes as f64 / total as f64,
            "postgres_index_bytes_per_event": index_bytes as f64 / total as f64,
        });
        eprintln!("storage: {storage}");

        // Queries: auditum (default settings, meta-audit on), Postgres, DuckDB.
        let queries = Queries::new(&mix, start_time);
        let pg_queries = PgQueries::new(&queries);
        // The servers work on a copy: appends and meta-audit records never change the measured archive.
        let work = root.join("auditum-work");
        let _ = std::fs::remove_dir_all(&work);
        let copied = std::process::Command::new("cp").arg("-a").arg(&archive).arg(&work).status().unwrap();
        assert!(copied.success(), "cp -a {} {}", archive.display(), work.display());
        let (mut server, url) = spawn_server(&work, &[]).await;
        let mut client = QueryClient::connect(url.clone()).await.unwrap().max_decoding_message_size(256 * 1024 * 1024);
        let needle_rows = query_all(&mut client, &queries.needle).await.0;
        let selective_rows = query_all(&mut client, &queries.selective).await.0;
        assert_eq!(pg_queries.needle(&pg).await, needle_rows, "Postgres finds the same needle rows");
        assert_eq!(pg_queries.selective(&pg).await, selective_rows);
        let auditum_needle = time_runs(20, || { let mut client = client.clone(); let filter = queries.needle.clone(); async move { query_all(&mut client, &filter).await.0 } }).await;
        let auditum_selective = time_runs(10, || { let mut client = client.clone(); let filter = queries.selective.clone(); async move { query_all(&mut client, &filter).await.0 } }).await;
        let pg_needle = time_runs(20, || pg_queries.needle(&pg)).await;
        let pg_selective = time_runs(10, || pg_queries.selective(&pg)).await;
        let mut auditum_export = Vec::new();
        let mut pg_export = Vec::new();
        let mut export_rows = 0;
        for _ in 0..3 {
            let started = Instant::now();
            export_rows = export_jsonl(&mut client, &queries.month).await.0;
            auditum_export.push(export_rows as f64 / started.elapsed().as_secs_f64());
            let started = Instant::now();
            let (rows, _) = pg_queries.export(&pg).await;
            assert_eq!(rows, export_rows, "Postgres exports the same rows");
            pg_export.push(rows as f64 / started.elapsed().as_secs_f64());
        }
        // The largest tenant's year: Summarize by action per day (the first call of the question,
        // then warm), and the whole year exported once.
        let summarize = year_by_action_per_day(&queries);
        let started = Instant::now();
        let summary_rows = client.summarize(summarize.clone()).await.unwrap().into_inner().rows.len();
        let auditum_summarize_first = started.elapsed().as_secs_f64() * 1000.0;
        let auditum_summarize = time_runs(10, || { let mut client = client.clone(); let request = summarize.clone(); async move { client.summarize(request).await.unwrap().into_inner().rows.len() } }).await;
        assert_eq!(pg_queries.summarize(&pg).await, summary_rows, "Postgres finds the same day × action groups");
        let pg_summarize = time_runs(5, || pg_queries.summarize(&pg)).await;
        let started = Instant::now();
        let year_rows = export_jsonl(&mut client, &queries.year).await.0;
        let auditum_year_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        assert_eq!(PgQueries::copy_out(&pg_queries.year_export_sql, &pg).await.0, year_rows, "Postgres exports the same year");
        let pg_year_s = started.elapsed().as_secs_f64();
        eprintln!("year of the largest tenant: {year_rows} events; summarize first {auditum_summarize_first:.0} ms");

        let mut spec = duckdb_spec(&work.join("store/default/batches"), &queries, &root.join("duckdb-export.jsonl"));
        let where_year = "tenant_id = ? AND occurred_at >= ?::TIMESTAMPTZ AND occurred_at < ?::TIMESTAMPTZ";
        let year_params = serde_json::json!([queries.year.tenant_id, iso(micros(&queries.year.start_time)), iso(micros(&queries.year.end_time))]);
        spec["queries"].as_array_mut().unwrap().push(serde_json::json!({"name": "summarize",
            "sql": format!("SELECT date_trunc('day', occurred_at AT TIME ZONE 'UTC') AS day, action, count(*) AS n FROM events WHERE {where_year} GROUP BY 1, 2"),
            "params": year_params}));
        spec["exports"].as_array_mut().unwrap().push(serde_json::json!({"name": "export_year", "repeat": 1,
            "sql": format!("SELECT * EXCLUDE (date, hour, leaf_hash) FROM events WHERE {where_year} ORDER BY occurred_at, seq"),
            "params": year_params, "out": root.join("duckdb-export.jsonl")}));
        let duck = run_duckdb(&root, spec);
        assert_eq!(duck["needle"]["rows"].as_u64(), Some(needle_rows as u64));
        assert_eq!(duck["export"]["rows"].as_u64(), Some(export_rows));
        assert_eq!(duck["summarize"]["rows"].as_u64(), Some(summary_rows as u64), "DuckDB finds the same groups");
        assert_eq!(duck["export_year"]["rows"].as_u64(), Some(year_rows));
        let _ = std::fs::remove_file(root.join("duckdb-export.jsonl"));
        let duck_year_s = duck["export_year"]["ms"][0].as_f64().unwrap() / 1000.0;
        let queries_result = serde_json::json!({
            "needle": {"rows": needle_rows, "auditum_ms": median(&mut auditum_needle.clone()), "postgres_ms": median(&mut pg_needle.clone()), "duckdb_ms": duck_ms(&duck, "needle")},
            "selective": {"rows": selective_rows, "auditum_ms": median(&mut auditum_selective.clone()), "postgres_ms": median(&mut pg_selective.clone()), "duckdb_ms": duck_ms(&duck, "selective")},
            "export": {"rows": export_rows, "auditum_events_per_s": median(&mut auditum_export.clone()), "postgres_events_per_s": median(&mut pg_export.clone()),
                        "duckdb_events_per_s": export_rows as f64 / (duck_ms(&duck, "export") / 1000.0)},
            "summarize": {"rows": summary_rows, "auditum_first_ms": auditum_summarize_first, "auditum_ms": median(&mut auditum_summarize.clone()),
                          "postgres_ms": median(&mut pg_summarize.clone()), "duckdb_ms": duck_ms(&duck, "summarize")},
            "export_year": {"rows": year_rows, "auditum_s": auditum_year_s, "postgres_s": pg_year_s, "duckdb_s": duck_year_s},
        });
        eprintln!("queries: {queries_result}");

        // Ingest under query load, into the loaded archive and table.
        let pool = ingest_pool(&mix, 64);
        let auditum_pool_1000: Arc<Vec<pb::AppendRequest>> =
            Arc::new(batches(&pool, 1000).into_iter().map(|events| pb::AppendRequest { events, wait_for_seal: false }).collect());
        let pg_pool: Vec<Vec<PgRow>> = pool.iter().map(|events| records(events.clone()).iter().map(pg_row).collect()).collect();
        let pg_pool_1000: Arc<Vec<Vec<PgRow>>> = Arc::new(batches(&pg_pool, 1000));
        let pg_queries = Arc::new(pg_queries);
        // Two phases, both with two clients querying back to back: ingest as fast as it goes with
        // the fixed needle and the selective query ("under load"); then ingest held to
        // BENCH_PACED_RATE events/s (default 100,000) with needles of a different random actor
        // each time and the selective query ("paced").
        let paced_rate: f64 = env_number("BENCH_PACED_RATE", 100_000.0);
        let mut phases = serde_json::Map::new();
        for (phase, pace_rate) in [("under_load", None), ("paced", Some(paced_rate))] {
            let random = pace_rate.is_some();
            let (mut auditum_rates, mut auditum_queries_per_s, mut pg_rates, mut pg_queries_per_s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for run in 0..runs {
                let auditum_loops = |which: usize, running: Arc<AtomicBool>, done: Arc<AtomicU64>| {
                    let (mut client, queries) = (client.clone(), Queries::new(&mix, start_time));
                    async move {
                        let mut next = run * 17;
                        while running.load(Ordering::Relaxed) {
                            let filter = match (which, random) {
                                (0, true) => &queries.random_needles[next % queries.random_needles.len()],
                                (0, false) => &queries.needle,
                                _ => &queries.selective,
                            };
                            next += 1;
                            query_all(&mut client, filter).await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                };
                let ingest = auditum_ingest(&url, &auditum_pool_1000, seconds, pace_rate.map(Pace::new));
                let (rate, queries_per_s) = with_query_load(auditum_loops, ingest, seconds).await;
                auditum_rates.push(rate);
                auditum_queries_per_s.push(queries_per_s);
                let port = postgres.port;
                let pg_loops = |which: usize, running: Arc<AtomicBool>, done: Arc<AtomicU64>| {
                    let pg_queries = pg_queries.clone();
                    async move {
                        let client = connect_postgres(port).await;
                        let mut next = run * 17;
                        while running.load(Ordering::Relaxed) {
                            match (which, random) {
                                (0, true) => PgQueries::needle_of(&pg_queries.random_needles[next % pg_queries.random_needles.len()], &client).await,
                                (0, false) => pg_queries.needle(&client).await,
                                _ => pg_queries.selective(&client).await,
                            };
                            next += 1;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                };
                let ingest = postgres_ingest(&postgres, &pg_pool_1000, seconds, pace_rate.map(Pace::new));
                let (rate, queries_per_s) = with_query_load(pg_loops, ingest, seconds).await;
                pg_rates.push(rate);
                pg_queries_per_s.push(queries_per_s);
                eprintln!(
                    "{phase} run {run}: auditum {:.0} events/s with {:.1} queries/s; postgres {:.0} rows/s with {:.1} queries/s",
                    auditum_rates[run], auditum_queries_per_s[run], pg_rates[run], pg_queries_per_s[run]
                );
            }
            phases.insert(phase.to_string(), serde_json::json!({
                "target_events_per_s": pace_rate,
                "auditum_runs": auditum_rates.clone(), "auditum_queries_runs": auditum_queries_per_s.clone(),
                "postgres_runs": pg_rates.clone(), "postgres_queries_runs": pg_queries_per_s.clone(),
                "auditum_events_per_s": median(&mut auditum_rates), "auditum_queries_per_s": median(&mut auditum_queries_per_s),
                "postgres_rows_per_s": median(&mut pg_rates), "postgres_queries_per_s": median(&mut pg_queries_per_s),
            }));
        }
        let _ = server.kill().await;
        let _ = std::fs::remove_dir_all(&work);

        // Ingest: fresh auditum server and a fresh table for each run.
        pg.batch_execute("DROP TABLE audit_logs").await.unwrap();
        let mut ingest = serde_json::Map::new();
        for size in [100, 1000] {
            let auditum_pool: Arc<Vec<pb::AppendRequest>> =
                Arc::new(batches(&pool, size).into_iter().map(|events| pb::AppendRequest { events, wait_for_seal: false }).collect());
            let pg_pool_sized: Arc<Vec<Vec<PgRow>>> = Arc::new(batches(&pg_pool, size));
            let (mut auditum_runs, mut pg_runs) = (Vec::new(), Vec::new());
            for run in 0..runs {
                let data = root.join(format!("ingest-{size}-{run}"));
                let _ = std::fs::remove_dir_all(&data);
                std::fs::create_dir_all(&data).unwrap();
                let (mut server, url) = spawn_server(&data, &[]).await;
                auditum_runs.push(auditum_ingest(&url, &auditum_pool, seconds, None).await);
                let _ = server.kill().await;
                let _ = std::fs::remove_dir_all(&data);
                pg.batch_execute(SCHEMA).await.unwrap();
                pg_runs.push(postgres_ingest(&postgres, &pg_pool_sized, seconds, None).await);
                pg.batch_execute("DROP TABLE audit_logs; CHECKPOINT;").await.unwrap();
                eprintln!("ingest {size}/call run {run}: auditum {:.0} events/s, postgres {:.0} rows/s", auditum_runs[run], pg_runs[run]);
            }
            ingest.insert(size.to_string(), serde_json::json!({
                "auditum_runs": auditum_runs.clone(), "postgres_runs": pg_runs.clone(),
                "auditum": median(&mut auditum_runs), "postgres": median(&mut pg_runs),
            }));
        }

        let results = serde_json::json!({
            "events": total,
            "seconds_per_run": seconds,
            "runs": runs,
            "in_flight": IN_FLIGHT,
            "storage": storage,
            "queries": queries_result,
            "ingest": ingest,
            "under_load": phases["under_load"],
            "paced": phases["paced"],
        });
        std::fs::write(root.join("results.json"), serde_json::to_string_pretty(&results).unwrap()).unwrap();
        print_table(&results);
    });
}

fn print_table(results: &serde_json::Value) {
    let number = |path: &[&str]| -> f64 {
        let mut value = results;
        for key in path {
            value = &value[*key];
        }
        value.as_f64().unwrap()
    };
    println!(
        "| measure | auditum | Postgres 15 | DuckDB (auditum's files) | auditum / Postgres | auditum / DuckDB |\n|---|---|---|---|---|---|"
    );
    for size in ["100", "1000"] {
        let (ours, theirs) = (number(&["ingest", size, "auditum"]), number(&["ingest", size, "postgres"]));
        println!(
            "| durable ingest, {size} events per call (events/s, median; higher is better) | {ours:.0} | {theirs:.0} | | {:.2} | |",
            ours / theirs
        );
    }
    let (ours, theirs) = (number(&["under_load", "auditum_events_per_s"]), number(&["under_load", "postgres_rows_per_s"]));
    println!(
        "| ingest under query load, 1000 per call (events/s; queries/s alongside) | {ours:.0} ({:.1} q/s) | {theirs:.0} ({:.1} q/s) | | {:.2} | |",
        number(&["under_load", "auditum_queries_per_s"]),
        number(&["under_load", "postgres_queries_per_s"]),
        ours / theirs
    );
    let (ours, theirs) = (number(&["paced", "auditum_queries_per_s"]), number(&["paced", "postgres_queries_per_s"]));
    println!(
        "| queries/s of 2 clients (random needles, selective) while ingest is held to {:.0} events/s (ingest held) | {ours:.1} ({:.0} events/s) | {theirs:.1} ({:.0} rows/s) | | {:.2} | |",
        number(&["paced", "target_events_per_s"]),
        number(&["paced", "auditum_events_per_s"]),
        number(&["paced", "postgres_rows_per_s"]),
        ours / theirs
    );
    let (ours, theirs) = (number(&["storage", "auditum_bytes_per_event"]), number(&["storage", "postgres_bytes_per_event"]));
    println!(
        "| storage (bytes per event on disk; lower is better) | {ours:.1} | {theirs:.1} (heap {:.1} + indexes {:.1}) | (same files) | {:.3} (1/{:.1}) | |",
        number(&["storage", "postgres_heap_bytes_per_event"]),
        number(&["storage", "postgres_index_bytes_per_event"]),
        ours / theirs,
        theirs / ours
    );
    for query in ["needle", "selective"] {
        let (ours, theirs, duck) = (
            number(&["queries", query, "auditum_ms"]),
            number(&["queries", query, "postgres_ms"]),
            number(&["queries", query, "duckdb_ms"]),
        );
        println!(
            "| {query} ({} rows; ms, warm median; lower is better) | {ours:.2} | {theirs:.2} | {duck:.2} | {:.2} | {:.2} |",
            results["queries"][query]["rows"],
            ours / theirs,
            ours / duck
        );
    }
    let (ours, theirs, duck) = (
        number(&["queries", "export", "auditum_events_per_s"]),
        number(&["queries", "export", "postgres_events_per_s"]),
        number(&["queries", "export", "duckdb_events_per_s"]),
    );
    println!(
        "| export, JSON lines ({} rows; events/s, higher is better) | {ours:.0} | {theirs:.0} | {duck:.0} | {:.2} | {:.2} |",
        results["queries"]["export"]["rows"],
        ours / theirs,
        ours / duck
    );
    let rows = number(&["queries", "export_year", "rows"]);
    let (ours, theirs, duck) = (
        number(&["queries", "export_year", "auditum_s"]),
        number(&["queries", "export_year", "postgres_s"]),
        number(&["queries", "export_year", "duckdb_s"]),
    );
    println!(
        "| export of the largest tenant's year, JSON lines ({rows:.0} rows; s, and events/s) | {ours:.2} s ({:.0}/s) | {theirs:.2} s ({:.0}/s) | {duck:.2} s ({:.0}/s) | {:.2} | {:.2} |",
        rows / ours,
        rows / theirs,
        rows / duck,
        theirs / ours,
        duck / ours
    );
    let (first, ours, theirs, duck) = (
        number(&["queries", "summarize", "auditum_first_ms"]),
        number(&["queries", "summarize", "auditum_ms"]),
        number(&["queries", "summarize", "postgres_ms"]),
        number(&["queries", "summarize", "duckdb_ms"]),
    );
    println!(
        "| Summarize: the largest tenant's year by action per day ({} groups; ms, warm median; first call of the question in brackets) | {ours:.1} ({first:.0}) | {theirs:.1} | {duck:.1} | {:.2} | {:.2} |",
        results["queries"]["summarize"]["rows"],
        ours / theirs,
        ours / duck
    );
}
