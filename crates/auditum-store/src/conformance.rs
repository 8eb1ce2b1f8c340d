//! The one conformance suite every storage backend runs (the file store and S3 on moto, in
//! `tests/it/store_conformance.rs`): create-only puts, conditional replace of the one mutable
//! object, ranged reads, listing, deletion, and keys that never escape the store.
//!
//! It panics on the first broken promise, like a test: call it from a test.

use crate::{Error, ObjectStore, PutOptions, put_immutable};
use bytes::Bytes;

/// Runs the suite on an empty store.
pub async fn run(store: &dyn ObjectStore) {
    let options = PutOptions::default();
    let body = Bytes::from_static(b"hello, immutable world");

    // Create-only.
    let put = store.put_create_only("log/batches/a.parquet", body.clone(), &options).await.unwrap();
    assert!(!put.etag.is_empty());
    let again = store.put_create_only("log/batches/a.parquet", Bytes::from_static(b"other"), &options).await;
    assert!(matches!(again, Err(Error::AlreadyExists { .. })), "{again:?}");
    assert_eq!(store.get("log/batches/a.parquet", put.version.as_deref()).await.unwrap(), body, "the first write stands");

    // A retry with identical bytes succeeds; different bytes are a conflict.
    put_immutable(store, "log/batches/a.parquet", body.clone(), &options).await.unwrap();
    assert!(matches!(
        put_immutable(store, "log/batches/a.parquet", Bytes::from_static(b"x"), &options).await,
        Err(Error::AlreadyExists { .. })
    ));

    // Reads.
    assert_eq!(store.get_range("log/batches/a.parquet", None, 7..16).await.unwrap(), Bytes::from_static(b"immutable"));
    let meta = store.head("log/batches/a.parquet", None).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
    assert!(matches!(store.get("log/batches/missing", None).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.head("log/batches/missing", None).await, Err(Error::NotFound { .. })));

    // Conditional replace of the one mutable object.
    let created = store.put_if_match("log/checkpoint", Bytes::from_static(b"v1"), None).await.unwrap();
    assert!(matches!(store.put_if_match("log/checkpoint", Bytes::from_static(b"v1b"), None).await, Err(Error::PreconditionFailed { .. })));
    assert!(matches!(
        store.put_if_match("log/checkpoint", Bytes::from_static(b"v2"), Some("bogus-etag")).await,
        Err(Error::PreconditionFailed { .. })
    ));
    let replaced = store.put_if_match("log/checkpoint", Bytes::from_static(b"v2"), Some(&created.etag)).await.unwrap();
    assert_eq!(store.get("log/checkpoint", None).await.unwrap(), Bytes::from_static(b"v2"));
    assert!(matches!(
        store.put_if_match("log/checkpoint", Bytes::from_static(b"v3"), Some(&created.etag)).await,
        Err(Error::PreconditionFailed { .. })
    ));
    assert_eq!(store.head("log/checkpoint", None).await.unwrap().etag.as_deref(), Some(replaced.etag.as_str()));

    // Listing: by prefix, sorted, nothing outside it.
    for key in
        ["log/ledger/000000000002.json", "log/ledger/000000000000.json", "log/ledger/000000000001.json", "logx/ledger/000000000000.json"]
    {
        store.put_create_only(key, Bytes::from(key.to_string()), &options).await.unwrap();
    }
    let listed: Vec<String> = store.list("log/ledger/").await.unwrap().into_iter().map(|meta| meta.key).collect();
    assert_eq!(listed, ["log/ledger/000000000000.json", "log/ledger/000000000001.json", "log/ledger/000000000002.json"]);
    assert!(store.list("nothing/here/").await.unwrap().is_empty());

    // Delete: the object is gone (for reads, heads and lists), deleting it again succeeds, and
    // the key can be written anew, whether it was created only-once or replaced.
    store.put_create_only("keyring/keys/t/a", Bytes::from_static(b"key a"), &options).await.unwrap();
    let mutable = store.put_if_match("keyring/keys/t/b", Bytes::from_static(b"key b"), None).await.unwrap();
    store.put_if_match("keyring/keys/t/b", Bytes::from_static(b"key b2"), Some(&mutable.etag)).await.unwrap();
    store.delete("keyring/keys/t/a").await.unwrap();
    assert!(matches!(store.get("keyring/keys/t/a", None).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.head("keyring/keys/t/a", None).await, Err(Error::NotFound { .. })));
    let listed: Vec<String> = store.list("keyring/keys/t/").await.unwrap().into_iter().map(|meta| meta.key).collect();
    assert_eq!(listed, ["keyring/keys/t/b"]);
    store.delete("keyring/keys/t/a").await.unwrap();
    store.delete("keyring/never/written").await.unwrap();
    store.delete("keyring/keys/t/b").await.unwrap();
    assert!(store.list("keyring/keys/t/").await.unwrap().is_empty());
    store.put_create_only("keyring/keys/t/a", Bytes::from_static(b"key a2"), &options).await.unwrap();
    assert_eq!(store.get("keyring/keys/t/a", None).await.unwrap(), Bytes::from_static(b"key a2"));
    store.put_if_match("keyring/keys/t/b", Bytes::from_static(b"key b3"), None).await.unwrap();
    assert!(matches!(store.delete("../escape").await, Err(Error::InvalidKey { .. })));

    // Keys never escape the store.
    for key in ["../escape", "/absolute", "a//b", "a/./b", ""] {
        assert!(matches!(store.put_create_only(key, body.clone(), &options).await, Err(Error::InvalidKey { .. })), "{key:?}");
    }
}
