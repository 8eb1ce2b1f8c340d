//! Summarize benchmark: `cargo bench --bench summarize` (results in BENCHMARKS.md; needs `pip
//! install duckdb`).
//!
//! Over the query benchmark's archive (BENCH_EVENTS events, default 10,000,000; built once into
//! BENCH_QUERY_ARCHIVE, default target/bench-query-archive, through the real write path), the
//! release `auditum serve` answers "events of the largest tenant by action per day over 12
//! months" with Summarize over loopback gRPC:
//! - cold: the first call of a freshly started server (no footer or summary cache);
//! - warm: the median of 10 repeats (BENCH_SUMMARIZE_ROUNDS; sealed batches' partial counts cached);
//! - a different question each time (another tenant, another year-long window), to show what a
//!   dashboard not asked before costs on a warm server.
//!
//! In the same run DuckDB answers the same `GROUP BY` over the same files (median of its warm
//! runs, footers cached) — the peer.

mod support;

use auditum_proto::pb;
use std::time::Instant;
use support::*;

fn summarize_request(tenant: &str, start: i64) -> pb::SummarizeRequest {
    let (start_time, end_time) = window(start, 365);
    pb::SummarizeRequest {
        filter: Some(pb::EventFilter { tenant_id: tenant.into(), start_time, end_time, ..Default::default() }),
        group_by: vec![pb::SummaryDimension::Action as i32],
        bucket: pb::TimeBucket::Day as i32,
        limit: 10_000,
    }
}

async fn timed(client: &mut QueryClient, request: pb::SummarizeRequest) -> (f64, pb::SummarizeResponse) {
    let started = Instant::now();
    let response = client.summarize(request).await.unwrap().into_inner();
    (started.elapsed().as_secs_f64() * 1000.0, response)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (dir, total, start_time) = query_archive().await;
        let mix = mix();
        let top_tenant = mix.tenant_of(0);
        let (mut server, url) = spawn_server(&dir, &[("AUDITUM_META_AUDIT", "false")]).await;
        let mut client = QueryClient::connect(url).await.unwrap().max_decoding_message_size(64 * 1024 * 1024);
        let year = summarize_request(&top_tenant, start_time);
        let (cold_ms, cold) = timed(&mut client, year.clone()).await;
        let mut warm_ms = Vec::new();
        let warm_rounds: usize = std::env::var("BENCH_SUMMARIZE_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(10);
        for _ in 0..warm_rounds {
            let (ms, warm) = timed(&mut client, year.clone()).await;
            assert_eq!(warm.rows, cold.rows, "a warm answer is the cold one");
            warm_ms.push(ms);
        }
        // Questions not asked before, on the warm server: other tenants.
        let mut other_ms = Vec::new();
        for actor in [1usize, 3, 7, 20, 50] {
            let tenant = mix.tenant_of(actor);
            other_ms.push(timed(&mut client, summarize_request(&tenant, start_time)).await.0);
        }
        let _ = server.kill().await;

        let batches = dir.join("store/default/batches");
        let (start, end) = window(start_time, 365);
        let spec = serde_json::json!({
            "batches": batches,
            "repeat": 6,
            "queries": [{
                "name": "summarize",
                "sql": "SELECT date_trunc('day', occurred_at) AS day, action, count(*) AS n FROM events WHERE tenant_id = ? AND occurred_at >= ?::TIMESTAMPTZ AND occurred_at < ?::TIMESTAMPTZ GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
                "params": [top_tenant, iso(micros(&start)), iso(micros(&end))],
            }],
            "exports": [],
        });
        let duck = run_duckdb(&dir, spec);
        let duck_warm = duck_ms(&duck, "summarize");
        let duck_rows = duck["summarize"]["rows"].as_u64().unwrap();
        let warm = median(&mut warm_ms);
        println!("\n{total} events, file store; Summarize of the largest tenant ({top_tenant}) by action per day over 12 months\n");
        println!("| measure | auditum | DuckDB (same files, same run) | ratio | target |");
        println!("|---|---|---|---|---|");
        println!(
            "| rows (day × action groups) / events counted | {} / {} | {duck_rows} | | |",
            cold.rows.len(),
            cold.total_events
        );
        println!("| cold (first call of a fresh server) | {cold_ms:.0} ms | | | |");
        println!(
            "| warm (median of {warm_rounds}) | {warm:.1} ms | {duck_warm:.1} ms (median of 5 warm) | {:.2}× | ≤ 300 ms and ≤ 0.5× DuckDB |",
            warm / duck_warm
        );
        println!("| a tenant not asked before, warm server (median of 5) | {:.0} ms | | | |", median(&mut other_ms));
        assert_eq!(cold.rows.len() as u64, duck_rows, "auditum and DuckDB find the same groups");
    });
}
