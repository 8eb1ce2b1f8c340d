//! Retention an auditor can check (docs/FORMAT.md, Ledger entries, Version 2): entries record
//! their batch's Object Lock retain-until; `verify --as-of` tells a batch gone after it (expired,
//! policy) from one gone before it or without one (missing, tampering); a version 1 ledger
//! continues in version 2, and a version downgrade is caught.

use crate::common::s3::{Moto, governed_config, runtime};
use crate::common::*;
use auditum_format::checkpoint::{Signer, Verifier, signing_key_path};
use auditum_format::ledger::{self, LedgerEntry, Retention};
use auditum_format::{merkle, paths};
use auditum_store::{self as store, ObjectStore};
use auditum_verify::{self as verify, Options, ProblemKind, Report};
use std::path::Path;

const DAY_MICROS: i64 = 86_400_000_000;

type IngestClient = auditum_proto::pb::ingest_service_client::IngestServiceClient<tonic::transport::Channel>;

async fn append_and_seal(running: &auditum_server::RunningServer, client: &mut IngestClient, batches: usize) {
    for round in 0..batches {
        let events = (0..5).map(|i| event(["acme", "globex"][i % 2], "user.login", &format!("u{round}-{i}"))).collect();
        client.append(request(events)).await.unwrap();
        running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    }
}

async fn verify_as_of(store: &dyn ObjectStore, key: &str, as_of_micros: Option<i64>, require_days: Option<u32>) -> Report {
    let options = Options { as_of_micros, require_retention_days: require_days, ..Options::default() };
    verify::verify_log_with(store, "default", &Verifier::parse(key).unwrap(), &options, |_| {}).await.unwrap()
}

#[test]
fn a_batch_gone_after_its_retain_until_is_expired_and_before_it_missing() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("vault").await;
        let dir = tempfile::tempdir().unwrap();
        let url = "s3://vault/prod";
        let config = governed_config(dir.path(), &moto, url);
        let (running, mut client) = start(config).await;
        append_and_seal(&running, &mut client, 3).await;
        let key = running.logs.by_name("default").unwrap().verifier_key();
        running.stop().await.unwrap();

        // Each entry is version 2 and records exactly the retain-until its batch object carries.
        let store = store::open(url, &moto.options()).await.unwrap();
        let entries = ledger_entries(store.as_ref(), "default").await;
        assert_eq!(entries.len(), 3);
        for entry in &entries {
            assert_eq!(entry.format_version(), 2);
            let until = entry.retain_until().expect("a log with retention records it");
            let head = store.head(&entry.object, entry.version.as_deref()).await.unwrap();
            assert_eq!(head.retention.unwrap().retain_until.timestamp_micros(), until, "{}", entry.object);
            assert!((until - entry.sealed_at - DAY_MICROS).abs() < 5_000_000, "one day after the seal: {entry:?}");
        }
        let clean = verify_as_of(store.as_ref(), &key, None, None).await;
        assert!(clean.ok() && clean.expired.is_empty(), "{clean:#?}");
        let (shortest, longest) = clean.retention_days.unwrap();
        assert!((shortest - 1.0).abs() < 0.001 && (longest - 1.0).abs() < 0.001, "{clean:?}");
        assert!(clean.summary().contains("retention 1 to 1 days, 0 entries without"), "{}", clean.summary());

        // The oldest batch's version is deleted (governance bypass, as a lifecycle rule would
        // once retention ends).
        let first = &entries[0];
        moto.client()
            .await
            .delete_object()
            .bucket("vault")
            .key(format!("prod/{}", first.object))
            .version_id(first.version.clone().unwrap())
            .bypass_governance_retention(true)
            .send()
            .await
            .unwrap();

        // The next batch gets a delete marker, as an expiration rule's first step would.
        let second = &entries[1];
        moto.client().await.delete_object().bucket("vault").key(format!("prod/{}", second.object)).send().await.unwrap();

        // Checked now, before its retain_until: tampering.
        let now = verify_as_of(store.as_ref(), &key, None, None).await;
        assert!(
            now.problems.iter().any(|problem| problem.kind == ProblemKind::Missing
                && problem.object == first.object
                && problem.detail.contains("before its retain_until")),
            "{now:#?}"
        );
        assert!(!now.ok() && now.expired.is_empty());
        assert!(now.problems.iter().any(|problem| problem.kind == ProblemKind::Replaced && problem.object == second.object), "{now:#?}");
        // Checked as of a moment after it: policy. The chain and checkpoints are still checked.
        let later = first.retain_until().unwrap() + 3_600_000_000;
        let expired = verify_as_of(store.as_ref(), &key, Some(later), None).await;
        assert!(expired.ok(), "the delete marker after retain_until is policy too: {expired:#?}");
        assert_eq!(expired.expired, vec![first.object.clone()]);
        assert_eq!((expired.entries, expired.events, expired.checkpoints), (3, 10, 4));
        // An auditor requiring two days flags every entry; one day passes.
        let strict = verify_as_of(store.as_ref(), &key, Some(later), Some(2)).await;
        assert_eq!(strict.problems.iter().filter(|problem| problem.kind == ProblemKind::ShortRetention).count(), 3, "{strict:#?}");
        assert!(verify_as_of(store.as_ref(), &key, Some(later), Some(1)).await.ok());

        // The command line: exit codes and what the auditor reads.
        let base = ["verify", "--store", url, "--trusted-key", &key, "--s3-endpoint", &moto.endpoint, "--quiet"];
        let (stdout, _, success) = run_binary(&base);
        assert!(!success && stdout.contains("PROBLEM missing: ") && stdout.contains("before its retain_until"), "{stdout}");
        let as_of = auditum_format::time::rfc3339_micros(later);
        let (stdout, stderr, success) = run_binary(&[&base[..], &["--as-of", &as_of]].concat());
        assert!(success, "{stdout}{stderr}");
        assert!(stdout.contains(&format!("EXPIRED {}", first.object)), "{stdout}");
        assert!(stdout.contains("1 batches expired; retention 1 to 1 days, 0 entries without: OK"), "{stdout}");
        let (stdout, _, success) = run_binary(&[&base[..], &["--as-of", &as_of, "--require-retention-days", "365"]].concat());
        assert!(!success && stdout.contains("PROBLEM short retention: ") && stdout.contains("365 are required"), "{stdout}");

        // Only a delete marker is excused after retain_until: another object put at the key is
        // still a replaced batch.
        let third = &entries[2];
        moto.client()
            .await
            .put_object()
            .bucket("vault")
            .key(format!("prod/{}", third.object))
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"not the batch"))
            .send()
            .await
            .unwrap();
        let overwritten = verify_as_of(store.as_ref(), &key, Some(later), None).await;
        assert!(
            overwritten.problems.iter().any(|problem| problem.kind == ProblemKind::Replaced && problem.object == third.object),
            "{overwritten:#?}"
        );
    });
}

/// Rewrites the ledger of the file store under `data_dir` through `change` (entry index → new
/// retention), chaining and signing it again with the log's own key: the archive an older
/// version of auditum, or a differently configured one, would have written.
fn rewrite_ledger(data_dir: &Path, change: impl Fn(u64) -> Retention) {
    let store = data_dir.join("store");
    let (signer, _) = Signer::load_or_generate(&signing_key_path(data_dir, "default"), "auditum/default").unwrap();
    let write = |key: &str, body: &str| {
        let path = store.join(key);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, body).unwrap();
    };
    let mut hashes = Vec::new();
    for index in 0.. {
        let key = paths::ledger_entry_key("default", index);
        let Ok(text) = std::fs::read_to_string(store.join(&key)) else { break };
        let mut entry = LedgerEntry::parse(&text).unwrap();
        entry.retention = change(index);
        entry.prev = hashes.last().copied().unwrap_or(ledger::GENESIS_PREV);
        let text = entry.to_json_text();
        hashes.push(ledger::entry_hash(text.as_bytes()));
        write(&key, &text);
    }
    for size in 1..=hashes.len() {
        let note = signer.sign_checkpoint(size as u64, &merkle::root(&hashes[..size]));
        write(&paths::checkpoint_note_key("default", size as u64), &note);
        if size == hashes.len() {
            write(&paths::latest_checkpoint_key("default"), &note);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_ledger_continues_in_version_2_and_a_downgrade_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    append_and_seal(&running, &mut client, 2).await;
    let key = running.logs.by_name("default").unwrap().verifier_key();
    running.stop().await.unwrap();
    let store = store::open(&format!("file://{}", dir.path().join("store").display()), &Default::default()).await.unwrap();
    assert!(ledger_entries(store.as_ref(), "default").await.iter().all(|entry| entry.retention == Retention::RetainUntil(None)));

    // The archive as a version 1 writer left it: it verifies, and records no retention.
    rewrite_ledger(dir.path(), |_| Retention::NotRecorded);
    let v1 = verify_as_of(store.as_ref(), &key, None, None).await;
    assert!(v1.ok() && v1.entries == 2, "{v1:#?}");
    assert!(v1.summary().contains("no retention recorded, 2 entries without"), "{}", v1.summary());

    // The server starts on it and continues in version 2.
    let (running, mut client) = start(test_config(dir.path())).await;
    append_and_seal(&running, &mut client, 1).await;
    running.stop().await.unwrap();
    let versions: Vec<u8> = ledger_entries(store.as_ref(), "default").await.iter().map(LedgerEntry::format_version).collect();
    assert_eq!(versions, [1, 1, 2]);
    let mixed = verify_as_of(store.as_ref(), &key, None, None).await;
    assert!(mixed.ok() && mixed.entries == 3 && mixed.events == 15, "{mixed:#?}");

    // A batch whose entry records no retain_until (null) is missing however late the check.
    let last = ledger_entries(store.as_ref(), "default").await.pop().unwrap();
    std::fs::remove_file(dir.path().join("store").join(&last.object)).unwrap();
    let far = verify_as_of(store.as_ref(), &key, Some(auditum_format::time::now_micros() + 36_500 * DAY_MICROS), None).await;
    assert!(far.problems.iter().any(|problem| problem.kind == ProblemKind::Missing && problem.object == last.object), "{far:#?}");
    assert!(far.expired.is_empty());

    // Back to version 1 after version 2, even correctly chained and signed: caught.
    rewrite_ledger(dir.path(), |index| if index == 1 { Retention::RetainUntil(None) } else { Retention::NotRecorded });
    let downgraded = verify_as_of(store.as_ref(), &key, None, None).await;
    let entry_2 = paths::ledger_entry_key("default", 2);
    assert!(
        downgraded.problems.iter().any(|problem| problem.kind == ProblemKind::Malformed
            && problem.object == entry_2
            && problem.detail.contains("a version 1 entry after the version 2 entry 1")),
        "{downgraded:#?}"
    );
}
