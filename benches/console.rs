//! Console benchmark: `cargo bench --bench console` (results in BENCHMARKS.md, "Web console").
//!
//! On the query benchmark's 10M-event archive (built by `cargo bench --bench query` or here), the
//! release `auditum serve` with its console; headless Chromium (Debian's, driven by playwright-core
//! from console/: `cd console && npm ci` first) searches a needle, one actor over 30 days, for a
//! *different random actor each time*, and measures from the click on "Search" to the frame after
//! the first page is in the page (warm: after 10 other needles). In the same run, first pages of
//! other random actors are fetched over the JSON API and over gRPC, so the browser's own share
//! shows. Also the console's size, raw and gzipped as served.

mod support;

use auditum_proto::pb;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use support::*;

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let measured_count: usize = std::env::var("BENCH_NEEDLES").ok().and_then(|text| text.parse().ok()).unwrap_or(40);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (dir, _, start_time) = query_archive().await;
        let mix = mix();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("AUDITUM_IDEMPOTENCY_WINDOW", "60s")
            .env("AUDITUM_META_AUDIT", "false");
        let (_server, grpc_url, console_url) = listening_with_console(command).await;
        let console_url = console_url.expect("the server prints its console address");

        // Needles: a random actor each, its tenant, a random 30-day window of the year.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1616);
        let mut needle = || {
            let actor = rng.gen_range(0..auditum_proto::sample::ARCHIVE_ACTORS);
            let since = start_time + rng.gen_range(0..335) * DAY;
            serde_json::json!({
                "tenant": mix.tenant_of(actor),
                "actor": auditum_proto::sample::ArchiveMix::actor_name(actor),
                "since": rfc3339(since),
                "until": rfc3339(since + 30 * DAY),
            })
        };
        let warmup: Vec<serde_json::Value> = (0..10).map(|_| needle()).collect();
        let measured: Vec<serde_json::Value> = (0..measured_count).map(|_| needle()).collect();
        // The peers get actors of their own: every needle is an actor the server has not seen.
        let json_needles: Vec<serde_json::Value> = (0..measured_count).map(|_| needle()).collect();
        let grpc_needles: Vec<serde_json::Value> = (0..measured_count).map(|_| needle()).collect();
        let needles_path = std::env::temp_dir().join(format!("auditum-console-needles-{}.json", std::process::id()));
        std::fs::write(&needles_path, serde_json::json!({ "warmup": warmup, "measured": measured }).to_string()).unwrap();

        // The browser, first: its needles are the first time the server sees those actors.
        let console_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let output = tokio::process::Command::new("node")
            .current_dir(&console_dir)
            .arg("bench/search.mjs")
            .arg(&console_url)
            .arg(&needles_path)
            .output()
            .await
            .expect("node runs (install Node 20 and `cd console && npm ci`)");
        assert!(output.status.success(), "browser benchmark failed: {}", String::from_utf8_lossy(&output.stderr));
        let results: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        let mut browser_ms: Vec<f64> = results.iter().map(|result| result["ms"].as_f64().unwrap()).collect();
        assert!(results.iter().all(|result| result["state"] == "done"), "every search succeeded: {results:?}");
        let rows: Vec<u64> = results.iter().map(|result| result["rows"].as_u64().unwrap()).collect();

        // The same kind of first page (50 rows, newest first, as the console asks) over the JSON
        // API and over gRPC, without a browser.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::new();
        let mut json_ms = Vec::new();
        for needle in &json_needles {
            let filter = serde_json::json!({ "tenantId": needle["tenant"], "actorId": needle["actor"], "startTime": needle["since"], "endTime": needle["until"] });
            let started = Instant::now();
            let response = http
                .post(format!("{console_url}/api/v1/QueryService/Query"))
                .header("content-type", "application/json")
                .body(serde_json::json!({ "filter": filter, "pageSize": 50, "descending": true }).to_string())
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            let _: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            json_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mut grpc = QueryClient::connect(grpc_url).await.unwrap();
        let mut grpc_ms = Vec::new();
        for needle in &grpc_needles {
            let micros = |text: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap()).unwrap().timestamp_micros();
            let request = pb::QueryRequest {
                filter: Some(pb::EventFilter {
                    tenant_id: needle["tenant"].as_str().unwrap().into(),
                    actor_id: needle["actor"].as_str().unwrap().into(),
                    start_time: Some(auditum_proto::convert::timestamp_from_micros(micros(&needle["since"]))),
                    end_time: Some(auditum_proto::convert::timestamp_from_micros(micros(&needle["until"]))),
                    ..Default::default()
                }),
                page_size: 50,
                page_token: String::new(),
                descending: true,
            };
            let started = Instant::now();
            grpc.query(request).await.unwrap();
            grpc_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }

        let raw: usize = auditum_server::http::ASSETS.iter().map(|asset| asset.bytes.len()).sum();
        let gzipped: usize = auditum_server::http::ASSETS.iter().map(|asset| asset.gzipped.len()).sum();
        let mut sorted_rows: Vec<u64> = rows.clone();
        sorted_rows.sort();
        println!("| measure | p50 | p90 | max | note |");
        println!("|---|---|---|---|---|");
        let line = |name: &str, values: &mut Vec<f64>, note: &str| {
            let (p50, p90) = (percentile(values, 0.5), percentile(values, 0.9));
            let max = values.iter().copied().fold(0.0, f64::max);
            println!("| {name} | {p50:.1} ms | {p90:.1} ms | {max:.1} ms | {note} |");
        };
        line(
            "console: click on Search → first page rendered (headless Chromium)",
            &mut browser_ms,
            &format!("{} different random actors, 30 days each; first pages of {}–{} rows", measured.len(), sorted_rows[0], sorted_rows[sorted_rows.len() - 1]),
        );
        line("the same kind of first page over the JSON API (no browser)", &mut json_ms, "other random actors, same run");
        line("the same kind of first page over gRPC", &mut grpc_ms, "other random actors, same run");
        println!("\nconsole assets: {} files, {raw} bytes raw, {gzipped} bytes gzipped (as served)", auditum_server::http::ASSETS.len());
        let _ = std::fs::remove_file(&needles_path);
    });
}
