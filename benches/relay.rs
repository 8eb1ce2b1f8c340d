//! Outbox relay benchmark: `cargo bench --bench relay` (results in BENCHMARKS.md).
//!
//! A Postgres cluster from the Debian packages (defaults: `fsync` and `synchronous_commit` on) and
//! the release `auditum serve`, both on 127.0.0.1. Each phase fills the README's outbox table with
//! BENCH_ROWS (default 300,000) realistic events (~480 bytes of JSON each) and measures how fast
//! it is drained:
//! 1. the peer: the relay's own Postgres work alone (lock 1000 rows `FOR UPDATE SKIP LOCKED`,
//!    read them, delete them, commit) from one connection in this process, nothing sent: the
//!    ceiling Postgres puts on any relay;
//! 2. one `auditum relay postgres --batch 1000` process;
//! 3. two relay processes side by side.
//!
//! Postgres, the server and the relays share the machine's cores, as they would on one host.

#[path = "../tests/it/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;
mod support;

use std::time::{Duration, Instant};

const DDL: &str = include_str!("../crates/auditum-relay/outbox.sql");

/// BENCH_ROWS events in one statement; each is a fresh row id, so no phase's events are
/// duplicates of another's.
async fn fill(client: &tokio_postgres::Client, rows: i64) -> f64 {
    client.batch_execute("TRUNCATE audit_outbox").await.unwrap();
    client
        .execute(
            "INSERT INTO audit_outbox (event, created_at) \
             SELECT jsonb_build_object(\
               'tenant_id', 'tenant-' || (i % 200), 'action', 'invoice.' || (ARRAY['paid','created','voided'])[1 + i % 3], \
               'actor', jsonb_build_object('id', 'user-' || (i % 100000), 'type', 'user', 'name', 'User ' || (i % 100000)), \
               'target', jsonb_build_object('type', 'invoice', 'id', 'inv-' || i), \
               'outcome', jsonb_build_object('result', 'success'), \
               'context', jsonb_build_object('request_id', md5(i::text), 'source_ip', '10.0.' || (i % 250) || '.' || (i % 97), \
                 'user_agent', 'Mozilla/5.0 (X11; Linux x86_64)'), \
               'before', jsonb_build_object('status', 'open', 'amount', i % 1000), \
               'after', jsonb_build_object('status', 'paid', 'amount', i % 1000), \
               'metadata', jsonb_build_object('plan', 'pro', 'region', 'eu-west-1')), \
             now() + i * interval '1 microsecond' \
             FROM generate_series(1, $1::int8) AS i",
            &[&rows],
        )
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE audit_outbox").await.unwrap();
    client.query_one("SELECT avg(octet_length(event::text))::float8 FROM audit_outbox", &[]).await.unwrap().get(0)
}

async fn is_empty(client: &tokio_postgres::Client) -> bool {
    client.query_opt("SELECT 1 FROM audit_outbox LIMIT 1", &[]).await.unwrap().is_none()
}

/// The relay's Postgres work alone, on one connection.
async fn drain_without_sending(client: &mut tokio_postgres::Client) {
    loop {
        let transaction = client.transaction().await.unwrap();
        let rows = transaction
            .query("SELECT ctid::text, id::text, event FROM audit_outbox ORDER BY created_at LIMIT 1000 FOR UPDATE SKIP LOCKED", &[])
            .await
            .unwrap();
        if rows.is_empty() {
            return;
        }
        let ctids: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        let _events: Vec<serde_json::Value> = rows.iter().map(|row| row.get(2)).collect();
        transaction.execute("DELETE FROM audit_outbox WHERE ctid = ANY($1::text[]::tid[])", &[&ctids]).await.unwrap();
        transaction.commit().await.unwrap();
    }
}

/// CPU seconds the whole machine has been busy (all cores), from /proc/stat.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<f64> = stat.lines().next().unwrap().split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    (fields.iter().sum::<f64>() - fields[3] - fields[4]) / 100.0
}

/// Where a phase's CPU went, in microseconds per row.
struct CpuSplit {
    relays: f64,
    server: f64,
    rest: f64,
}

async fn drain_with_relays(
    url: &str,
    dsn: &str,
    relays: usize,
    client: &tokio_postgres::Client,
    dir: &std::path::Path,
    server_pid: u32,
    rows: i64,
) -> (u64, CpuSplit) {
    let (server_before, busy_before) = (support::cpu_seconds(server_pid), machine_busy_seconds());
    let mut children = Vec::new();
    for index in 0..relays {
        let log = std::fs::File::create(dir.join(format!("relay-{relays}-{index}.log"))).unwrap();
        children.push(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
                .args(["relay", "postgres", "--server", url, "--dsn", dsn, "--batch", "1000", "--poll", "100ms"])
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        );
    }
    while !is_empty(client).await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let relay_cpu: f64 = children.iter().map(|child| support::cpu_seconds(child.id().unwrap())).sum();
    let server_cpu = support::cpu_seconds(server_pid) - server_before;
    let busy = machine_busy_seconds() - busy_before;
    let per_row = |seconds: f64| seconds * 1e6 / rows as f64;
    let split = CpuSplit { relays: per_row(relay_cpu), server: per_row(server_cpu), rest: per_row(busy - relay_cpu - server_cpu) };
    let mut moved = 0;
    for (index, mut child) in children.into_iter().enumerate() {
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(child.wait().await.unwrap().success());
        let log = std::fs::read_to_string(dir.join(format!("relay-{relays}-{index}.log"))).unwrap();
        let line = log.lines().find_map(|line| line.strip_prefix("auditum relay: moved ")).unwrap_or_else(|| panic!("{log}"));
        moved += line.split_whitespace().next().unwrap().parse::<u64>().unwrap();
    }
    (moved, split)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let rows: i64 = std::env::var("BENCH_ROWS").ok().and_then(|text| text.parse().ok()).unwrap_or(300_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let postgres = postgres::Postgres::start();
        let mut client = postgres.connect().await;
        client.batch_execute(DDL).await.unwrap();
        let (mut server, url) = support::spawn_server(&dir.path().join("server"), &[]).await;
        println!("rows per phase: {rows}");
        println!("| phase | rows/s | seconds | CPU µs/row: relays | server | Postgres and the rest |");
        println!("|---|---|---|---|---|---|");
        let json_bytes = fill(&client, rows).await;
        let started = Instant::now();
        drain_without_sending(&mut client).await;
        let seconds = started.elapsed().as_secs_f64();
        println!("| peer: Postgres work alone (1 connection, nothing sent) | {:.0} | {seconds:.2} | | | |", rows as f64 / seconds);
        for relays in [1, 2] {
            fill(&client, rows).await;
            let started = Instant::now();
            let (moved, cpu) = drain_with_relays(&url, &postgres.dsn(), relays, &client, dir.path(), server.id().unwrap(), rows).await;
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(moved, rows as u64, "the relays report every row moved");
            println!(
                "| {relays} relay process{} (2 workers each) | {:.0} | {seconds:.2} | {:.1} | {:.1} | {:.1} |",
                if relays == 1 { "" } else { "es" },
                rows as f64 / seconds,
                cpu.relays,
                cpu.server,
                cpu.rest
            );
        }
        println!("event JSON: {json_bytes:.0} bytes on average");
        server.start_kill().unwrap();
        let _ = server.wait().await;
    });
}
