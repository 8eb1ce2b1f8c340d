//! The actor index embedded in batch files (docs/FORMAT.md, Actor index): needles by actor read
//! it instead of bloom filters and return exactly a brute-force scan's rows; an index that fails
//! its checks, or a batch without one, falls back to bloom filters with the same rows; `verify`
//! reports a damaged index.

use crate::common::archive::{self, archive_config, brute_force_matches, query_client};
use crate::common::*;
use auditum_batch::{self as batch, actor_index};
use auditum_format::checkpoint::Verifier;
use auditum_format::event::EventRecord;
use auditum_proto::pb;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use auditum_verify::{self as verify, ProblemKind};
use rand::{Rng, SeedableRng};
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
    for entry in log.read_snapshot("", Default::default()).entries.iter() {
        let bytes = log.store().get(&entry.object, entry.version.as_deref()).await.unwrap();
        assert_eq!(batch::digest(bytes).unwrap().actor_index, batch::IndexCheck::Matches, "{}", entry.object);
    }
    running.stop().await.unwrap();
}

/// Ways a batch's index can be damaged, each leaving the file's size as it was.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Bytes of the regions flipped: each fails its check in the table.
    Regions,
    /// A byte of the table flipped: it fails the footer's SHA-256.
    Table,
    /// The footer's location moved past the end of the file.
    Location,
    /// The footer no longer names an index (as in files sealed before indexes existed).
    Absent,
}

fn damage(path: &std::path::Path, how: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    let metadata = batch::file_metadata(&bytes.clone().into()).unwrap();
    let location = actor_index::Location::from_metadata(metadata.metadata().file_metadata()).unwrap().unwrap();
    let key = actor_index::METADATA_KEY.as_bytes();
    let key_at = bytes.windows(key.len()).rposition(|window| window == key).unwrap();
    match how {
        Damage::Regions => {
            for position in (location.regions.start as usize..location.regions.end as usize).step_by(7) {
                bytes[position] ^= 0x40;
            }
        }
        Damage::Table => bytes[location.table.start as usize + 20] ^= 0x01,
        Damage::Location => {
            // The value follows the key (a thrift string: length, then "1 {offset} ..."): make
            // the offset's first digit a 9, past the end of these small files.
            let value_at = key_at + key.len() + bytes[key_at + key.len()..].windows(2).position(|window| window == b"1 ").unwrap();
            bytes[value_at + 2] = b'9';
        }
        Damage::Absent => bytes[key_at + key.len() - 1] = b'y',
    }
    // The copy's files are writable (`copy_dir`), as an attacker or a bad disk would find them.
    std::fs::write(path, &bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_missing_index_falls_back_to_bloom_filters_and_verify_names_it() {
    let original = tempfile::tempdir().unwrap();
    let config = archive_config(original.path());
    let (running, mut ingest) = start(config.clone()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    archive::build(&running, &mut ingest, &mut rng, 4, 2000).await;
    let log = running.logs.by_name("default").unwrap();
    log.seal_now().await.unwrap();
    let (events, _) = archive::all_events(&running).await;
    let entries = log.read_snapshot("", Default::default()).entries.clone();
    let verifier_key = log.verifier_key();
    running.stop().await.unwrap();
    let later: Vec<u64> = (1..entries.len() as u64).collect();

    for how in [Damage::Regions, Damage::Table, Damage::Location, Damage::Absent] {
        // Batch 0 of a copy of the archive is damaged; the others are intact.
        let copy = tempfile::tempdir().unwrap();
        copy_dir(original.path(), copy.path());
        let store_dir = copy.path().join("store");
        damage(&store_dir.join(&entries[0].object), how);
        let stored = std::fs::read(store_dir.join(&entries[0].object)).unwrap();
        let expected_check = match how {
            Damage::Absent => batch::IndexCheck::Absent,
            _ => batch::IndexCheck::Differs(String::new()),
        };
        let check = batch::digest(stored.into()).unwrap().actor_index;
        assert_eq!(std::mem::discriminant(&check), std::mem::discriminant(&expected_check), "{how:?}: {check:?}");

        let (running, _) = start(archive_config(copy.path())).await;
        let mut client = query_client(&running).await;
        // Actors with rows in batch 0: it is scanned (more rows decoded than the actor's), and the
        // rows are the brute force's.
        let in_batch: Vec<&EventRecord> = events.iter().filter(|(_, batch)| *batch == Some(0)).map(|(event, _)| event).collect();
        let mut fell_back = 0;
        for _ in 0..5 {
            let record = in_batch[rng.gen_range(0..in_batch.len())];
            let stats = check_actor(&mut client, &events, &mut rng, record).await;
            let (sealed, _, all) = actor_rows(&events, record, &[]);
            if all <= u64::from(WHOLE_PAGE) {
                assert!(stats.rows_read > sealed, "{how:?}: batch 0 falls back to a scan: {stats:?}");
                fell_back += 1;
            }
        }
        assert!(fell_back > 0, "{how:?}: actors of batch 0 were asked");
        // After batch 0 (the catalog prunes it), the intact batches use their index: at most the
        // actor's rows there are decoded.
        let cutoff = entries[0].max_occurred_at + 1;
        let after: Vec<&EventRecord> =
            events.iter().filter(|(event, batch)| event.occurred_at >= cutoff && batch.is_some()).map(|(event, _)| event).collect();
        for _ in 0..5 {
            let record = after[rng.gen_range(0..after.len())];
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
            let (_, in_later_batches, _) = actor_rows(&events, record, &later);
            let stats = response.stats.unwrap();
            assert_eq!(stats.batches_pruned, 1, "{stats:?}");
            if expected < WHOLE_PAGE as usize {
                assert_eq!(response.events.len(), expected);
                assert_eq!(stats.row_groups_pruned_by_bloom, 0, "{how:?}: {stats:?}");
                assert!(stats.rows_read <= in_later_batches, "{how:?}: intact batches still use their index: {stats:?}");
            }
        }
        running.stop().await.unwrap();

        // verify fails on batch 0, naming its index when the index bytes are what changed.
        let store = auditum_store::open(&format!("file://{}", store_dir.display()), &Default::default()).await.unwrap();
        let report = verify::verify_log_with(
            store.as_ref(),
            "default",
            &Verifier::parse(&verifier_key).unwrap(),
            &verify::Options::default(),
            |_| {},
        )
        .await
        .unwrap();
        assert!(!report.ok());
        let about_batch_0: Vec<_> = report.problems.iter().filter(|problem| problem.object == entries[0].object).collect();
        assert!(about_batch_0.iter().all(|problem| problem.kind == ProblemKind::Modified), "{how:?}: {about_batch_0:#?}");
        let names_index = about_batch_0.iter().any(|problem| problem.detail.contains("actor index"));
        assert_eq!(names_index, !matches!(how, Damage::Absent), "{how:?}: {about_batch_0:#?}");
        assert!(report.problems.iter().all(|problem| problem.object == entries[0].object), "{:#?}", report.problems);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_owning_more_rows_than_a_window_reads_in_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    // Default row groups (65,536 rows): one actor's rows are one run longer than a window.
    let config = auditum_server::config::Config { meta_audit: false, ..test_config(dir.path()) };
    let (running, mut ingest) = start(config).await;
    let base = now_micros() - 3_600_000_000;
    let mut appended = 0;
    for chunk in 0..12 {
        let events: Vec<pb::AuditEvent> = (0..1000)
            .map(|i| {
                let mut event = event("acme", "user.login", if (chunk * 1000 + i) % 50 == 0 { "someone-else" } else { "svc-batch" });
                event.occurred_at = Some(timestamp(base + (chunk * 1000 + i) as i64 * 1000));
                event
            })
            .collect();
        appended += ingest.append(request(events)).await.unwrap().into_inner().results.len();
    }
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    let mut client = query_client(&running).await;
    let filter = pb::EventFilter { tenant_id: "acme".into(), actor_id: "svc-batch".into(), ..Default::default() };
    let expected = appended - appended / 50;
    for descending in [false, true] {
        let (got, _) = query_all(&mut client, &filter, descending, 1000).await;
        assert_eq!(got.len(), expected, "descending {descending}");
        let keys: Vec<(i64, u64)> = got
            .iter()
            .map(|stored| {
                let event = stored.event.as_ref().unwrap();
                assert_eq!(event.actor.as_ref().unwrap().id, "svc-batch");
                let at = event.occurred_at.as_ref().unwrap();
                (at.seconds * 1_000_000 + i64::from(at.nanos) / 1000, stored.seq)
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        if descending {
            sorted.reverse();
        }
        assert!(keys == sorted, "rows come in (occurred_at, seq) order, descending {descending}");
    }
    running.stop().await.unwrap();
}
