//! A log never writes on top of evidence it cannot vouch for: a second writer's ledger entry
//! fences it, and a truncated or tampered archive refuses to start.

use crate::common::*;
use auditum_engine::log;
use auditum_format::paths;
use std::os::unix::fs::PermissionsExt;

fn store_path(dir: &std::path::Path, key: &str) -> std::path::PathBuf {
    dir.join("store").join(key)
}

/// Writes `body` over a read-only object file, as a tamperer with file-system access would.
fn tamper(path: &std::path::Path, body: &[u8]) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(path, body).unwrap();
}

async fn two_sealed_batches(dir: &std::path::Path) {
    let (running, mut client) = start(test_config(dir)).await;
    for round in 0..2 {
        client.append(request(vec![event("acme", "user.login", &format!("u{round}"))])).await.unwrap();
        running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_entry_written_by_another_writer_fences_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    client.append(request(vec![event("acme", "user.login", "u1")])).await.unwrap();
    let log = running.logs.by_name("default").unwrap().clone();
    log.seal_now().await.unwrap();
    // Another process commits index 1 first.
    std::fs::write(store_path(dir.path(), &paths::ledger_entry_key("default", 1)), b"{\"another\":\"writer\"}").unwrap();
    client.append(request(vec![event("acme", "user.login", "u2")])).await.unwrap();
    let error = log.seal_now().await.unwrap_err();
    assert!(matches!(error, log::Error::Fenced { .. }), "{error}");
    assert!(matches!(log.status(), log::LogStatus::Fenced(_)));
    let status = client.append(request(vec![event("acme", "user.login", "u3")])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("fenced"), "{}", status.message());
    // The other writer's entry is untouched and no checkpoint for size 2 was written.
    assert_eq!(std::fs::read(store_path(dir.path(), &paths::ledger_entry_key("default", 1))).unwrap(), b"{\"another\":\"writer\"}");
    assert!(!store_path(dir.path(), &paths::checkpoint_note_key("default", 2)).exists());
    let _ = running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_ledger_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    two_sealed_batches(dir.path()).await;
    std::fs::remove_file(store_path(dir.path(), &paths::ledger_entry_key("default", 1))).unwrap();
    let error = auditum_server::start(test_config(dir.path())).await.err().expect("refuses to start");
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_ledger_entry_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    two_sealed_batches(dir.path()).await;
    let path = store_path(dir.path(), &paths::ledger_entry_key("default", 0));
    let text = std::fs::read_to_string(&path).unwrap().replace("\"count\":1", "\"count\":2");
    tamper(&path, text.as_bytes());
    let error = auditum_server::start(test_config(dir.path())).await.err().expect("refuses to start");
    assert!(error.to_string().contains("000000000001.json") || error.to_string().contains("000000000000.json"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_not_matching_the_ledger_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    two_sealed_batches(dir.path()).await;
    // A validly signed, older checkpoint put back as the head: a rollback.
    let older = std::fs::read(store_path(dir.path(), &paths::checkpoint_note_key("default", 1))).unwrap();
    tamper(&store_path(dir.path(), &paths::latest_checkpoint_key("default")), &older);
    // Rolling back the head alone is repaired forward (the ledger has more entries than it covers) …
    let (running, _client) = start(test_config(dir.path())).await;
    running.stop().await.unwrap();
    // … but a head signed by another key is refused.
    let other = auditum_format::checkpoint::Signer::generate("auditum/default").unwrap().sign_checkpoint(2, &[0; 32]);
    tamper(&store_path(dir.path(), &paths::latest_checkpoint_key("default")), other.as_bytes());
    let error = auditum_server::start(test_config(dir.path())).await.err().expect("refuses to start");
    assert!(error.to_string().contains("no valid signature"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_signing_another_root_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    two_sealed_batches(dir.path()).await;
    let key_text = std::fs::read_to_string(dir.path().join("keys/default.key")).unwrap();
    let signer = auditum_format::checkpoint::Signer::from_private_key_text(&key_text, std::path::Path::new("k")).unwrap();
    let forged = signer.sign_checkpoint(2, &[7; 32]);
    tamper(&store_path(dir.path(), &paths::latest_checkpoint_key("default")), forged.as_bytes());
    let error = auditum_server::start(test_config(dir.path())).await.err().expect("refuses to start");
    assert!(error.to_string().contains("signs a root other than the ledger's"), "{error}");
}
