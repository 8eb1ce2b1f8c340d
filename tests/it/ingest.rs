//! The write path end to end on 127.0.0.1:0: append for several tenants and logs, seal, then
//! read the Parquet files back and recompute every leaf, root, ledger link and the checkpoint
//! signature from first principles.

use crate::common::*;
use auditum_batch as batch;
use auditum_format::checkpoint::Verifier;
use auditum_format::event::Seq;
use auditum_format::ledger::{self, LedgerEntry};
use auditum_format::merkle;
use auditum_format::paths;
use auditum_proto::pb;
use auditum_proto::sample;
use auditum_store::{self as store, ObjectStore};
use rand::SeedableRng;
use std::collections::HashMap;

/// Recomputes everything a verifier would for one log, independently of `auditum_verify`.
async fn recompute_log(store: &dyn ObjectStore, log: &str, verifier_key: &str) -> Vec<(LedgerEntry, Vec<batch::StoredRow>)> {
    let mut out = Vec::new();
    let mut hashes = Vec::new();
    for meta in store.list(&paths::ledger_prefix(log)).await.unwrap() {
        let body = store.get(&meta.key, None).await.unwrap();
        let entry = LedgerEntry::parse(std::str::from_utf8(&body).unwrap()).unwrap();
        assert_eq!(entry.index, hashes.len() as u64, "ledger indexes are dense");
        assert_eq!(entry.prev, hashes.last().copied().unwrap_or([0u8; 32]), "prev links the previous entry hash");
        let expected_first = out.last().map(|(entry, _): &(LedgerEntry, _)| entry.end_seq()).unwrap_or(Seq(0));
        assert_eq!(entry.first_seq, expected_first, "seqs are contiguous across batches");
        let bytes = store.get(&entry.object, entry.version.as_deref()).await.unwrap();
        assert_eq!(bytes.len() as u64, entry.size);
        assert_eq!(<[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&bytes)), entry.sha256);
        let rows = batch::read_batch(bytes).unwrap();
        assert_eq!(rows.len() as u64, entry.count);
        let leaves: Vec<[u8; 32]> = rows
            .iter()
            .map(|row| {
                let leaf = merkle::leaf_hash(&row.record.canonical_bytes());
                assert_eq!(leaf, row.stored_leaf_hash, "stored leaf_hash matches the recomputed leaf");
                leaf
            })
            .collect();
        assert_eq!(merkle::root_recursive(&leaves), entry.root, "batch root recomputes");
        let mut seqs: Vec<u64> = rows.iter().map(|row| row.record.seq.0).collect();
        let sorted_rows = rows.windows(2).all(|pair| {
            (&pair[0].record.tenant_id, pair[0].record.occurred_at, pair[0].record.seq)
                < (&pair[1].record.tenant_id, pair[1].record.occurred_at, pair[1].record.seq)
        });
        assert!(sorted_rows, "rows sorted by (tenant_id, occurred_at, seq)");
        seqs.sort();
        assert_eq!(seqs, (entry.first_seq.0..entry.end_seq().0).collect::<Vec<_>>());
        hashes.push(ledger::entry_hash(&body));
        out.push((entry, rows));
    }
    let verifier = Verifier::parse(verifier_key).unwrap();
    let note = store.get(&paths::latest_checkpoint_key(log), None).await.unwrap();
    let checkpoint = verifier.verify_checkpoint(std::str::from_utf8(&note).unwrap()).unwrap();
    assert_eq!(checkpoint.size, hashes.len() as u64);
    assert_eq!(checkpoint.root, merkle::root_recursive(&hashes), "checkpoint signs the ledger root");
    for size in 1..=hashes.len() as u64 {
        let note = store.get(&paths::checkpoint_note_key(log, size), None).await.unwrap();
        let historical = verifier.verify_checkpoint(std::str::from_utf8(&note).unwrap()).unwrap();
        assert_eq!(historical.root, merkle::root_recursive(&hashes[..size as usize]));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_seal_and_recompute_everything_across_tenants_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.logs = vec![routed_log("bigco", &["bigco"])];
    let (running, mut client) = start(config.clone()).await;

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut acknowledged: HashMap<(String, u64), pb::AuditEvent> = HashMap::new();
    for round in 0..3 {
        let mut events: Vec<pb::AuditEvent> =
            (0..300).map(|i| sample::realistic_event(&mut rng, now_micros() - (i * 977) % 50_000_000)).collect();
        for (i, event) in events.iter_mut().enumerate().filter(|(i, _)| i % 10 == 0) {
            event.tenant_id = "bigco".into();
            event.id = format!("bigco-{round}-{i}");
        }
        let response = client.append(request(events.clone())).await.unwrap().into_inner();
        assert_eq!(response.results.len(), events.len());
        for (event, result) in events.into_iter().zip(response.results) {
            let expected_log = if event.tenant_id == "bigco" { "bigco" } else { "default" };
            assert_eq!(result.log, expected_log);
            assert!(!result.duplicate);
            assert!(acknowledged.insert((result.log.clone(), result.seq), event).is_none(), "seq reused");
        }
        for log in running.logs.all() {
            log.seal_now().await.unwrap();
        }
    }
    // Per log, seqs are dense from 0.
    for log in ["default", "bigco"] {
        let mut seqs: Vec<u64> = acknowledged.keys().filter(|(name, _)| name == log).map(|(_, seq)| *seq).collect();
        seqs.sort();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "log {log}");
    }

    let store = store::open(&config.default_store_url(), &Default::default()).await.unwrap();
    let mut found = 0;
    for log in ["default", "bigco"] {
        let verifier_key = running.logs.by_name(log).unwrap().verifier_key();
        let batches = recompute_log(store.as_ref(), log, &verifier_key).await;
        assert_eq!(batches.len(), 3, "one batch per seal for log {log}");
        for (entry, rows) in batches {
            let tenants: Vec<String> = entry.tenants.clone().unwrap();
            for row in rows {
                assert!(tenants.contains(&row.record.tenant_id));
                let sent = &acknowledged[&(log.to_string(), row.record.seq.0)];
                assert_eq!(row.record.tenant_id, sent.tenant_id);
                assert_eq!(row.record.action, sent.action);
                // Secret-looking keys are redacted before storage, at any depth.
                let metadata = row.record.metadata.as_deref().unwrap();
                assert!(metadata.contains("\"password\":\"[REDACTED]\""), "{metadata}");
                assert!(!metadata.contains("hunter2"));
                assert!(row.record.occurred_at <= row.record.received_at);
                found += 1;
            }
        }
    }
    assert_eq!(found, acknowledged.len());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_idempotent_before_and_after_sealing_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let (running, mut client) = start(config.clone()).await;
    let first = client
        .append(request(vec![with_id(event("acme", "user.login", "u1"), "evt-1"), with_id(event("acme", "user.login", "u2"), "evt-2")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.results.iter().map(|result| result.seq).collect::<Vec<_>>(), [0, 1]);

    // Same id in the WAL: original seq, duplicate; the same id in another tenant is another event.
    let retry = client
        .append(request(vec![with_id(event("acme", "user.login", "u1"), "evt-1"), with_id(event("globex", "user.login", "u1"), "evt-1")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((retry.results[0].seq, retry.results[0].duplicate), (0, true));
    assert_eq!(retry.results[0].received_at, first.results[0].received_at);
    assert_eq!((retry.results[1].seq, retry.results[1].duplicate), (2, false));

    // Duplicates inside one call.
    let within = client
        .append(request(vec![with_id(event("acme", "a", "u"), "dup"), with_id(event("acme", "a", "u"), "dup")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((within.results[0].seq, within.results[0].duplicate), (3, false));
    assert_eq!((within.results[1].seq, within.results[1].duplicate), (3, true));

    // Server-assigned ids are UUIDv7.
    let assigned = client.append(request(vec![event("acme", "a", "u")])).await.unwrap().into_inner();
    let id = uuid::Uuid::parse_str(&assigned.results[0].id).unwrap();
    assert_eq!(id.get_version_num(), 7);

    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    let after_seal = client.append(request(vec![with_id(event("acme", "user.login", "u2"), "evt-2")])).await.unwrap().into_inner();
    assert_eq!((after_seal.results[0].seq, after_seal.results[0].duplicate), (1, true));
    // One more event, unsealed until the graceful stop seals it.
    let unsealed = client.append(request(vec![with_id(event("acme", "a", "u"), "in-wal")])).await.unwrap().into_inner();
    assert_eq!(unsealed.results[0].seq, 5);
    drop(client);
    // Ids still in the WAL at a crash are covered by tests/it/crash.rs (kill -9 of the binary).
    running.stop().await.unwrap();

    let (running, mut client) = start(config).await;
    let again = client
        .append(request(vec![
            with_id(event("acme", "user.login", "u1"), "evt-1"),
            with_id(event("acme", "a", "u"), "in-wal"),
            with_id(event("acme", "a", "u"), "new"),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.results[0].seq, again.results[0].duplicate), (0, true), "sealed id remembered after restart");
    assert_eq!((again.results[1].seq, again.results[1].duplicate), (5, true), "id sealed at shutdown remembered after restart");
    assert_eq!((again.results[2].seq, again.results[2].duplicate), (6, false), "sequence continues");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_seal_answers_after_the_batch_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.seal_interval = std::time::Duration::from_millis(300);
    let (running, mut client) = start(config).await;
    let response = client
        .append(pb::AppendRequest { events: vec![event("acme", "user.login", "u1")], wait_for_seal: true })
        .await
        .unwrap()
        .into_inner();
    let log = running.logs.by_name("default").unwrap();
    assert!(log.committed_next().0 > response.results[0].seq, "answered only once committed");
    let snapshot = log.ledger_snapshot();
    assert_eq!(snapshot.entries.len(), 1);
    assert!(snapshot.checkpoint.is_some());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_seals_open_events_and_a_full_batch_seals_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.batch_max_events = 50;
    let (running, mut client) = start(config.clone()).await;
    let events: Vec<pb::AuditEvent> = (0..120).map(|i| event("acme", "user.login", &format!("u{i}"))).collect();
    client.append(request(events)).await.unwrap();
    let log = running.logs.by_name("default").unwrap().clone();
    // The cap triggers sealing without waiting for the (hour-long) interval.
    tokio::time::timeout(std::time::Duration::from_secs(20), log.wait_committed(Seq(100))).await.unwrap().unwrap();
    running.stop().await.unwrap();
    let store = store::open(&config.default_store_url(), &Default::default()).await.unwrap();
    let entries = store.list(&paths::ledger_prefix("default")).await.unwrap();
    let mut counts = Vec::new();
    for meta in entries {
        let body = store.get(&meta.key, None).await.unwrap();
        counts.push(LedgerEntry::parse(std::str::from_utf8(&body).unwrap()).unwrap().count);
    }
    assert_eq!(counts, [50, 50, 20], "two full batches, then the rest sealed at shutdown");
    // And nothing is left in the WAL to replay.
    let replay = auditum_engine::log::wal::replay(&dir.path().join("wal/default")).unwrap();
    assert!(replay.records.iter().all(|record| record.seq.0 < 120));
}

#[tokio::test(flavor = "current_thread")]
async fn a_shutdown_sent_before_the_sealer_first_runs_is_not_missed() {
    // On one thread nothing yields between the sealer's spawn in Log::open and this shutdown:
    // the stop is sent before the sealer task is first polled, and it must still see it.
    let dir = tempfile::tempdir().unwrap();
    let logs = auditum_server::open_logs(&test_config(dir.path())).await.unwrap();
    let log = logs.by_name("default").unwrap().clone();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(20), log.shutdown(std::time::Duration::from_secs(5))).await;
    stopped.expect("shutdown finishes").unwrap();
}
