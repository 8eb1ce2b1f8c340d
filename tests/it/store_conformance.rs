//! One conformance suite for every storage backend: the file store and S3 (moto_server).

use crate::common;

use auditum_store::conformance::run as conformance;
use auditum_store::{self as store, PutOptions, Retention, RetentionMode};
use bytes::Bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = store::open(&url, &Default::default()).await.unwrap();
    conformance(store.as_ref()).await;
    // No Object Lock and no archive classes here: said, not pretended.
    let hold = store.set_legal_hold("log/batches/a.parquet", None, true).await.unwrap_err();
    assert!(matches!(hold, store::Error::Unsupported { .. }) && hold.to_string().contains("legal hold"), "{hold}");
    let restore = store.restore("log/batches/a.parquet", None, 1, store::RestoreTier::Standard).await.unwrap_err();
    assert!(matches!(restore, store::Error::Unsupported { .. }), "{restore}");
    // Immutable objects are read-only files.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("log/batches/a.parquet")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o444);
    // No temporary files are left behind.
    let leftovers: Vec<_> = common::files_under(dir.path())
        .into_iter()
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn s3_store_conforms_and_locks_what_it_writes() {
    common::s3::runtime().block_on(async {
        let moto = common::s3::Moto::start().await;
        moto.locked_bucket("conformance").await;
        let store = store::open("s3://conformance/some/prefix", &moto.options()).await.unwrap();
        store.check_ready(&store::ReadyCheck { object_lock_required: true, ..Default::default() }).await.unwrap();
        conformance(store.as_ref()).await;

        // Object Lock: mode and retain-until as asked, and the locked version cannot be deleted.
        let retain_until = chrono::Utc::now() + chrono::Duration::days(2);
        let options = PutOptions { retention: Some(Retention { mode: RetentionMode::Compliance, retain_until }), ..PutOptions::default() };
        let put = store.put_create_only("log/ledger/000000000009.json", Bytes::from_static(b"{}"), &options).await.unwrap();
        let version = put.version.clone().expect("versioned bucket returns a version id");
        let meta = store.head("log/ledger/000000000009.json", Some(&version)).await.unwrap();
        let retention = meta.retention.expect("lock reported by HeadObject");
        assert_eq!(retention.mode, RetentionMode::Compliance);
        assert!((retention.retain_until - retain_until).num_seconds().abs() <= 1, "{retention:?}");
        let client = moto.client().await;
        let deleted =
            client.delete_object().bucket("conformance").key("some/prefix/log/ledger/000000000009.json").version_id(&version).send().await;
        let error = deleted.expect_err("deleting a locked version is refused");
        assert_eq!(error.raw_response().map(|response| response.status().as_u16()), Some(403));
        // Keys live under the prefix.
        let listed = client.list_objects_v2().bucket("conformance").prefix("some/prefix/log/ledger/").send().await.unwrap();
        assert_eq!(listed.contents().len(), 4);

        // Legal hold: on from the put, off and on again by version; HeadObject reports it.
        let held = PutOptions { legal_hold: true, ..PutOptions::default() };
        let put = store.put_create_only("log/batches/held.parquet", Bytes::from_static(b"held"), &held).await.unwrap();
        let version = put.version.unwrap();
        assert!(store.head("log/batches/held.parquet", Some(&version)).await.unwrap().legal_hold);
        store.set_legal_hold("log/batches/held.parquet", Some(&version), false).await.unwrap();
        assert!(!store.head("log/batches/held.parquet", Some(&version)).await.unwrap().legal_hold);
        store.set_legal_hold("log/batches/held.parquet", Some(&version), true).await.unwrap();
        assert!(store.head("log/batches/held.parquet", Some(&version)).await.unwrap().legal_hold);

        // An archive class: unreadable (Archived, not a generic error) until restored.
        let cold = PutOptions { storage_class: Some(store::StorageClass::Glacier), ..PutOptions::default() };
        let put = store.put_create_only("log/batches/cold.parquet", Bytes::from_static(b"cold"), &cold).await.unwrap();
        let version = put.version.unwrap();
        let meta = store.head("log/batches/cold.parquet", Some(&version)).await.unwrap();
        assert!(meta.storage_class == Some(store::StorageClass::Glacier) && meta.is_archived(), "{meta:?}");
        let unreadable = store.get_range("log/batches/cold.parquet", Some(&version), 0..2).await.unwrap_err();
        assert!(matches!(unreadable, store::Error::Archived { .. }), "{unreadable}");
        let started = store.restore("log/batches/cold.parquet", Some(&version), 1, store::RestoreTier::Standard).await.unwrap();
        assert_eq!(started, store::RestoreRequested::Started);
        let meta = store.head("log/batches/cold.parquet", Some(&version)).await.unwrap();
        assert!(matches!(meta.restore, Some(store::RestoreState::Restored { .. })) && !meta.is_archived(), "{meta:?}");
        assert_eq!(store.get("log/batches/cold.parquet", Some(&version)).await.unwrap(), Bytes::from_static(b"cold"));
    });
}
