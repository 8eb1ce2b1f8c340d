//! The keyring end to end on a file store.

use crate::envelope::{self, VALUE_PREFIX};
use crate::{ENCRYPTABLE_COLUMNS, ERASED, EncryptedColumns, Error, Kek, Keyring, UNDECRYPTABLE, column, column_mut, paths, rotate_kek};
use auditum_format::event::EventRecord;
use auditum_store::{FileStore, ObjectStore};
use std::sync::Arc;

const LOG: &str = "default";

fn store(dir: &tempfile::TempDir) -> Arc<dyn ObjectStore> {
    let path = dir.path().to_str().unwrap();
    Arc::new(FileStore::open(&format!("file://{path}"), path).unwrap())
}

async fn open(store: &Arc<dyn ObjectStore>, kek: [u8; 32]) -> Keyring {
    Keyring::open(store.clone(), LOG, Kek::from_bytes(kek), 64).await.unwrap()
}

/// Every encryptable column set but `before` (a null that must stay null).
fn record(tenant: &str, id: &str, actor: &str) -> EventRecord {
    let mut record =
        EventRecord { id: id.into(), tenant_id: tenant.into(), actor_id: actor.into(), action: "user.login".into(), ..Default::default() };
    for (index, name) in ENCRYPTABLE_COLUMNS.iter().enumerate() {
        if *name != "before" {
            *column_mut(&mut record, index).unwrap() = Some(format!("{name} of {id} ✓"));
        }
    }
    record
}

fn kid_of(value: &str) -> &str {
    value.strip_prefix(VALUE_PREFIX).unwrap().split(':').next().unwrap()
}

/// `^auditum:enc:v1:[0-9a-f]{32}:[A-Za-z0-9+/=]+$`
fn is_value_format(value: &str) -> bool {
    let Some((kid, encoded)) = value.strip_prefix(VALUE_PREFIX).and_then(|rest| rest.split_once(':')) else { return false };
    kid.len() == 32
        && kid.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        && !encoded.is_empty()
        && encoded.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
}

async fn encrypted(keyring: &Keyring, records: &[EventRecord]) -> Vec<EventRecord> {
    let mut records = records.to_vec();
    let subjects = vec![None; records.len()];
    drop(keyring.encrypt_records(&mut records, &subjects, EncryptedColumns::ALL).await.unwrap());
    records
}

async fn decrypted(keyring: &Keyring, records: &[EventRecord]) -> Vec<EventRecord> {
    let mut records = records.to_vec();
    keyring.decrypt_records(&mut records).await.unwrap();
    records
}

fn all_erased(record: &EventRecord) -> bool {
    (0..8).all(|index| column(record, index).is_none_or(|value| value == ERASED)) && record.before.is_none()
}

#[tokio::test]
async fn kid_is_hmac_sha256_of_the_subject_and_generation() {
    use hmac::Mac;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = open(&store, [1; 32]).await;
    assert_eq!(keyring.current_kid("acme", "alice").await.unwrap(), None, "no tenant secret yet");
    let sealed = encrypted(&keyring, &[record("acme", "e1", "alice")]).await;

    // The tenant secret, unwrapped here, and HMAC-SHA256 from the hmac crate.
    let secret_key = paths::tenant_secret(LOG, "acme");
    let secret = envelope::unwrap(&Kek::from_bytes([1; 32]), &secret_key, &store.get(&secret_key, None).await.unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
    mac.update(b"auditum/subject/v1\nalice\n0");
    let expected = hex::encode(mac.finalize().into_bytes())[..32].to_string();

    let value = sealed[0].actor_name.as_deref().unwrap();
    assert!(is_value_format(value), "{value}");
    assert_eq!(kid_of(value), expected);
    assert_eq!(keyring.current_kid("acme", "alice").await.unwrap().as_deref(), Some(expected.as_str()));
    assert!(store.head(&paths::data_key(LOG, "acme", &expected), None).await.is_ok());
}

#[tokio::test]
async fn round_trip_of_every_column_with_nulls_kept_and_associated_data_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = open(&store, [1; 32]).await;
    let plain = vec![record("acme", "e1", "alice"), record("acme", "e2", "bob"), record("other", "e3", "alice")];
    let mut sealed = plain.clone();
    // An explicit subject for the second record.
    drop(keyring.encrypt_records(&mut sealed, &[None, Some("carol".into()), None], EncryptedColumns::ALL).await.unwrap());
    for record in &sealed {
        assert!(record.before.is_none(), "a null stays null");
        for index in (0..8).filter(|index| *index != 5) {
            assert!(is_value_format(column(record, index).unwrap()), "{:?}", column(record, index));
        }
    }
    assert_ne!(kid_of(sealed[0].actor_name.as_deref().unwrap()), kid_of(sealed[1].actor_name.as_deref().unwrap()));
    assert_eq!(keyring.current_kid("acme", "carol").await.unwrap().as_deref(), Some(kid_of(sealed[1].reason.as_deref().unwrap())));
    assert_eq!(decrypted(&keyring, &sealed).await, plain);
    // After a restart too.
    assert_eq!(decrypted(&open(&store, [1; 32]).await, &sealed).await, plain);

    // Only the configured columns are encrypted; every value is, one that looks like a
    // ciphertext too (it decrypts to what it was).
    let mut partial = vec![record("acme", "e4", "alice")];
    let columns = EncryptedColumns::parse(&["reason".to_string(), "source_ip".to_string()]).unwrap();
    drop(keyring.encrypt_records(&mut partial, &[None], columns).await.unwrap());
    let once = partial.clone();
    drop(keyring.encrypt_records(&mut partial, &[None], columns).await.unwrap());
    assert_ne!(partial, once);
    let mut twice = partial.clone();
    keyring.decrypt_records(&mut twice).await.unwrap();
    assert_eq!(twice, once);
    assert!(partial[0].reason.as_deref().unwrap().starts_with(VALUE_PREFIX));
    assert_eq!(partial[0].actor_name.as_deref(), Some("actor_name of e4 ✓"));

    // A value moved to another event, another column or another tenant never decrypts.
    let mut moved = sealed.clone();
    moved[0].id = "e9".into();
    moved[1].reason = sealed[1].actor_name.clone();
    moved[2].actor_name = sealed[0].actor_name.clone();
    let moved = decrypted(&keyring, &moved).await;
    assert!((0..8).filter(|index| *index != 5).all(|index| column(&moved[0], index) == Some(UNDECRYPTABLE)), "{:?}", moved[0]);
    assert_eq!(moved[1].reason.as_deref(), Some(UNDECRYPTABLE));
    assert_eq!(moved[1].actor_name, plain[1].actor_name);
    // Another tenant has no such kid: its key is missing there, which reads as erased.
    assert_eq!(moved[2].actor_name.as_deref(), Some(ERASED));
    // Altered or malformed values never show plaintext either.
    let mut altered = sealed[0].clone();
    let value = altered.reason.take().unwrap();
    altered.reason = Some(format!("{}{}", &value[..value.len() - 4], if value.ends_with("AAA=") { "BBB=" } else { "AAA=" }));
    altered.target_name = Some("auditum:enc:v1:nonsense".into());
    let altered = decrypted(&keyring, &[altered]).await;
    assert_eq!((altered[0].reason.as_deref(), altered[0].target_name.as_deref()), (Some(UNDECRYPTABLE), Some(UNDECRYPTABLE)));

    // decrypt_shared clones only what is encrypted.
    let shared = Arc::new(plain[0].clone());
    assert!(Arc::ptr_eq(&shared, &keyring.decrypt_shared(&shared).await.unwrap()));
    assert_eq!(*keyring.decrypt_shared(&Arc::new(sealed[0].clone())).await.unwrap(), plain[0]);
}

#[tokio::test]
async fn erase_subject_erases_every_generation_and_never_reuses_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = open(&store, [1; 32]).await;
    let plain = vec![record("acme", "e1", "alice"), record("acme", "e2", "bob")];
    let sealed = encrypted(&keyring, &plain).await;
    let first = kid_of(sealed[0].actor_name.as_deref().unwrap()).to_string();

    assert_eq!(keyring.erase_subject("acme", "alice").await.unwrap(), vec![first.clone()]);
    assert!(store.get(&paths::tombstone(LOG, "acme", &first), None).await.unwrap().is_empty());
    assert!(store.head(&paths::data_key(LOG, "acme", &first), None).await.is_err());
    for keyring in [&keyring, &open(&store, [1; 32]).await] {
        let read = decrypted(keyring, &sealed).await;
        assert!(all_erased(&read[0]), "{:?}", read[0]);
        assert_eq!(read[1], plain[1], "other subjects are untouched");
    }

    // The subject's next event takes generation 1.
    let later = encrypted(&keyring, &[record("acme", "e3", "alice")]).await;
    let second = kid_of(later[0].actor_name.as_deref().unwrap()).to_string();
    assert_ne!(second, first);
    assert_eq!(keyring.current_kid("acme", "alice").await.unwrap().as_deref(), Some(second.as_str()));
    assert_eq!(decrypted(&keyring, &later).await[0], record("acme", "e3", "alice"));
    assert!(all_erased(&decrypted(&keyring, &sealed).await[0]));
    // A fresh keyring (cold caches) also skips the erased generation.
    let restarted = open(&store, [1; 32]).await;
    let again = encrypted(&restarted, &[record("acme", "e4", "alice")]).await;
    assert_eq!(kid_of(again[0].actor_name.as_deref().unwrap()), second);

    // Erasing again erases generation 1; generation 0 is reported no more.
    assert_eq!(keyring.erase_subject("acme", "alice").await.unwrap(), vec![second.clone()]);
    assert!(all_erased(&decrypted(&keyring, &later).await[0]));
    assert!(all_erased(&decrypted(&open(&store, [1; 32]).await, &again).await[0]));
    assert!(keyring.erase_subject("acme", "nobody").await.unwrap().is_empty());
    assert!(keyring.erase_subject("unknown-tenant", "alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn erase_tenant_erases_all_its_keys_and_a_later_event_gets_a_new_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = open(&store, [1; 32]).await;
    let plain = vec![record("acme", "e1", "alice"), record("acme", "e2", "bob"), record("beta", "e3", "alice")];
    let sealed = encrypted(&keyring, &plain).await;
    let old_secret = store.get(&paths::tenant_secret(LOG, "acme"), None).await.unwrap();

    assert_eq!(keyring.erase_tenant("acme").await.unwrap(), 2);
    assert!(store.list(&paths::tenant_keys_prefix(LOG, "acme")).await.unwrap().is_empty());
    assert_eq!(store.list(&format!("{LOG}/erased/acme/")).await.unwrap().len(), 2);
    for keyring in [&keyring, &open(&store, [1; 32]).await] {
        let read = decrypted(keyring, &sealed).await;
        assert!(all_erased(&read[0]) && all_erased(&read[1]), "{read:?}");
        assert_eq!(read[2], plain[2]);
    }
    assert_eq!(keyring.current_kid("acme", "alice").await.unwrap(), None);
    let later = encrypted(&keyring, &[record("acme", "e4", "alice")]).await;
    assert_ne!(store.get(&paths::tenant_secret(LOG, "acme"), None).await.unwrap(), old_secret);
    assert_eq!(decrypted(&open(&store, [1; 32]).await, &later).await[0], record("acme", "e4", "alice"));
}

#[tokio::test]
async fn a_missing_key_without_tombstone_reads_erased() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = open(&store, [1; 32]).await;
    let sealed = encrypted(&keyring, &[record("acme", "e1", "alice")]).await;
    store.delete(&paths::data_key(LOG, "acme", kid_of(sealed[0].reason.as_deref().unwrap()))).await.unwrap();
    assert!(all_erased(&decrypted(&open(&store, [1; 32]).await, &sealed).await[0]));
}

#[tokio::test]
async fn open_with_the_wrong_kek_names_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    // An empty keyring opens under any KEK.
    Keyring::open(store.clone(), LOG, Kek::from_bytes([2; 32]), 8).await.unwrap();
    encrypted(&open(&store, [1; 32]).await, &[record("acme", "e1", "alice")]).await;
    let error = Keyring::open(store.clone(), LOG, Kek::from_bytes([2; 32]), 8).await.unwrap_err();
    assert!(matches!(error, Error::WrongKek { .. }), "{error}");
    let text = error.to_string();
    let (old, new) = (Kek::from_bytes([1; 32]).fingerprint(), Kek::from_bytes([2; 32]).fingerprint());
    assert!(text.contains("default/kek.json") && text.contains(&format!("wrapped under kek {old}; the configured kek is {new}")), "{text}");
}

#[tokio::test]
async fn rotate_kek_rewraps_the_keyring_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = open(&store, [1; 32]).await;
    let plain = vec![record("acme", "e1", "alice"), record("acme", "e2", "bob"), record("beta", "e3", "carol")];
    let sealed = encrypted(&keyring, &plain).await;
    keyring.erase_subject("acme", "bob").await.unwrap();
    let (old, new) = (Kek::from_bytes([1; 32]), Kek::from_bytes([2; 32]));

    let mut calls = Vec::new();
    let report = rotate_kek(store.as_ref(), LOG, &old, &new, |done, total| calls.push((done, total))).await.unwrap();
    // Two tenant secrets, two remaining data keys (bob's is erased).
    assert_eq!(report, crate::RotateReport { rewrapped: 4, already_new: 0 });
    assert_eq!(calls, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    let read = decrypted(&open(&store, [2; 32]).await, &sealed).await;
    assert_eq!((&read[0], &read[2]), (&plain[0], &plain[2]));
    assert!(all_erased(&read[1]));
    assert!(matches!(Keyring::open(store.clone(), LOG, Kek::from_bytes([1; 32]), 8).await, Err(Error::WrongKek { .. })));

    let again = rotate_kek(store.as_ref(), LOG, &old, &new, |_, _| {}).await.unwrap();
    assert_eq!(again, crate::RotateReport { rewrapped: 0, already_new: 4 });
    // A third KEK that wraps nothing is refused, naming the object.
    let error = rotate_kek(store.as_ref(), LOG, &Kek::from_bytes([3; 32]), &Kek::from_bytes([4; 32]), |_, _| {}).await.unwrap_err();
    assert!(matches!(error, Error::WrongKek { .. }) && error.to_string().contains("default/"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_events_of_a_subject_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = Arc::new(open(&store, [1; 32]).await);
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let keyring = keyring.clone();
            tokio::spawn(async move { encrypted(&keyring, &[record("acme", &format!("e{task}"), "alice")]).await })
        })
        .collect();
    let mut kids = std::collections::BTreeSet::new();
    for task in tasks {
        kids.insert(kid_of(task.await.unwrap()[0].reason.as_deref().unwrap()).to_string());
    }
    assert_eq!(kids.len(), 1);
    assert_eq!(store.list(&paths::tenant_keys_prefix(LOG, "acme")).await.unwrap().len(), 1);
}

#[test]
fn keyring_is_shareable_and_its_futures_are_send() {
    fn shareable<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    shareable::<Keyring>();
    let dir = tempfile::tempdir().unwrap();
    let keyring = unreachable_keyring(&dir);
    let mut records = Vec::new();
    send(&keyring.encrypt_records(&mut records, &[], EncryptedColumns::ALL));
    send(&keyring.decrypt_records(&mut records));
    send(&keyring.erase_subject("a", "b"));
    send(&keyring.erase_tenant("a"));
}

fn unreachable_keyring(dir: &tempfile::TempDir) -> Keyring {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(open(&store(dir), [1; 32]))
}

#[test]
fn encrypted_columns_parse_names_the_bad_entry() {
    let columns = EncryptedColumns::parse(&["metadata".into(), "actor_name".into()]).unwrap();
    assert_eq!(columns.names(), ["actor_name", "metadata"]);
    assert!(columns.contains("metadata") && !columns.contains("reason") && !columns.contains("nope"));
    assert!(EncryptedColumns::default().is_empty());
    let error = EncryptedColumns::parse(&["actor_id".into()]).unwrap_err();
    assert!(error.contains("\"actor_id\"") && error.contains(&ENCRYPTABLE_COLUMNS.join(", ")), "{error}");
}

/// A warm batch of 1,000 events round-trips (its cost is measured by `cargo bench --bench erasure`).
#[tokio::test]
async fn a_warm_batch_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = open(&store(&dir), [1; 32]).await;
    let batch: Vec<EventRecord> = (0..1000).map(|index| record("acme", &format!("e{index}"), &format!("user{}", index % 10))).collect();
    encrypted(&keyring, &batch).await;
    let subjects = vec![None; batch.len()];
    let mut records = batch.clone();
    drop(keyring.encrypt_records(&mut records, &subjects, EncryptedColumns::ALL).await.unwrap());
    assert!(records.iter().all(|record| record.actor_name.as_deref().is_some_and(|value| value.starts_with(VALUE_PREFIX))));
    keyring.decrypt_records(&mut records).await.unwrap();
    assert_eq!(records, batch);
}

#[tokio::test]
async fn an_erasure_waits_for_the_appends_using_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let keyring = Arc::new(open(&store, [1; 32]).await);
    let mut records = vec![record("acme", "e1", "alice")];
    // An append holds its keys until its events are durable...
    let in_use = keyring.encrypt_records(&mut records, &[None], EncryptedColumns::ALL).await.unwrap();
    let erasing = tokio::spawn({
        let keyring = keyring.clone();
        async move { keyring.erase_subject("acme", "alice").await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!erasing.is_finished(), "the erasure waits while the key is in use");
    // ...then the erasure runs, and the next append of the subject gets a new key.
    drop(in_use);
    let erased = erasing.await.unwrap();
    assert_eq!(erased.len(), 1);
    let mut later = vec![record("acme", "e2", "alice")];
    drop(keyring.encrypt_records(&mut later, &[None], EncryptedColumns::ALL).await.unwrap());
    assert_ne!(kid_of(later[0].actor_name.as_deref().unwrap()), erased[0]);
    let mut both = vec![records[0].clone(), later[0].clone()];
    keyring.decrypt_records(&mut both).await.unwrap();
    assert_eq!(both[0].actor_name.as_deref(), Some(ERASED));
    assert_eq!(both[1].actor_name.as_deref(), Some("actor_name of e2 ✓"));
}

#[tokio::test]
async fn a_rotation_cut_off_half_way_stops_open_until_it_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let (old, new) = (Kek::from_bytes([1; 32]), Kek::from_bytes([2; 32]));
    encrypted(&open(&store, [1; 32]).await, &[record("acme", "e1", "alice"), record("globex", "e2", "bob")]).await;
    // The marker of a rotation that began and did not finish.
    let (_, etag) = crate::marker::read(store.as_ref(), LOG).await.unwrap().unwrap();
    let rotating = crate::marker::KekMarker { kek: old.fingerprint(), rotating_to: Some(new.fingerprint()) };
    crate::marker::write(store.as_ref(), LOG, &rotating, etag.as_deref()).await.unwrap();
    for kek in [[1; 32], [2; 32]] {
        let error = Keyring::open(store.clone(), LOG, Kek::from_bytes(kek), 8).await.unwrap_err();
        assert!(matches!(error, Error::RotationIncomplete { .. }) && error.to_string().contains("rotate-kek"), "{error}");
    }
    // Running it again finishes it; another KEK pair is refused meanwhile.
    let third = Kek::from_bytes([3; 32]);
    assert!(matches!(rotate_kek(store.as_ref(), LOG, &old, &third, |_, _| {}).await, Err(Error::RotationIncomplete { .. })));
    rotate_kek(store.as_ref(), LOG, &old, &new, |_, _| {}).await.unwrap();
    open(&store, [2; 32]).await;
    assert!(matches!(Keyring::open(store.clone(), LOG, old, 8).await, Err(Error::WrongKek { .. })));
}
