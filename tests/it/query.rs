//! Query and Export against a generated archive (several seals, late events, skewed tenants,
//! an open batch), each answer compared with a brute-force scan of every stored event.

use crate::common;

use crate::common::archive::{self, archive_config, brute_force_matches, query_client};
use crate::common::*;
use auditum_format::event::EventRecord;
use auditum_proto::pb;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use rand::{Rng, SeedableRng};
use sha2::Digest;
use std::collections::HashSet;
use tonic::transport::Channel;

fn sort_key(record: &EventRecord) -> (i64, u64) {
    (record.occurred_at, record.seq.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_filters_match_a_brute_force_scan_in_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut ingest) = start(archive_config(dir.path())).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let acknowledged = archive::build(&running, &mut ingest, &mut rng, 6, 2500).await;
    let (events, _) = archive::all_events(&running).await;
    assert_eq!(events.len(), acknowledged, "the plain scan sees every acknowledged event");
    assert!(events.iter().any(|(_, batch)| batch.is_none()) && events.iter().any(|(_, batch)| batch.is_some()));
    let mut client = query_client(&running).await;

    let mut non_empty = 0;
    let (started, mut calls) = (std::time::Instant::now(), 0);
    for round in 0..220 {
        let filter = archive::random_filter(&mut rng, &events);
        let mut expected: Vec<&(EventRecord, Option<u64>)> =
            events.iter().filter(|(record, _)| brute_force_matches(&filter, record)).collect();
        expected.sort_by_key(|(record, _)| sort_key(record));
        non_empty += usize::from(!expected.is_empty());
        // Small pages exercise pagination; bounded so a broad filter stays quick.
        let page_size = rng.gen_range(1..=20).max(expected.len().div_ceil(12)) as u32;
        for descending in [false, true] {
            let (got, pages) = query_all(&mut client, &filter, descending, page_size).await;
            calls += pages;
            let mut seen = HashSet::new();
            for stored in &got {
                assert!(seen.insert(stored.seq), "round {round}: seq {} returned twice", stored.seq);
                assert_eq!(stored.event.as_ref().unwrap().tenant_id, filter.tenant_id, "round {round}: another tenant's event");
                assert_eq!(stored.log, "default");
            }
            let got_records: Vec<(EventRecord, Option<u64>)> = got
                .iter()
                .map(|stored| {
                    let record = auditum_proto::convert::record_of(stored).unwrap();
                    assert_eq!(stored.leaf_hash, record.leaf_hash().to_vec(), "leaf_hash is the event's leaf");
                    (record, stored.sealed.then_some(stored.batch_index))
                })
                .collect();
            let mut want: Vec<(EventRecord, Option<u64>)> = expected.iter().map(|pair| (*pair).clone()).collect();
            if descending {
                want.reverse();
            }
            assert_eq!(got_records.len(), want.len(), "round {round} ({pages} pages, descending {descending}): {filter:?}");
            assert!(got_records == want, "round {round} descending {descending}: rows differ from the brute force for {filter:?}");
        }
    }
    println!("{calls} query calls in {:?}", started.elapsed());
    assert!(non_empty >= 100, "most random filters should match something ({non_empty} of 220 did)");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needle_queries_prune_at_every_step_and_read_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut ingest) = start(archive_config(dir.path())).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    archive::build(&running, &mut ingest, &mut rng, 6, 2500).await;
    // Seal the open batch too: every event is then read from Parquet.
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    let (events, _) = archive::all_events(&running).await;
    let snapshot = running.logs.by_name("default").unwrap().read_snapshot("", Default::default());
    let archive_bytes: u64 = snapshot.entries.iter().map(|entry| entry.size).sum();
    let mut client = query_client(&running).await;

    // One request id, one tenant: the catalog, statistics, bloom filters and page index all prune.
    let (needle, _) = events.iter().find(|(record, _)| record.tenant_id == "hooli" && record.request_id.is_some()).unwrap();
    let filter =
        pb::EventFilter { tenant_id: needle.tenant_id.clone(), request_id: needle.request_id.clone().unwrap(), ..Default::default() };
    let response =
        client.query(pb::QueryRequest { filter: Some(filter.clone()), page_size: 100, ..Default::default() }).await.unwrap().into_inner();
    let expected = events.iter().filter(|(record, _)| brute_force_matches(&filter, record)).count();
    assert_eq!(response.events.len(), expected);
    let stats = response.stats.unwrap();
    println!("needle stats: {stats:?}, archive {archive_bytes} bytes");
    assert_eq!(stats.batches_considered, snapshot.entries.len() as u64);
    assert!(stats.row_groups_pruned > 0, "statistics or bloom filters prune row groups: {stats:?}");
    assert!(stats.row_groups_pruned_by_bloom > 0, "bloom filters prune row groups: {stats:?}");
    assert!(stats.rows_pruned > 0, "the page index prunes rows: {stats:?}");
    assert!(stats.rows_read < stats.rows_considered, "{stats:?}");
    // The footer tail (64 KiB) dominates on these small test files; on real batches it is ~1 %.
    assert!(stats.bytes_read > 0 && stats.bytes_read < archive_bytes / 3, "a needle reads ranges, not files: {stats:?}");
    // Warm: footers come from the cache, so only bloom filters and pages are read.
    let again =
        client.query(pb::QueryRequest { filter: Some(filter.clone()), page_size: 100, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(again.events, response.events);
    let warm = again.stats.unwrap();
    assert!(warm.bytes_read < archive_bytes / 20, "warm needle reads a few pages: {warm:?}");

    // A narrow time window: the ledger catalog prunes batches without reading them.
    let middle = &snapshot.entries[2];
    let filter = pb::EventFilter {
        tenant_id: "acme".into(),
        start_time: Some(timestamp(middle.min_occurred_at)),
        end_time: Some(timestamp(middle.min_occurred_at + 1_000_000)),
        ..Default::default()
    };
    let response =
        client.query(pb::QueryRequest { filter: Some(filter.clone()), page_size: 100, ..Default::default() }).await.unwrap().into_inner();
    let stats = response.stats.unwrap();
    assert!(stats.batches_pruned > 0, "{stats:?}");
    assert_eq!(response.events.len(), events.iter().filter(|(record, _)| brute_force_matches(&filter, record)).count());

    // A full first page stops the scan before reading every batch.
    let filter = pb::EventFilter { tenant_id: "acme".into(), ..Default::default() };
    let response = client.query(pb::QueryRequest { filter: Some(filter), page_size: 5, ..Default::default() }).await.unwrap().into_inner();
    let stats = response.stats.unwrap();
    assert_eq!(response.events.len(), 5);
    assert!(stats.rows_read < stats.rows_considered || stats.batches_opened < stats.batches_considered, "{stats:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    // Unbounded paging of one tenant: no meta-audit events appearing between pages.
    let (running, mut ingest) = start(auditum_server::config::Config { meta_audit: false, ..test_config(dir.path()) }).await;
    ingest.append(request(vec![event("acme", "user.login", "ann"), event("acme", "user.login", "bob")])).await.unwrap();
    let mut client = query_client(&running).await;
    let acme = pb::EventFilter { tenant_id: "acme".into(), ..Default::default() };
    let first =
        client.query(pb::QueryRequest { filter: Some(acme.clone()), page_size: 1, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(first.events.len(), 1);
    assert!(!first.events[0].sealed, "unsealed events are included and marked");
    let token = first.next_page_token;
    assert!(!token.is_empty());

    let other = pb::EventFilter { actor_id: "ann".into(), ..acme.clone() };
    let cases = [
        (pb::QueryRequest { filter: Some(other), page_size: 1, page_token: token.clone(), descending: false }, "page_token"),
        (pb::QueryRequest { filter: Some(acme.clone()), page_size: 1, page_token: token.clone(), descending: true }, "page_token"),
        (pb::QueryRequest { filter: Some(acme.clone()), page_size: 1, page_token: "not-a-token".into(), descending: false }, "page_token"),
        (pb::QueryRequest { filter: None, ..Default::default() }, "filter"),
        (pb::QueryRequest { filter: Some(pb::EventFilter::default()), ..Default::default() }, "filter.tenant_id"),
        (pb::QueryRequest { filter: Some(acme.clone()), page_size: 5000, ..Default::default() }, "page_size"),
        (
            pb::QueryRequest { filter: Some(pb::EventFilter { actions: vec!["User.*".into()], ..acme.clone() }), ..Default::default() },
            "filter.actions[0]",
        ),
    ];
    for (request, field) in cases {
        let status = client.query(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{field}: {}", status.message());
    }
    let second = client
        .query(pb::QueryRequest { filter: Some(acme.clone()), page_size: 1, page_token: token, descending: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.events.len(), 1);
    assert_ne!(second.events[0].seq, first.events[0].seq);
    assert!(second.next_page_token.is_empty());
    let export = client.export(pb::ExportRequest { filter: Some(acme), format: 0, include_unsealed: false, raw: false }).await.unwrap_err();
    assert_eq!(export.code(), tonic::Code::InvalidArgument);
    assert!(export.message().starts_with("format"));
    running.stop().await.unwrap();
}

async fn export(
    client: &mut QueryServiceClient<Channel>,
    filter: &pb::EventFilter,
    format: pb::ExportFormat,
    include_unsealed: bool,
) -> (Vec<u8>, pb::ExportSummary, usize) {
    let request = pb::ExportRequest { filter: Some(filter.clone()), format: format as i32, include_unsealed, raw: false };
    let mut stream = client.export(request).await.unwrap().into_inner();
    let (mut bytes, mut summary, mut chunks) = (Vec::new(), None, 0);
    while let Some(message) = stream.message().await.unwrap() {
        match message.item.unwrap() {
            pb::export_response::Item::Chunk(chunk) => {
                assert!(summary.is_none(), "the summary comes last");
                assert!(chunk.len() <= 2 * auditum_engine::export::CHUNK_BYTES, "a chunk fits a client's default 4 MiB message");
                chunks += 1;
                bytes.extend_from_slice(&chunk);
            }
            pb::export_response::Item::Summary(done) => summary = Some(done),
        }
    }
    (bytes, summary.expect("a summary"), chunks)
}

fn micros_from_rfc3339(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_parse_back_to_the_same_events_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut ingest) = start(archive_config(dir.path())).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    archive::build(&running, &mut ingest, &mut rng, 4, 3000).await;
    let (events, checkpoint_size) = archive::all_events(&running).await;
    let log = running.logs.by_name("default").unwrap();
    let checkpoint = log.read_snapshot("", Default::default()).checkpoint.unwrap();
    let mut client = query_client(&running).await;

    // A window from a tenth to nine tenths of the tenant's times: parts cut at batch starts
    // meet the export's own bounds, late events and unsealed events inside them.
    let mut acme_times: Vec<i64> =
        events.iter().filter(|(record, _)| record.tenant_id == "acme").map(|(record, _)| record.occurred_at).collect();
    acme_times.sort_unstable();
    let window = pb::EventFilter {
        tenant_id: "acme".into(),
        start_time: Some(timestamp(acme_times[acme_times.len() / 10])),
        end_time: Some(timestamp(acme_times[acme_times.len() * 9 / 10])),
        ..Default::default()
    };
    for (filter, include_unsealed) in [
        (pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }, false),
        (
            pb::EventFilter {
                tenant_id: "globex".into(),
                actions: vec!["user.*".into(), "billing.invoice.paid".into()],
                ..Default::default()
            },
            true,
        ),
        (window, true),
    ] {
        let mut expected: Vec<EventRecord> = events
            .iter()
            .filter(|(record, batch)| (include_unsealed || batch.is_some()) && brute_force_matches(&filter, record))
            .map(|(record, _)| record.clone())
            .collect();
        expected.sort_by_key(sort_key);
        let unsealed = events.iter().filter(|(record, batch)| batch.is_none() && brute_force_matches(&filter, record)).count() as u64;
        assert!(expected.len() > 1000, "a sizeable export");

        for format in [pb::ExportFormat::Jsonl, pb::ExportFormat::Csv, pb::ExportFormat::Parquet] {
            let (bytes, summary, chunks) = export(&mut client, &filter, format, include_unsealed).await;
            assert_eq!(summary.rows, expected.len() as u64, "{format:?}");
            assert_eq!(summary.unsealed_rows, if include_unsealed { unsealed } else { 0 });
            assert_eq!(summary.sha256, hex::encode(sha2::Sha256::digest(&bytes)), "{format:?}: the summary hashes the bytes sent");
            assert_eq!(summary.checkpoint, checkpoint, "the checkpoint current when the export began");
            let verified = log.verifier().verify_checkpoint(&summary.checkpoint).unwrap();
            assert_eq!(verified.size as usize, checkpoint_size);
            assert!(chunks >= 1);
            let parsed: Vec<EventRecord> = match format {
                pb::ExportFormat::Jsonl => std::str::from_utf8(&bytes)
                    .unwrap()
                    .lines()
                    .map(|line| EventRecord::from_json(&serde_json::from_str(line).unwrap()).unwrap())
                    .collect(),
                pb::ExportFormat::Csv => {
                    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes.as_slice());
                    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
                    assert_eq!(headers, auditum_format::event::COLUMN_NAMES[..24].iter().map(|name| name.to_string()).collect::<Vec<_>>());
                    reader
                        .records()
                        .map(|row| {
                            let row = row.unwrap();
                            let mut object = serde_json::Map::new();
                            for (name, value) in headers.iter().zip(row.iter()) {
                                let json = match name.as_str() {
                                    "seq" => serde_json::Value::from(value.parse::<u64>().unwrap()),
                                    "occurred_at" | "received_at" => serde_json::Value::from(micros_from_rfc3339(value)),
                                    _ if value.is_empty() => serde_json::Value::Null,
                                    _ => serde_json::Value::from(value),
                                };
                                object.insert(name.clone(), json);
                            }
                            EventRecord::from_json(&serde_json::Value::Object(object)).unwrap()
                        })
                        .collect()
                }
                _ => auditum_batch::read_batch(bytes::Bytes::from(bytes.clone()))
                    .unwrap()
                    .into_iter()
                    .map(|row| {
                        assert_eq!(row.stored_leaf_hash, row.record.leaf_hash(), "the exported leaf_hash is the event's leaf");
                        row.record
                    })
                    .collect(),
            };
            assert_eq!(parsed.len(), expected.len(), "{format:?}");
            assert!(parsed == expected, "{format:?}: exported rows parse back to the same events, in (occurred_at, seq) order");
        }
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_archive_with_hive_partitioning() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut ingest) = start(archive_config(dir.path())).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    archive::build(&running, &mut ingest, &mut rng, 4, 2000).await;
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    let (events, _) = archive::all_events(&running).await;
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    for (record, _) in &events {
        *expected.entry(record.tenant_id.clone()).or_default() += 1;
    }
    let batches = dir.path().join("store/default/batches");
    let script = r#"
import duckdb, json, sys
rel = duckdb.sql(f"SELECT tenant_id, count(*) AS n, count(DISTINCT date) AS dates, min(hour) AS hour FROM read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = true) GROUP BY tenant_id ORDER BY tenant_id")
print(json.dumps([list(row) for row in rel.fetchall()]))
"#;
    let output = std::process::Command::new("python3").arg("-c").arg(script).arg(&batches).output().expect("python3 runs");
    assert!(output.status.success(), "duckdb (pip install duckdb) failed: {}", String::from_utf8_lossy(&output.stderr));
    let rows: Vec<(String, u64, u64, serde_json::Value)> = serde_json::from_slice(&output.stdout).unwrap();
    let counted: std::collections::BTreeMap<String, u64> = rows.iter().map(|(tenant, count, _, _)| (tenant.clone(), *count)).collect();
    assert_eq!(counted, expected, "DuckDB counts the same rows per tenant");
    assert!(rows.iter().all(|(_, _, dates, hour)| *dates >= 1 && !hour.is_null()), "date and hour come from the Hive partitions: {rows:?}");
    running.stop().await.unwrap();
}

#[test]
fn queries_and_exports_on_s3_read_ranges_and_match_the_brute_force() {
    use common::s3::{Moto, runtime};
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("archive").await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = archive_config(dir.path());
        config.store = Some("s3://archive/prod".into());
        config.s3_endpoint = Some(moto.endpoint.clone());
        config.retention_mode = Some(auditum_store::RetentionMode::Governance);
        config.retention_days = Some(1);
        let (running, mut ingest) = start(config).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(303);
        archive::build(&running, &mut ingest, &mut rng, 3, 1500).await;
        let (events, _) = archive::all_events(&running).await;
        let snapshot = running.logs.by_name("default").unwrap().read_snapshot("", Default::default());
        let archive_bytes: u64 = snapshot.entries.iter().map(|entry| entry.size).sum();
        let mut client = query_client(&running).await;
        for round in 0..12 {
            let filter = archive::random_filter(&mut rng, &events);
            let mut expected: Vec<(EventRecord, Option<u64>)> =
                events.iter().filter(|(record, _)| brute_force_matches(&filter, record)).cloned().collect();
            expected.sort_by_key(|(record, _)| sort_key(record));
            for descending in [false, true] {
                let page_size = rng.gen_range(1..=20).max(expected.len().div_ceil(8)) as u32;
                let (got, _) = query_all(&mut client, &filter, descending, page_size).await;
                let got: Vec<(EventRecord, Option<u64>)> = got
                    .iter()
                    .map(|stored| (auditum_proto::convert::record_of(stored).unwrap(), stored.sealed.then_some(stored.batch_index)))
                    .collect();
                let mut want = expected.clone();
                if descending {
                    want.reverse();
                }
                assert!(got == want, "round {round} descending {descending}: {filter:?}");
            }
        }
        // A needle on S3: ranged GETs, never whole objects.
        let (needle, _) = events.iter().find(|(record, batch)| batch.is_some() && record.request_id.is_some()).unwrap();
        let filter =
            pb::EventFilter { tenant_id: needle.tenant_id.clone(), request_id: needle.request_id.clone().unwrap(), ..Default::default() };
        let response =
            client.query(pb::QueryRequest { filter: Some(filter), page_size: 10, ..Default::default() }).await.unwrap().into_inner();
        assert!(response.events.iter().any(|stored| stored.seq == needle.seq.0));
        let stats = response.stats.unwrap();
        println!("s3 needle stats: {stats:?}, archive {archive_bytes} bytes");
        assert!(stats.read_requests > 0 && stats.bytes_read < archive_bytes / 3, "{stats:?}");
        // Neighbouring pages share a GET: fewer requests than pages read.
        assert!(stats.read_requests < stats.pages_read, "{stats:?}");
        // So does a broad query that reads every column of many pages.
        let broad = pb::QueryRequest {
            filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
            page_size: 500,
            ..Default::default()
        };
        let stats = client.query(broad).await.unwrap().into_inner().stats.unwrap();
        println!("s3 broad stats: {stats:?}");
        assert!(stats.pages_read >= 20 && stats.read_requests * 2 <= stats.pages_read, "{stats:?}");
        // An export from S3 hashes and counts what it sent.
        let filter = pb::EventFilter { tenant_id: "acme".into(), ..Default::default() };
        let (bytes, summary, _) = export(&mut client, &filter, pb::ExportFormat::Jsonl, true).await;
        let expected = events.iter().filter(|(record, _)| record.tenant_id == "acme").count();
        assert_eq!(summary.rows as usize, expected);
        assert_eq!(bytes.iter().filter(|byte| **byte == b'\n').count(), expected);
        assert_eq!(summary.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
        running.stop().await.unwrap();
    });
}
