//! The actor index embedded in batch files (docs/FORMAT.md, Actor index): needles by actor read
//! it instead of bloom filters and return exactly a brute-force scan's rows; an index that fails
//! its checks, or a batch without one, falls back to bloom filters with the same rows; `verify`
//! reports a damaged index.

use crate::common::archive::{self, brute_force_matches};
use crate::common::*;
use auditum_batch::{self as batch, actor_index};
use auditum_format::checkpoint::Verifier;
use auditum_format::event::EventRecord;
use auditum_proto::pb;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use auditum_verify::{self as verify, ProblemKind};
use rand::{Rng, SeedableRng};
use std::os::unix::fs::PermissionsExt;
use tonic::transport::Channel;

/// The page asking for every row of an actor at once (the largest page a query may ask for).
const WHOLE_PAGE: u32 = 1000;

/// An actor's rows: sealed in any batch, sealed in the given batches, and all.
fn actor_rows(events: &[(EventRecord, Option<u64>)], record: &EventRecord, batches: &[u64]) -> (u64, u64, u64) {
    let rows: Vec<&Option<u64>> = events
        .iter()
        .filter(|(event, _)| event.tenant_id == record.tenant_id && event.actor_id == record.actor_id)
        .map(|(_, batch)| batch)
        .collect();
    let sealed = rows.iter().filter(|batch| batch.is_some()).count() as u64;
    let in_batches = rows.iter().filter(|batch| batch.is_some_and(|index| batches.contains(&index))).count() as u64;
    (sealed, in_batches, rows.len() as u64)
}

fn archive_config(dir: &std::path::Path) -> auditum_server::config::Config {
    auditum_server::config::Config { row_group_rows: 500, page_rows: 50, meta_audit: false, ..test_config(dir) }
}

async fn query_client(running: &auditum_server::RunningServer) -> QueryServiceClient<Channel> {
    QueryServiceClient::connect(format!("http://{}", running.addr)).await.unwrap().max_decoding_message_size(64 * 1024 * 1024)
}

/// Queries one actor (whole range, then a random window) in both orders; checks the rows against
/// the brute force and returns the stats of the whole-range query, asked in one page.
async fn check_actor(
    client: &mut QueryServiceClient<Channel>,
    events: &[(EventRecord, Option<u64>)],
    rng: &mut rand::rngs::StdRng,
    record: &EventRecord,
) -> pb::QueryStats {
    let mut filter = pb::EventFilter { tenant_id: record.tenant_id.clone(), actor_id: record.actor_id.clone(), ..Default::default() };
    let first = client
        .query(pb::QueryRequest { filter: Some(filter.clone()), page_size: WHOLE_PAGE, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    for windowed in [false, true] {
        if windowed {
            let (low, high) = (record.occurred_at - rng.gen_range(0..5 * 86_400_000_000), record.occurred_at + 86_400_000_000);
            filter.start_time = Some(timestamp(low));
            filter.end_time = Some(timestamp(high));
        }
        let mut expected: Vec<EventRecord> =
            events.iter().filter(|(event, _)| brute_force_matches(&filter, event)).map(|(event, _)| event.clone()).collect();
        expected.sort_by_key(|event| (event.occurred_at, event.seq.0));
        assert!(!expected.is_empty());
        for descending in [false, true] {
            let page_size = rng.gen_range(1..=7).max(expected.len() as u32 / 8);
            let (got, _) = query_all(client, &filter, descending, page_size).await;
            let mut got: Vec<EventRecord> = got.iter().map(|stored| auditum_proto::convert::record_of(stored).unwrap()).collect();
            if descending {
                got.reverse();
            }
            assert!(got == expected, "actor {} of {} (window {windowed}, descending {descending})", record.actor_id, record.tenant_id);
        }
    }
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_needles_read_the_index_not_bloom_filters_and_match_a_brute_force_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut ingest) = start(archive_config(dir.path())).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    archive::build(&running, &mut ingest, &mut rng, 5, 2500).await;
    let (events, _) = archive::all_events(&running).await;
    let mut client = query_client(&running).await;

    let (mut pruned_by_index, mut exact) = (0, 0);
    for _ in 0..25 {
        let (record, _) = &events[rng.gen_range(0..events.len())];
        let stats = check_actor(&mut client, &events, &mut rng, record).await;
        assert_eq!(stats.row_groups_pruned_by_bloom, 0, "indexed batches skip their bloom filters: {stats:?}");
        pruned_by_index += stats.row_groups_pruned_by_index;
        // Read in one page, without a time window: the rows decoded are exactly the actor's.
        let (sealed, _, all) = actor_rows(&events, record, &[]);
        if all <= u64::from(WHOLE_PAGE) {
            assert_eq!(stats.rows_read, sealed, "only the actor's rows are decoded: {stats:?}");
            exact += 1;
        }
    }
    assert!(pruned_by_index > 0, "the index skips row groups without the actor");
    assert!(exact >= 15, "most actors fit one page ({exact} of 25)");

    // Every sealed batch embeds an index, and verify rebuilds it from the rows.
    let log = running.logs.by_name("default").unwrap();
    for entry in log.read_snapshot("").entries.iter() {
        let bytes = log.store().get(&entry.object, entry.version.as_deref()).await.unwrap();
        assert_eq!(batch::digest(bytes).unwrap().actor_index, batch::IndexCheck::Matches, "{}", entry.object);
    }
    running.stop().await.unwrap();
}

/// Rewrites a read-only batch file in place (a file store), as an attacker or a bad disk would.
fn overwrite(path: &std::path::Path, bytes: &[u8]) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_missing_index_falls_back_to_bloom_filters_and_verify_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = archive_config(dir.path());
    let (running, mut ingest) = start(config.clone()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    archive::build(&running, &mut ingest, &mut rng, 4, 2000).await;
    let log = running.logs.by_name("default").unwrap();
    log.seal_now().await.unwrap();
    let (events, _) = archive::all_events(&running).await;
    let entries = log.read_snapshot("").entries.clone();
    let verifier_key = log.verifier_key();
    running.stop().await.unwrap();
    assert!(entries.len() >= 4);
    let store_dir = dir.path().join("store");

    // Batch 0: one byte of every index region flipped (the table and footer untouched).
    let damaged = store_dir.join(&entries[0].object);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let metadata = batch::file_metadata(&bytes.clone().into()).unwrap();
    let location = actor_index::Location::from_metadata(metadata.metadata().file_metadata()).unwrap().unwrap();
    let regions = location.regions.start as usize..location.regions.end as usize;
    for position in regions.step_by(7) {
        bytes[position] ^= 0x40;
    }
    overwrite(&damaged, &bytes);
    // Batch 1: its footer no longer names the index (the key renamed in place, the size kept),
    // as in files sealed before indexes existed.
    let stripped = store_dir.join(&entries[1].object);
    let mut bytes = std::fs::read(&stripped).unwrap();
    let key = actor_index::METADATA_KEY.as_bytes();
    let at = bytes.windows(key.len()).rposition(|window| window == key).unwrap();
    bytes[at + key.len() - 1] = b'y';
    overwrite(&stripped, &bytes);
    assert_eq!(batch::digest(bytes.into()).unwrap().actor_index, batch::IndexCheck::Absent);

    // Queries over the damaged archive return exactly the brute force's rows.
    let (running, _) = start(config).await;
    let mut client = query_client(&running).await;
    let mut fell_back = 0;
    for index in [0, 1, 2, 3] {
        let in_batch: Vec<&(EventRecord, Option<u64>)> = events.iter().filter(|(_, batch)| *batch == Some(index)).collect();
        for _ in 0..5 {
            let (record, _) = in_batch[rng.gen_range(0..in_batch.len())];
            let stats = check_actor(&mut client, &events, &mut rng, record).await;
            let (sealed, in_unindexed, all) = actor_rows(&events, record, &[0, 1]);
            if all > u64::from(WHOLE_PAGE) {
                continue;
            }
            // Batches 0 and 1 are scanned: more candidate rows than the actor's.
            if in_unindexed > 0 {
                assert!(stats.rows_read > sealed, "batches 0 and 1 fall back to a scan: {stats:?}");
                fell_back += 1;
            }
        }
    }
    assert!(fell_back > 0, "actors of batches 0 and 1 were asked");
    // After batches 0 and 1 (the catalog prunes them), the intact batches use their index: at
    // most the actor's rows there are decoded.
    let cutoff = entries[0].max_occurred_at.max(entries[1].max_occurred_at) + 1;
    let later: Vec<&EventRecord> =
        events.iter().filter(|(event, batch)| event.occurred_at >= cutoff && batch.is_some()).map(|(event, _)| event).collect();
    for _ in 0..5 {
        let record = later[rng.gen_range(0..later.len())];
        let filter = pb::EventFilter {
            tenant_id: record.tenant_id.clone(),
            actor_id: record.actor_id.clone(),
            start_time: Some(timestamp(cutoff)),
            ..Default::default()
        };
        let response = client
            .query(pb::QueryRequest { filter: Some(filter.clone()), page_size: WHOLE_PAGE, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let expected = events.iter().filter(|(event, _)| brute_force_matches(&filter, event)).count();
        let (_, in_later_batches, _) = actor_rows(&events, record, &[2, 3]);
        let stats = response.stats.unwrap();
        assert_eq!(stats.batches_pruned, 2, "{stats:?}");
        if expected < WHOLE_PAGE as usize {
            assert_eq!(response.events.len(), expected);
            assert!(stats.rows_read <= in_later_batches, "intact batches still use their index: {stats:?}");
        }
    }
    running.stop().await.unwrap();

    // verify names both files; the damaged index is named as such.
    let store = auditum_store::open(&format!("file://{}", store_dir.display()), &Default::default()).await.unwrap();
    let report =
        verify::verify_log_with(store.as_ref(), "default", &Verifier::parse(&verifier_key).unwrap(), &verify::Options::default(), |_| {})
            .await
            .unwrap();
    assert!(!report.ok());
    let about = |object: &str| report.problems.iter().filter(|problem| problem.object == object).collect::<Vec<_>>();
    assert!(
        about(&entries[0].object).iter().any(|problem| problem.kind == ProblemKind::Modified && problem.detail.contains("actor index")),
        "{:#?}",
        report.problems
    );
    assert!(about(&entries[1].object).iter().any(|problem| problem.kind == ProblemKind::Modified), "{:#?}", report.problems);
}
