//! Erasure by crypto-shredding (DESIGN §14): personal fields are encrypted under a key per data
//! subject before the WAL; every read path decrypts; erasing a subject (or a tenant) destroys its
//! keys, so its fields read "[erased]" everywhere while `verify` and proofs still pass.

use crate::common::s3::{Moto, runtime};
use crate::common::*;
use auditum_proto::pb;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use auditum_server::config::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every encryptable column.
const ENCRYPTED: [&str; 8] = ["actor_name", "target_name", "reason", "source_ip", "user_agent", "before", "after", "metadata"];
const ERASED: &str = "[erased]";

/// The config of a server whose every log encrypts all eight fields, with its keyring and KEK
/// under `dir`, written to `dir/auditum.toml` too (for the CLI); returns both.
fn encrypted_config(dir: &Path, kek: &Path) -> (Config, PathBuf) {
    let text = format!(
        "data_dir = {:?}\nencrypt_fields = {:?}\nkeyring = \"file://{}\"\nkek_file = {:?}\nseal_interval = \"48000h\"\nshutdown_seal_timeout = \"10s\"\n",
        dir.display().to_string(),
        ENCRYPTED,
        dir.join("keyring").display(),
        kek.display().to_string(),
    );
    let path = dir.join("auditum.toml");
    std::fs::write(&path, text).unwrap();
    let mut config = Config::from_file(&path).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    // Not the default 8080, which tests running side by side would share.
    config.http_listen = None;
    (config, path)
}

fn new_kek(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    auditum_keyring::Kek::write_new_file(&path).unwrap();
    path
}

/// A plaintext value that is easy to find in bytes: `PLAIN-<field>-<subject>-<n>`.
fn plain(field: &str, subject: &str, n: usize) -> String {
    format!("PLAIN-{field}-{subject}-{n}")
}

fn text_value(text: String) -> prost_types::Value {
    prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(text)) }
}

fn object(key: &str, text: String) -> prost_types::Struct {
    prost_types::Struct { fields: [(key.to_string(), text_value(text))].into_iter().collect() }
}

/// An event of `actor` about `subject` (None: the actor) with every encryptable field set.
fn personal(tenant: &str, actor: &str, subject: Option<&str>, n: usize) -> pb::AuditEvent {
    let who = subject.unwrap_or(actor);
    let mut event = event(tenant, "document.shared", actor);
    event.id = format!("{tenant}-{who}-{n}");
    event.subject_id = subject.unwrap_or_default().to_string();
    event.actor.as_mut().unwrap().name = plain("actor_name", who, n);
    event.target = Some(pb::Target { r#type: "document".into(), id: format!("doc-{n}"), name: plain("target_name", who, n) });
    event.outcome.as_mut().unwrap().reason = plain("reason", who, n);
    event.context = Some(pb::Context {
        source_ip: format!("203.0.113.{}", 10 + n),
        user_agent: plain("user_agent", who, n),
        request_id: format!("req-{n}"),
        ..Default::default()
    });
    event.before = Some(object("email", plain("before", who, n)));
    event.after = Some(object("email", plain("after", who, n)));
    event.metadata = Some(object("note", plain("metadata", who, n)));
    event
}

/// The eight encryptable values of a stored event, in [`ENCRYPTED`] order.
fn personal_values(stored: &pb::StoredEvent) -> Vec<String> {
    let event = stored.event.as_ref().unwrap();
    let target = event.target.clone().unwrap_or_default();
    let outcome = event.outcome.clone().unwrap_or_default();
    let context = event.context.clone().unwrap_or_default();
    let json = |value: &Option<prost_types::Struct>| {
        value
            .as_ref()
            .map(|value| value.fields.iter().map(|(key, field)| format!("{key}={:?}", field.kind)).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    vec![
        event.actor.as_ref().unwrap().name.clone(),
        target.name,
        outcome.reason,
        context.source_ip,
        context.user_agent,
        json(&event.before),
        json(&event.after),
        json(&event.metadata),
    ]
}

/// Whether every encrypted field of `stored` reads "[erased]" (a JSON column comes back as the
/// Struct `{"[erased]": true}`).
fn all_erased(stored: &pb::StoredEvent) -> bool {
    let values = personal_values(stored);
    values[..5].iter().all(|value| value == ERASED) && values[5..].iter().all(|value| value.starts_with(ERASED))
}

/// Whether `stored` shows the plaintext it was appended with.
fn shows_plaintext(stored: &pb::StoredEvent, who: &str, n: usize) -> bool {
    let values = personal_values(stored);
    values[0] == plain("actor_name", who, n)
        && values[1] == plain("target_name", who, n)
        && values[2] == plain("reason", who, n)
        && values[3] == format!("203.0.113.{}", 10 + n)
        && values[4] == plain("user_agent", who, n)
        && values[5].contains(&plain("before", who, n))
        && values[6].contains(&plain("after", who, n))
        && values[7].contains(&plain("metadata", who, n))
}

fn by_id<'a>(events: &'a [pb::StoredEvent], id: &str) -> &'a pb::StoredEvent {
    events.iter().find(|stored| stored.event.as_ref().unwrap().id == id).unwrap_or_else(|| panic!("no event {id}"))
}

/// The export of `tenant` as JSONL text (`raw`: stored values).
async fn export_jsonl(url: &str, tenant: &str, raw: bool) -> String {
    let channel = auditum_client::channel(url, &Default::default()).await.unwrap();
    let mut client = QueryServiceClient::new(channel);
    let request = pb::ExportRequest {
        filter: Some(pb::EventFilter { tenant_id: tenant.into(), ..Default::default() }),
        format: pb::ExportFormat::Jsonl as i32,
        include_unsealed: true,
        raw,
    };
    let mut stream = client.export(request).await.unwrap().into_inner();
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        if let Some(pb::export_response::Item::Chunk(chunk)) = message.item {
            bytes.extend_from_slice(&chunk);
        }
    }
    String::from_utf8(bytes).unwrap()
}

/// The first `count` events of `tenant` through Subscribe from the beginning (meta-audit
/// events of the tenant excluded).
async fn subscribed(url: &str, tenant: &str, count: usize) -> Vec<pb::StoredEvent> {
    let channel = auditum_client::channel(url, &Default::default()).await.unwrap();
    let mut client = QueryServiceClient::new(channel);
    let request = pb::SubscribeRequest {
        filter: Some(pb::EventFilter { tenant_id: tenant.into(), ..Default::default() }),
        start: Some(pb::subscribe_request::Start::FromBeginning(true)),
    };
    let mut stream = client.subscribe(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while events.len() < count {
            let message = stream.message().await.unwrap().expect("the stream stays open");
            if let Some(pb::subscribe_response::Item::Event(stored)) = message.item
                && !stored.event.as_ref().unwrap().action.starts_with("auditum.")
            {
                events.push(stored);
            }
        }
    })
    .await
    .expect("subscribe delivers every event within 30s");
    events
}

fn verify_passes(dir: &Path, verifier_key: &str) {
    let store = format!("file://{}", dir.join("store").display());
    let (stdout, stderr, success) = run_binary(&["verify", "--store", &store, "--trusted-key", verifier_key]);
    assert!(success, "verify must pass: {stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_of_an_encrypted_field_reaches_the_wal_the_batches_the_ledger_or_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let kek = new_kek(dir.path(), "kek");
    let (config, _) = encrypted_config(dir.path(), &kek);
    let (running, mut client) = start(config).await;
    let url = format!("http://{}", running.addr);
    let log = running.logs.by_name("default").unwrap().clone();
    // Sealed batches, and events left in the WAL.
    client.append(request((0..20).map(|n| personal("acme", &format!("user-{}", n % 3), None, n)).collect())).await.unwrap();
    log.seal_now().await.unwrap();
    client.append(request((20..30).map(|n| personal("acme", "user-1", Some("patient-7"), n)).collect())).await.unwrap();

    // Reads give the plaintext back.
    let events = stored(&url, "acme").await;
    assert_eq!(events.len(), 30);
    assert!(shows_plaintext(by_id(&events, "acme-user-2-5"), "user-2", 5));
    assert!(shows_plaintext(by_id(&events, "acme-patient-7-25"), "patient-7", 25));

    // Not one byte of plaintext anywhere: the WAL, the ledger, checkpoints and keyring are
    // searched as bytes; batches (compressed Parquet) are decoded and every stored value read.
    let mut wal_bytes = 0;
    let mut batches = 0;
    for path in files_under(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        if path.extension().is_some_and(|extension| extension == "parquet") {
            batches += 1;
            for row in auditum_batch::read_batch(bytes.into()).unwrap() {
                let record = row.record;
                for (column, value) in [
                    ("actor_name", &record.actor_name),
                    ("target_name", &record.target_name),
                    ("reason", &record.reason),
                    ("source_ip", &record.source_ip),
                    ("user_agent", &record.user_agent),
                    ("before", &record.before),
                    ("after", &record.after),
                    ("metadata", &record.metadata),
                ] {
                    let value = value.as_deref().unwrap_or_default();
                    assert!(value.starts_with("auditum:enc:v1:"), "{column} of {} is stored as {value:?}", record.id);
                    assert!(!value.contains("PLAIN-") && !value.contains("203.0.113."), "{column}: {value}");
                }
                assert_eq!(record.action, "document.shared", "the other columns are stored as they came");
            }
            continue;
        }
        if path.components().any(|part| part.as_os_str() == "wal") {
            wal_bytes += bytes.len();
            // The search works: an unencrypted value of the WAL's events is found in it.
            if path.extension().is_some_and(|extension| extension == "wal") {
                assert!(contains(&bytes, b"document.shared"), "{} holds the events", path.display());
            }
        }
        for needle in [&b"PLAIN-"[..], b"203.0.113."] {
            assert!(!contains(&bytes, needle), "{} holds plaintext {:?}", path.display(), String::from_utf8_lossy(needle));
        }
    }
    assert!(batches >= 1 && wal_bytes > 0, "batches {batches}, wal bytes {wal_bytes}");
    running.stop().await.unwrap();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_subject_shreds_it_on_every_read_path_and_proofs_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let kek = new_kek(dir.path(), "kek");
    let (config, _) = encrypted_config(dir.path(), &kek);
    let (running, mut client) = start(config.clone()).await;
    let url = format!("http://{}", running.addr);
    let log = running.logs.by_name("default").unwrap().clone();
    let verifier_key = log.verifier_key();
    // ada: her own events, and events an admin logged about her (subject_id); bob: his own.
    let mut events: Vec<pb::AuditEvent> = (0..4).map(|n| personal("acme", "ada", None, n)).collect();
    events.extend((4..6).map(|n| personal("acme", "admin", Some("ada"), n)));
    events.extend((6..10).map(|n| personal("acme", "bob", None, n)));
    client.append(request(events)).await.unwrap();
    log.seal_now().await.unwrap();
    client.append(request(vec![personal("acme", "ada", None, 10), personal("acme", "bob", None, 11)])).await.unwrap();
    verify_passes(dir.path(), &verifier_key);

    // Filtering on an encrypted column cannot work: refused, naming the field.
    let mut query = QueryServiceClient::new(auditum_client::channel(&url, &Default::default()).await.unwrap());
    let filter = pb::EventFilter { tenant_id: "acme".into(), source_ip: "203.0.113.10".into(), ..Default::default() };
    let refused = query.query(pb::QueryRequest { filter: Some(filter.clone()), ..Default::default() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("filter.source_ip") && refused.message().contains("encrypted"), "{}", refused.message());
    let export = pb::ExportRequest { filter: Some(filter.clone()), format: pb::ExportFormat::Jsonl as i32, ..Default::default() };
    let refused = query.export(export).await.unwrap_err();
    assert!(refused.code() == tonic::Code::InvalidArgument && refused.message().contains("filter.source_ip"), "{refused:?}");
    let subscribe = pb::SubscribeRequest { filter: Some(filter), start: Some(pb::subscribe_request::Start::FromBeginning(true)) };
    let refused = query.subscribe(subscribe).await.unwrap_err();
    assert!(refused.code() == tonic::Code::InvalidArgument && refused.message().contains("filter.source_ip"), "{refused:?}");

    let (stdout, stderr, success) =
        run_binary(&["erase", "--server", &url, "--tenant", "acme", "--subject", "ada", "--reason", "gdpr request 4411"]);
    assert!(success && stdout.contains("erased 1 key"), "{stdout}{stderr}");

    let ada = ["acme-ada-0", "acme-ada-1", "acme-ada-2", "acme-ada-3", "acme-ada-4", "acme-ada-5", "acme-ada-10"];
    let bob = [(6, "acme-bob-6"), (7, "acme-bob-7"), (8, "acme-bob-8"), (9, "acme-bob-9"), (11, "acme-bob-11")];
    let check = |events: &[pb::StoredEvent], path: &str| {
        for id in ada {
            assert!(all_erased(by_id(events, id)), "{path}: {id} reads {:?}", personal_values(by_id(events, id)));
        }
        for (n, id) in bob {
            assert!(shows_plaintext(by_id(events, id), "bob", n), "{path}: {id} reads {:?}", personal_values(by_id(events, id)));
        }
    };
    // Query.
    check(&stored(&url, "acme").await, "query");
    // Subscribe.
    check(&subscribed(&url, "acme", 12).await, "subscribe");
    // Export: decrypted, but not for ada; raw: the stored ciphertext, as before.
    let exported = export_jsonl(&url, "acme", false).await;
    assert!(!exported.contains("PLAIN-actor_name-ada") && !exported.contains("PLAIN-before-ada"), "ada's plaintext is gone");
    assert!(exported.contains("PLAIN-actor_name-bob-6") && exported.contains("PLAIN-after-bob-11"), "bob's stays");
    assert!(exported.matches(ERASED).count() >= ada.len() * ENCRYPTED.len(), "{exported}");
    let raw = export_jsonl(&url, "acme", true).await;
    assert!(!raw.contains(ERASED) && !raw.contains("PLAIN-") && raw.contains("auditum:enc:v1:"));

    // The archive is unchanged: verify passes, and an erased event's proof verifies offline.
    log.seal_now().await.unwrap();
    verify_passes(dir.path(), &verifier_key);
    let seq = by_id(&stored(&url, "acme").await, "acme-ada-1").seq.to_string();
    let proof = dir.path().join("ada-proof.json");
    let (_, stderr, success) = run_binary(&["proof", "--server", &url, "--seq", &seq, "--out", proof.to_str().unwrap()]);
    assert!(success, "{stderr}");
    let saved = std::fs::read_to_string(&proof).unwrap();
    assert!(saved.contains("auditum:enc:v1:") && !saved.contains(ERASED), "a proof carries the stored values");
    let (stdout, _, success) = run_binary(&["verify-proof", proof.to_str().unwrap(), "--trusted-key", &verifier_key]);
    assert!(success && stdout.starts_with("OK"), "{stdout}");

    // The erasure is recorded, with its kid and reason but never the subject.
    let channel = auditum_client::channel(&url, &Default::default()).await.unwrap();
    let filter = pb::EventFilter { tenant_id: "acme".into(), actions: vec!["auditum.erasure".into()], ..Default::default() };
    let mut pager = auditum_client::query::Pager::new(channel, filter, false);
    let page = pager.next_page(10).await.unwrap().unwrap();
    assert_eq!(page.events.len(), 1);
    let metadata = format!("{:?}", page.events[0].event.as_ref().unwrap().metadata);
    assert!(metadata.contains("gdpr request 4411") && metadata.contains("subject"), "{metadata}");
    assert!(!metadata.contains("\"ada\""), "the subject id is not recorded: {metadata}");

    // After a restart the erasure holds, and a new event of ada gets a new key and reads fine.
    running.stop().await.unwrap();
    let (running, mut client) = start(config).await;
    let url = format!("http://{}", running.addr);
    client.append(request(vec![personal("acme", "ada", None, 20)])).await.unwrap();
    let events = stored(&url, "acme").await;
    for id in ada {
        assert!(all_erased(by_id(&events, id)), "after the restart {id} stays erased");
    }
    assert!(shows_plaintext(by_id(&events, "acme-ada-20"), "ada", 20), "{:?}", personal_values(by_id(&events, "acme-ada-20")));
    assert!(shows_plaintext(by_id(&events, "acme-bob-6"), "bob", 6));
    // Under a new key: the next generation's kid, not the erased one.
    let raw_lines: Vec<serde_json::Value> =
        export_jsonl(&url, "acme", true).await.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let kid_of = |id: &str| -> String {
        let line = raw_lines.iter().find(|line| line["id"] == id).unwrap_or_else(|| panic!("{id} in the raw export"));
        line["actor_name"].as_str().unwrap().split(':').nth(3).unwrap().to_string()
    };
    assert_eq!(kid_of("acme-ada-0"), kid_of("acme-ada-4"), "ada's events about her, by her or an admin, share her key");
    assert_ne!(kid_of("acme-ada-20"), kid_of("acme-ada-0"));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_tenant_shreds_all_of_it_and_nothing_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let kek = new_kek(dir.path(), "kek");
    let (mut config, _) = encrypted_config(dir.path(), &kek);
    // Access records off: an erasure is recorded all the same.
    config.meta_audit = false;
    let (running, mut client) = start(config).await;
    let url = format!("http://{}", running.addr);
    let mut events: Vec<pb::AuditEvent> = (0..6).map(|n| personal("acme", &format!("u{}", n % 3), None, n)).collect();
    events.extend((6..9).map(|n| personal("globex", "gina", None, n)));
    client.append(request(events)).await.unwrap();
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();

    let (stdout, stderr, success) = run_binary(&["erase", "--server", &url, "--tenant", "acme", "--all", "--reason", "contract ended"]);
    assert!(success && stdout.contains("3 data key"), "{stdout}{stderr}");
    for stored in stored(&url, "acme").await {
        assert!(all_erased(&stored), "{:?}", personal_values(&stored));
    }
    // The record of the erasure (written whatever meta_audit says) outlives it: the server's
    // own records keep their metadata readable.
    let channel = auditum_client::channel(&url, &Default::default()).await.unwrap();
    let filter = pb::EventFilter { tenant_id: "acme".into(), actions: vec!["auditum.erasure".into()], ..Default::default() };
    let page = auditum_client::query::Pager::new(channel, filter, false).next_page(10).await.unwrap().unwrap();
    let metadata = format!("{:?}", page.events[0].event.as_ref().unwrap().metadata);
    assert!(metadata.contains("contract ended") && metadata.contains("tenant"), "{metadata}");
    let globex = stored(&url, "globex").await;
    for n in 6..9 {
        assert!(shows_plaintext(by_id(&globex, &format!("globex-gina-{n}")), "gina", n));
    }
    // The tenant can log again: a new secret, new keys.
    client.append(request(vec![personal("acme", "u1", None, 30)])).await.unwrap();
    assert!(shows_plaintext(by_id(&stored(&url, "acme").await, "acme-u1-30"), "u1", 30));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_kek_stops_serve_before_anything_is_touched_and_rotation_rewraps_the_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let kek = new_kek(dir.path(), "kek");
    let (config, config_path) = encrypted_config(dir.path(), &kek);
    let (running, mut client) = start(config.clone()).await;
    let url = format!("http://{}", running.addr);
    client.append(request((0..4).map(|n| personal("acme", "ada", None, n)).collect())).await.unwrap();
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    client.append(request(vec![personal("acme", "ada", None, 4)])).await.unwrap();
    let _ = url;
    running.stop().await.unwrap();
    let snapshot = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        // The data directory's LOCK holds the pid of the last process that started: a process
        // lock, not data (the logs' own WAL locks are compared).
        let skipped = [dir.join("server.log"), dir.join("LOCK")];
        let mut all: Vec<_> = files_under(dir)
            .into_iter()
            .filter(|path| !skipped.contains(path))
            .map(|path| {
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect();
        all.sort();
        all
    };
    let before = snapshot(dir.path());
    let config_arg = config_path.to_str().unwrap();

    // The KEK file is missing: serve stops, naming it.
    std::fs::rename(&kek, dir.path().join("kek.away")).unwrap();
    let (_, stderr, success) = run_binary(&["serve", "--config", config_arg, "--listen", "127.0.0.1:0", "--http-listen", ""]);
    assert!(!success && stderr.contains("kek") && stderr.contains(kek.to_str().unwrap()), "{stderr}");
    // Another KEK: serve stops, naming the keyring object it cannot open.
    let other = new_kek(dir.path(), "other.kek");
    std::fs::rename(&other, &kek).unwrap();
    let (_, stderr, success) = run_binary(&["serve", "--config", config_arg, "--listen", "127.0.0.1:0", "--http-listen", ""]);
    assert!(!success && stderr.contains("default/kek.json") && stderr.contains("kek"), "{stderr}");
    std::fs::rename(dir.path().join("kek.away"), &kek).unwrap();
    let mut after = snapshot(dir.path());
    after.retain(|(path, _)| path.file_name() != Some("other.kek".as_ref()));
    let changed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(old, new)| old != new)
        .map(|(old, new)| (old.0.display().to_string(), new.0.display().to_string()))
        .collect();
    assert!(before.len() == after.len() && changed.is_empty(), "a refused start touches nothing: {changed:?}");

    // Rotation: every key re-wrapped under the new KEK; the archive untouched.
    let new = new_kek(dir.path(), "new.kek");
    let (stdout, stderr, success) = run_binary(&["keyring", "rotate-kek", "--config", config_arg, "--new-kek-file", new.to_str().unwrap()]);
    assert!(success && stdout.contains("2 keys re-wrapped"), "{stdout}{stderr}");
    let (stdout, _, success) = run_binary(&["keyring", "rotate-kek", "--config", config_arg, "--new-kek-file", new.to_str().unwrap()]);
    assert!(success && stdout.contains("0 keys re-wrapped, 2 already under the new kek"), "a second run has nothing to do: {stdout}");
    let archive = |snapshot: Vec<(PathBuf, Vec<u8>)>| -> Vec<(PathBuf, Vec<u8>)> {
        snapshot.into_iter().filter(|(path, _)| path.starts_with(dir.path().join("store"))).collect()
    };
    assert_eq!(archive(before), archive(snapshot(dir.path())), "rotation does not touch the archive");
    // The old KEK opens nothing any more; the new one everything.
    let (_, stderr, success) = run_binary(&["serve", "--config", config_arg, "--listen", "127.0.0.1:0", "--http-listen", ""]);
    assert!(!success && stderr.contains("kek"), "{stderr}");
    let mut rotated = config;
    rotated.kek_file = Some(new);
    let (running, _) = start(rotated).await;
    let url = format!("http://{}", running.addr);
    let events = stored(&url, "acme").await;
    for n in 0..5 {
        assert!(shows_plaintext(by_id(&events, &format!("acme-ada-{n}")), "ada", n));
    }
    running.stop().await.unwrap();
}

#[test]
fn a_keyring_on_a_versioned_or_locked_bucket_is_refused() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.versioned_bucket("keys").await;
        let dir = tempfile::tempdir().unwrap();
        let kek = new_kek(dir.path(), "kek");
        let (mut config, _) = encrypted_config(dir.path(), &kek);
        config.keyring = Some("s3://keys/auditum".into());
        config.s3_endpoint = Some(moto.endpoint.clone());
        config.s3_region = Some("us-east-1".into());
        let error = auditum_server::start(config.clone()).await.err().expect("refused").to_string();
        assert!(error.contains("versioning") && error.contains("keys"), "{error}");
        moto.locked_bucket("lockedkeys").await;
        config.keyring = Some("s3://lockedkeys/auditum".into());
        let error = auditum_server::start(config.clone()).await.err().expect("refused").to_string();
        assert!(error.contains("Object Lock") && error.contains("lockedkeys"), "{error}");
        assert!(!dir.path().join("wal").exists(), "nothing was started: {:?}", files_under(dir.path()));
        // A bucket without versioning is a keyring.
        moto.plain_bucket("plainkeys").await;
        config.keyring = Some("s3://plainkeys/auditum".into());
        let (running, mut client) = start(config).await;
        let url = format!("http://{}", running.addr);
        client.append(request(vec![personal("acme", "ada", None, 0)])).await.unwrap();
        assert!(shows_plaintext(by_id(&stored(&url, "acme").await, "acme-ada-0"), "ada", 0));
        let (stdout, stderr, success) = run_binary(&["erase", "--server", &url, "--tenant", "acme", "--subject", "ada", "--reason", "r"]);
        assert!(success, "{stdout}{stderr}");
        assert!(all_erased(by_id(&stored(&url, "acme").await, "acme-ada-0")));
        running.stop().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_deliver_plaintext_and_an_erased_subject_as_erased() {
    use crate::alerts::{Receiver, wait_for};
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let kek = new_kek(dir.path(), "kek");
    let (_, config_path) = encrypted_config(dir.path(), &kek);
    let receiver = Receiver::start().await;
    let delivery = format!(
        "\n[[sinks]]\nname = \"siem\"\nurl = \"{}\"\nformat = \"json\"\nsecret_env = \"SIEM_SECRET\"\n\n[[streams]]\nname = \"all\"\ntenant = \"acme\"\nactions = [\"document.*\"]\nsink = \"siem\"\n",
        receiver.url
    );
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(&delivery);
    std::fs::write(&config_path, text).unwrap();
    // The receiver refuses until ada is erased: what it then gets is read after the erasure.
    receiver.failing.store(true, Ordering::SeqCst);
    let args = ["--config".to_string(), config_path.display().to_string()];
    let (mut server, url, _) = spawn_binary_with_env(dir.path(), &args, &[("SIEM_SECRET", "s3cret")]).await;
    let mut client = auditum_client::connect(&url).await.unwrap();
    client.append(request(vec![personal("acme", "ada", None, 0), personal("acme", "bob", None, 1)])).await.unwrap();
    let (stdout, stderr, success) = run_binary(&["erase", "--server", &url, "--tenant", "acme", "--subject", "ada", "--reason", "r"]);
    assert!(success, "{stdout}{stderr}");
    receiver.failing.store(false, Ordering::SeqCst);
    wait_for("both events delivered", 30, || receiver.json_events().len() >= 2).await;
    let delivered = serde_json::to_string(&receiver.json_events()).unwrap();
    assert!(delivered.contains(&plain("actor_name", "bob", 1)) && delivered.contains(&plain("metadata", "bob", 1)), "{delivered}");
    assert!(!delivered.contains("PLAIN-actor_name-ada") && !delivered.contains("auditum:enc:"), "{delivered}");
    assert!(delivered.matches(ERASED).count() >= ENCRYPTED.len(), "ada's fields arrive erased: {delivered}");
    terminate(&mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_bound_to_another_tenant_learns_nothing_of_the_log_from_an_encrypted_filter() {
    use auditum_engine::auth::Scope;
    let dir = tempfile::tempdir().unwrap();
    let kek = new_kek(dir.path(), "kek");
    let (mut config, _) = encrypted_config(dir.path(), &kek);
    config.api_keys.push(key_config("acme-reader", "acme", &[Scope::Query]));
    config.api_keys.push(key_config("globex-reader", "globex", &[Scope::Query, Scope::Export]));
    let (running, _) = start(config).await;
    let url = format!("http://{}", running.addr);
    let filter = pb::EventFilter { tenant_id: "acme".into(), source_ip: "203.0.113.10".into(), ..Default::default() };
    let by_source_ip = |filter: pb::EventFilter| pb::SummarizeRequest {
        filter: Some(filter),
        group_by: vec![pb::SummaryDimension::SourceIp as i32],
        ..Default::default()
    };
    let unfiltered = pb::EventFilter { tenant_id: "acme".into(), ..Default::default() };

    // The tenant's own key is told why: the field is encrypted in the log.
    let mut own = QueryServiceClient::new(keyed_channel(&url, "acme-reader").await);
    let refused = own.query(pb::QueryRequest { filter: Some(filter.clone()), ..Default::default() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("encrypted in log default"), "{}", refused.message());
    let refused = own.summarize(by_source_ip(unfiltered.clone())).await.unwrap_err();
    assert!(refused.code() == tonic::Code::InvalidArgument && refused.message().contains("group_by"), "{refused:?}");

    // A key of another tenant is refused by the tenant binding, before anything about the log.
    let mut other = QueryServiceClient::new(keyed_channel(&url, "globex-reader").await);
    let refusals = [
        other.query(pb::QueryRequest { filter: Some(filter.clone()), ..Default::default() }).await.unwrap_err(),
        other
            .export(pb::ExportRequest { filter: Some(filter.clone()), format: pb::ExportFormat::Jsonl as i32, ..Default::default() })
            .await
            .unwrap_err(),
        other.summarize(by_source_ip(filter.clone())).await.unwrap_err(),
        other.summarize(by_source_ip(unfiltered)).await.unwrap_err(),
        other
            .subscribe(pb::SubscribeRequest { filter: Some(filter), start: Some(pb::subscribe_request::Start::FromBeginning(true)) })
            .await
            .unwrap_err(),
    ];
    for refused in refusals {
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("bound to tenant"), "{}", refused.message());
        assert!(!refused.message().contains("encrypted") && !refused.message().contains("default"), "{}", refused.message());
    }
    running.stop().await.unwrap();
}
