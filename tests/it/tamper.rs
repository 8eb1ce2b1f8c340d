//! `verify` against tampering: each attack on a copy of a real archive must be named, with the
//! object it concerns, and fail the run; the untouched archive passes.

use crate::common;

use crate::common::*;
use auditum_batch as batch;
use auditum_format::checkpoint::{Signer, Verifier};
use auditum_format::event::{EventRecord, Seq};
use auditum_format::ledger::LedgerEntry;
use auditum_format::paths;
use auditum_store as store;
use auditum_verify::{self as verify, Options, ProblemKind, Report};
use std::path::{Path, PathBuf};

/// A real archive: three sealed batches of 40 events across tenants.
async fn archive(dir: &Path) -> String {
    let (running, mut client) = start(test_config(dir)).await;
    for round in 0..3 {
        let events = (0..40).map(|i| event(["acme", "globex", "initech"][i % 3], "user.login", &format!("u{round}-{i}"))).collect();
        client.append(request(events)).await.unwrap();
        running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    }
    let verifier_key = running.logs.by_name("default").unwrap().verifier_key();
    running.stop().await.unwrap();
    verifier_key
}

struct Copy {
    _dir: tempfile::TempDir,
    store: PathBuf,
}

impl Copy {
    fn of(original: &Path) -> Copy {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        copy_dir(&original.join("store"), &store);
        Copy { _dir: dir, store }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.store.join(key)
    }

    fn entry(&self, index: u64) -> LedgerEntry {
        LedgerEntry::parse(&std::fs::read_to_string(self.path(&paths::ledger_entry_key("default", index))).unwrap()).unwrap()
    }

    fn rows(&self, index: u64) -> Vec<EventRecord> {
        let entry = self.entry(index);
        batch::read_batch(std::fs::read(self.path(&entry.object)).unwrap().into()).unwrap().into_iter().map(|row| row.record).collect()
    }

    /// Rewrites batch `index` from `rows`, as given and with self-consistent leaf hashes.
    fn rewrite_batch(&self, index: u64, rows: &[EventRecord]) {
        let hashed: Vec<(&EventRecord, [u8; 32])> = rows.iter().map(|row| (row, row.leaf_hash())).collect();
        std::fs::write(self.path(&self.entry(index).object), batch::encode_rows(&hashed, Default::default()).unwrap()).unwrap();
    }

    async fn verify(&self, verifier_key: &str, since: Option<String>) -> Report {
        let store = store::open(&format!("file://{}", self.store.display()), &Default::default()).await.unwrap();
        let options = Options { since_checkpoint: since, ..Options::default() };
        verify::verify_log_with(store.as_ref(), "default", &Verifier::parse(verifier_key).unwrap(), &options, |_| {}).await.unwrap()
    }
}

fn assert_named(report: &Report, kind: ProblemKind, object: &str) {
    assert!(!report.ok(), "tampering must fail verification");
    assert!(
        report.problems.iter().any(|problem| problem.kind == kind && problem.object == object),
        "expected {kind} on {object}, got {:#?}",
        report.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_every_kind_of_tampering() {
    let original = tempfile::tempdir().unwrap();
    let key = archive(original.path()).await;

    let clean = Copy::of(original.path());
    let report = clean.verify(&key, None).await;
    assert!(report.ok() && report.entries == 3 && report.events == 120 && report.checkpoints == 4, "{report:#?}");
    let batch1 = clean.entry(1).object;

    // A changed value in one row, the file rewritten consistently.
    let copy = Copy::of(original.path());
    let mut rows = copy.rows(1);
    rows[5].action = "user.logout".into();
    copy.rewrite_batch(1, &rows);
    assert_named(&copy.verify(&key, None).await, ProblemKind::Modified, &batch1);

    // A deleted row.
    let copy = Copy::of(original.path());
    let mut rows = copy.rows(1);
    rows.remove(7);
    copy.rewrite_batch(1, &rows);
    assert_named(&copy.verify(&key, None).await, ProblemKind::MissingRows, &batch1);

    // An inserted row.
    let copy = Copy::of(original.path());
    let mut rows = copy.rows(1);
    let mut forged = rows[0].clone();
    forged.seq = Seq(copy.entry(1).end_seq().0);
    forged.id = "forged".into();
    rows.push(forged);
    copy.rewrite_batch(1, &rows);
    assert_named(&copy.verify(&key, None).await, ProblemKind::ExtraRows, &batch1);

    // Two rows swapped.
    let copy = Copy::of(original.path());
    let mut rows = copy.rows(1);
    rows.swap(2, 30);
    copy.rewrite_batch(1, &rows);
    let report = copy.verify(&key, None).await;
    assert_named(&report, ProblemKind::Reordered, &batch1);
    assert_named(&report, ProblemKind::Modified, &batch1);

    // A batch object deleted.
    let copy = Copy::of(original.path());
    std::fs::remove_file(copy.path(&batch1)).unwrap();
    assert_named(&copy.verify(&key, None).await, ProblemKind::Missing, &batch1);

    // A batch replaced by another valid Parquet file (batch 2's, renamed).
    let copy = Copy::of(original.path());
    std::fs::copy(copy.path(&copy.entry(2).object), copy.path(&batch1)).unwrap();
    assert_named(&copy.verify(&key, None).await, ProblemKind::Modified, &batch1);

    // A ledger entry deleted.
    let copy = Copy::of(original.path());
    std::fs::remove_file(copy.path(&paths::ledger_entry_key("default", 1))).unwrap();
    assert_named(&copy.verify(&key, None).await, ProblemKind::Missing, &paths::ledger_entry_key("default", 1));

    // A ledger entry edited (kept canonical, so only the chain can tell).
    let copy = Copy::of(original.path());
    let entry_path = copy.path(&paths::ledger_entry_key("default", 1));
    let mut edited = copy.entry(1);
    edited.max_occurred_at += 1;
    std::fs::write(&entry_path, edited.to_json_text()).unwrap();
    let report = copy.verify(&key, None).await;
    assert_named(&report, ProblemKind::Modified, &paths::ledger_entry_key("default", 2));
    assert!(report.problems.iter().any(|problem| problem.detail.contains("ledger entry 1")), "{report:#?}");
    assert_named(&report, ProblemKind::Fork, &paths::latest_checkpoint_key("default"));

    // Two ledger entries swapped.
    let copy = Copy::of(original.path());
    let (zero, one) = (copy.path(&paths::ledger_entry_key("default", 0)), copy.path(&paths::ledger_entry_key("default", 1)));
    let (zero_text, one_text) = (std::fs::read(&zero).unwrap(), std::fs::read(&one).unwrap());
    std::fs::write(&zero, one_text).unwrap();
    std::fs::write(&one, zero_text).unwrap();
    assert_named(&copy.verify(&key, None).await, ProblemKind::Reordered, &paths::ledger_entry_key("default", 0));

    // The ledger truncated and the checkpoint rolled back: consistent on its own, so only the
    // auditor's older checkpoint catches it.
    let copy = Copy::of(original.path());
    let auditors_checkpoint = std::fs::read_to_string(copy.path(&paths::latest_checkpoint_key("default"))).unwrap();
    std::fs::remove_file(copy.path(&paths::ledger_entry_key("default", 2))).unwrap();
    std::fs::remove_file(copy.path(&copy_entry_object(&clean, 2))).unwrap();
    std::fs::remove_file(copy.path(&paths::checkpoint_note_key("default", 3))).unwrap();
    std::fs::copy(copy.path(&paths::checkpoint_note_key("default", 2)), copy.path(&paths::latest_checkpoint_key("default"))).unwrap();
    assert!(copy.verify(&key, None).await.ok(), "a clean rollback is self-consistent");
    assert_named(&copy.verify(&key, Some(auditors_checkpoint.clone())).await, ProblemKind::Fork, "--since-checkpoint");
    // The same older checkpoint passes on the intact archive (consistency proof included).
    assert!(clean.verify(&key, Some(copy_note(&clean, 2))).await.ok());

    // A checkpoint signed by another key.
    let copy = Copy::of(original.path());
    let latest = std::fs::read_to_string(copy.path(&paths::latest_checkpoint_key("default"))).unwrap();
    let parsed = auditum_format::checkpoint::Checkpoint::parse(&latest).unwrap();
    let forged = Signer::generate("auditum/default").unwrap().sign_checkpoint(parsed.size, &parsed.root);
    std::fs::write(copy.path(&paths::latest_checkpoint_key("default")), forged).unwrap();
    assert_named(&copy.verify(&key, None).await, ProblemKind::BadSignature, &paths::latest_checkpoint_key("default"));
}

fn copy_entry_object(copy: &Copy, index: u64) -> String {
    copy.entry(index).object
}

fn copy_note(copy: &Copy, size: u64) -> String {
    std::fs::read_to_string(copy.path(&paths::checkpoint_note_key("default", size))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_command_prints_the_problem_and_exits_non_zero() {
    let original = tempfile::tempdir().unwrap();
    let key = archive(original.path()).await;
    let copy = Copy::of(original.path());
    let batch0 = copy.entry(0).object;
    std::fs::remove_file(copy.path(&batch0)).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["verify", "--store", &format!("file://{}", copy.store.display()), "--trusted-key", &key, "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("PROBLEM missing: {batch0}")), "{stdout}");
    assert!(stdout.contains("FAILED (1 problems"), "{stdout}");
    let clean = std::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["verify", "--store", &format!("file://{}", original.path().join("store").display()), "--trusted-key", &key])
        .output()
        .unwrap();
    assert!(clean.status.success());
    assert!(String::from_utf8_lossy(&clean.stderr).contains("verifying: 3/3 batches, 120 events"), "progress is shown");
}

#[test]
fn on_s3_a_delete_marker_and_a_new_object_at_a_locked_key_are_named() {
    common::s3::runtime().block_on(async {
        let moto = common::s3::Moto::start().await;
        moto.locked_bucket("tamper-archive").await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.store = Some("s3://tamper-archive/a".into());
        config.s3_endpoint = Some(moto.endpoint.clone());
        config.retention_mode = Some(auditum_store::RetentionMode::Governance);
        config.retention_days = Some(1);
        let (running, mut client) = start(config).await;
        for round in 0..2 {
            client.append(request((0..10).map(|i| event("acme", "user.login", &format!("u{round}-{i}"))).collect())).await.unwrap();
            running.logs.by_name("default").unwrap().seal_now().await.unwrap();
        }
        let key = running.logs.by_name("default").unwrap().verifier_key();
        running.stop().await.unwrap();
        let store = store::open("s3://tamper-archive/a", &moto.options()).await.unwrap();
        let verifier = Verifier::parse(&key).unwrap();
        assert!(verify::verify_log(store.as_ref(), "default", &verifier).await.unwrap().ok());

        let entry =
            LedgerEntry::parse(std::str::from_utf8(&store.get(&paths::ledger_entry_key("default", 0), None).await.unwrap()).unwrap())
                .unwrap();
        let client = moto.client().await;
        let full_key = format!("a/{}", entry.object);
        // A delete marker over the locked batch: allowed by S3, but not unnoticed.
        client.delete_object().bucket("tamper-archive").key(&full_key).send().await.unwrap();
        let report = verify::verify_log(store.as_ref(), "default", &verifier).await.unwrap();
        assert_named(&report, ProblemKind::Replaced, &entry.object);
        assert_eq!(report.events, 20, "the recorded version is still read and verifies");
        // Then an impostor object at the same key.
        let impostor = store.get(&paths::ledger_entry_key("default", 1), None).await.unwrap();
        client.put_object().bucket("tamper-archive").key(&full_key).body(impostor.to_vec().into()).send().await.unwrap();
        let report = verify::verify_log(store.as_ref(), "default", &verifier).await.unwrap();
        assert_named(&report, ProblemKind::Replaced, &entry.object);
        assert!(report.problems.iter().all(|problem| problem.kind == ProblemKind::Replaced), "{report:#?}");
    });
}
