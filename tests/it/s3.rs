//! The S3 backend against a real S3-compatible server (moto_server on a loopback port): startup
//! checks, locked objects, fencing of a second writer, and outages through a real TCP proxy.

use crate::common;

use crate::common::s3::{Moto, Proxy, runtime};
use crate::common::*;
use auditum_format::checkpoint::Verifier;
use auditum_format::ledger::LedgerEntry;
use auditum_format::paths;
use auditum_proto::pb;
use auditum_server::config::Config;
use auditum_store::{self as store, ObjectStore, RetentionMode};
use auditum_verify as verify;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn s3_config(dir: &std::path::Path, moto_endpoint: &str, url: &str) -> Config {
    let mut config = test_config(dir);
    config.store = Some(url.to_string());
    config.s3_endpoint = Some(moto_endpoint.to_string());
    config.retention_mode = Some(RetentionMode::Compliance);
    config.retention_days = Some(1);
    config
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

#[test]
fn startup_refuses_a_bucket_that_cannot_hold_the_log() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.plain_bucket("unversioned").await;
        moto.versioned_bucket("unlocked").await;
        let dir = tempfile::tempdir().unwrap();
        let refusal = |url: &str| {
            let config = s3_config(dir.path(), &moto.endpoint, url);
            async move { auditum_server::start(config).await.err().expect("refuses to start").to_string() }
        };
        let message = refusal("s3://missing-bucket/a").await;
        assert!(message.contains("bucket missing-bucket does not exist"), "{message}");
        let message = refusal("s3://unversioned/a").await;
        assert!(message.contains("versioning is not enabled on bucket unversioned"), "{message}");
        let message = refusal("s3://unlocked/a").await;
        assert!(message.contains("Object Lock is not enabled on bucket unlocked"), "{message}");
        assert!(message.contains("--object-lock-enabled-for-bucket"), "says what to fix: {message}");

        // The binary exits non-zero with the same message.
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--store", "s3://unlocked/a", "--s3-endpoint", &moto.endpoint])
            .args(["--retention-mode", "compliance", "--retention-days", "30", "--data-dir"])
            .arg(dir.path().join("binary"))
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("Object Lock is not enabled on bucket unlocked"));
        // Without retention an unlocked (but versioned) bucket is accepted.
        let mut config = s3_config(dir.path(), &moto.endpoint, "s3://unlocked/b");
        config.retention_mode = None;
        config.retention_days = None;
        auditum_server::start(config).await.unwrap().stop().await.unwrap();
    });
}

#[test]
fn the_write_path_on_s3_locks_every_immutable_object_and_survives_restart() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("archive").await;
        let dir = tempfile::tempdir().unwrap();
        let url = "s3://archive/prod";
        let config = s3_config(dir.path(), &moto.endpoint, url);
        let (running, mut client) = start(config.clone()).await;
        for round in 0..2 {
            let events = ["acme", "globex", "initech"]
                .iter()
                .enumerate()
                .map(|(i, tenant)| with_id(event(tenant, "user.login", "u1"), &format!("r{round}-{i}")))
                .collect();
            client.append(request(events)).await.unwrap();
            running.logs.by_name("default").unwrap().seal_now().await.unwrap();
        }
        let verifier_key = running.logs.by_name("default").unwrap().verifier_key();
        running.stop().await.unwrap();

        let store = store::open(url, &moto.options()).await.unwrap();
        let entries = store.list(&paths::ledger_prefix("default")).await.unwrap();
        assert_eq!(entries.len(), 2);
        let retain_floor = chrono::Utc::now() + chrono::Duration::hours(23);
        for meta in &entries {
            let entry = LedgerEntry::parse(std::str::from_utf8(&store.get(&meta.key, None).await.unwrap()).unwrap()).unwrap();
            let version = entry.version.clone().expect("the ledger records the batch's version id");
            for (key, version) in [(entry.object.clone(), Some(version)), (meta.key.clone(), None)] {
                let head = store.head(&key, version.as_deref()).await.unwrap();
                let retention = head.retention.unwrap_or_else(|| panic!("{key} is locked"));
                assert_eq!(retention.mode, RetentionMode::Compliance, "{key}");
                assert!(retention.retain_until > retain_floor, "{key} retained for the configured day");
            }
        }
        // A sealed batch's locked version cannot be deleted, even by the bucket owner.
        let first = LedgerEntry::parse(std::str::from_utf8(&store.get(&entries[0].key, None).await.unwrap()).unwrap()).unwrap();
        let refused = moto
            .client()
            .await
            .delete_object()
            .bucket("archive")
            .key(format!("prod/{}", first.object))
            .version_id(first.version.clone().unwrap())
            .send()
            .await
            .expect_err("deleting a locked batch version is refused");
        assert_eq!(refused.raw_response().map(|response| response.status().as_u16()), Some(403));
        for size in 1..=2 {
            let head = store.head(&paths::checkpoint_note_key("default", size), None).await.unwrap();
            assert_eq!(head.retention.map(|retention| retention.mode), Some(RetentionMode::Compliance));
        }
        let report = verify::verify_log(store.as_ref(), "default", &Verifier::parse(&verifier_key).unwrap()).await.unwrap();
        assert!(report.ok() && report.entries == 2 && report.events == 6, "{report:?}");

        // Restart on the same bucket: ids are remembered, the sequence and the chain continue.
        let (running, mut client) = start(config).await;
        let again = client
            .append(request(vec![with_id(event("acme", "user.login", "u1"), "r0-0"), event("acme", "a", "u")]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((again.results[0].seq, again.results[0].duplicate), (0, true));
        assert_eq!((again.results[1].seq, again.results[1].duplicate), (6, false));
        running.logs.by_name("default").unwrap().seal_now().await.unwrap();
        running.stop().await.unwrap();
        let report = verify::verify_log(store.as_ref(), "default", &Verifier::parse(&verifier_key).unwrap()).await.unwrap();
        assert!(report.ok() && report.entries == 3 && report.events == 7, "{report:?}");
    });
}

/// Appends continuously through `url`, recording acknowledgements, until `stop`.
async fn append_continuously(
    url: String,
    tag: String,
    acknowledged: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    stop: Arc<AtomicBool>,
    refused_as_full: Arc<AtomicUsize>,
) -> Vec<tonic::Status> {
    let mut client = auditum_client::connect(&url).await.unwrap();
    let mut errors = Vec::new();
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let events: Vec<pb::AuditEvent> =
            (0..10).map(|i| with_id(event("acme", "user.login", "u"), &format!("{tag}-{}", next + i))).collect();
        next += 10;
        match client.append(request(events.clone())).await {
            Ok(response) => {
                let mut acknowledged = acknowledged.lock().unwrap();
                for (event, result) in events.iter().zip(response.into_inner().results) {
                    acknowledged.insert(event.id.clone(), result.seq);
                }
            }
            Err(status) => {
                if status.code() == tonic::Code::ResourceExhausted {
                    refused_as_full.fetch_add(1, Ordering::Relaxed);
                }
                errors.push(status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    errors
}

async fn archived_ids(store: &dyn ObjectStore) -> HashMap<String, Vec<u64>> {
    let mut archived: HashMap<String, Vec<u64>> = HashMap::new();
    for meta in store.list("default/ledger/").await.unwrap() {
        let entry = LedgerEntry::parse(std::str::from_utf8(&store.get(&meta.key, None).await.unwrap()).unwrap()).unwrap();
        for row in auditum_batch::read_batch(store.get(&entry.object, entry.version.as_deref()).await.unwrap()).unwrap() {
            archived.entry(row.record.id).or_default().push(row.record.seq.0);
        }
    }
    archived
}

#[test]
fn two_writers_on_one_log_end_with_one_chain_and_the_loser_fenced() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("shared-log").await;
        let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Misconfigured twins: same log, same signing key, separate WALs.
        let key = auditum_format::checkpoint::Signer::generate("auditum/default").unwrap();
        key.write_files(&first_dir.path().join("keys/default.key")).unwrap();
        key.write_files(&second_dir.path().join("keys/default.key")).unwrap();
        let args = common::s3::serve_args("s3://shared-log/x", &moto.endpoint, "200ms");
        let (mut first, first_url, first_metrics) = spawn_binary_with_metrics(first_dir.path(), &args).await;
        let (mut second, second_url, second_metrics) = spawn_binary_with_metrics(second_dir.path(), &args).await;
        let urls = [first_url.clone(), second_url.clone()];
        let metrics_urls = [first_metrics.unwrap(), second_metrics.unwrap()];
        let acknowledged: Arc<std::sync::Mutex<HashMap<String, u64>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writers = [(first_url, "first"), (second_url, "second")]
            .map(|(url, tag)| tokio::spawn(append_continuously(url, tag.to_string(), acknowledged.clone(), stop.clone(), Arc::default())));
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for writer in writers {
            errors.extend(writer.await.unwrap());
        }
        let fenced_errors =
            errors.iter().filter(|status| status.code() == tonic::Code::Unavailable && status.message().contains("fenced")).count();
        assert!(fenced_errors > 0, "the loser answers UNAVAILABLE naming the fence: {errors:?}");
        let logs = [first_dir.path(), second_dir.path()].map(|dir| std::fs::read_to_string(dir.join("server.log")).unwrap());
        let fenced: Vec<bool> = logs.iter().map(|log| log.contains("log fenced: another writer owns it")).collect();
        assert_eq!(fenced.iter().filter(|fenced| **fenced).count(), 1, "exactly one writer is fenced, with a clear log line");
        // The fence is reported by health and by a metric too.
        tokio::time::sleep(Duration::from_millis(600)).await;
        for (index, is_fenced) in fenced.iter().enumerate() {
            let health = health_status(&urls[index], "auditum.log.default").await;
            let expected = if *is_fenced {
                tonic_health::pb::health_check_response::ServingStatus::NotServing
            } else {
                tonic_health::pb::health_check_response::ServingStatus::Serving
            };
            assert_eq!(health, expected as i32, "health of writer {index}");
            let metrics = http_get(&metrics_urls[index]).await;
            let gauge = format!("auditum_log_fenced{{log=\"default\"}} {}", u8::from(*is_fenced));
            assert!(
                metrics.contains(&gauge) || (!is_fenced && !metrics.contains("auditum_log_fenced{")),
                "writer {index} metrics: {metrics}"
            );
        }
        let _ = terminate(&mut first).await;
        let _ = terminate(&mut second).await;

        let store = store::open("s3://shared-log/x", &moto.options()).await.unwrap();
        let report = verify::verify_log(store.as_ref(), "default", &key.verifier()).await.unwrap();
        assert!(report.ok(), "one chain that verifies: {:?}", report.problems);
        // Every event the winner acknowledged is in that chain exactly once.
        let winner = if fenced[0] { "second" } else { "first" };
        let archived = archived_ids(store.as_ref()).await;
        let acknowledged = acknowledged.lock().unwrap().clone();
        let winner_acks: Vec<_> = acknowledged.iter().filter(|(id, _)| id.starts_with(winner)).collect();
        assert!(!winner_acks.is_empty());
        for (id, seq) in winner_acks {
            assert_eq!(archived.get(id), Some(&vec![*seq]), "{id}");
        }
    });
}

/// The outage scenario: continuous appends through a proxy that goes down, then heals.
async fn outage(moto: &Moto, bucket: &str, arm_between_puts: bool) {
    moto.locked_bucket(bucket).await;
    let upstream: std::net::SocketAddr = moto.endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auditum.toml"), "wal_segment_bytes = 65536\nwal_max_bytes = 262144\n").unwrap();
    let url = format!("s3://{bucket}/p");
    let args = strings(&[
        "--config",
        &dir.path().join("auditum.toml").display().to_string(),
        "--seal-interval",
        "300ms",
        "--store",
        &url,
        "--s3-endpoint",
        &proxy.endpoint(),
        "--retention-mode",
        "governance",
        "--retention-days",
        "1",
    ]);
    let (mut child, server_url) = spawn_binary(dir.path(), &args).await;
    let acknowledged: Arc<std::sync::Mutex<HashMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let refused_as_full = Arc::new(AtomicUsize::new(0));
    let writer =
        tokio::spawn(append_continuously(server_url.clone(), "e".into(), acknowledged.clone(), stop.clone(), refused_as_full.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    if arm_between_puts {
        // Down right after the next batch put is answered: its ledger put cannot get through.
        proxy.arm_after(&format!("PUT /{bucket}/p/default/batches/"));
        for _ in 0..100 {
            if proxy.tripped() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(proxy.tripped(), "a batch put went through and the outage started");
    } else {
        proxy.set_down(true);
    }
    // Appends keep being acknowledged into the WAL, until its cap, and the retries show the backlog
    // in the log. Wait for both rather than a fixed time: a busy machine may take longer.
    let during_outage = acknowledged.lock().unwrap().len();
    let backlog_logged = || {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        log.contains("object store call failed, retrying") && log.contains("backlog_events")
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..600 {
        if refused_as_full.load(Ordering::Relaxed) > 0 && backlog_logged() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(acknowledged.lock().unwrap().len() > during_outage, "appends are acknowledged during the outage");
    assert!(refused_as_full.load(Ordering::Relaxed) > 0, "the WAL cap is reached during the outage");
    assert!(backlog_logged(), "the failing calls and the backlog are visible in the logs");
    let mut restarted = false;
    if arm_between_puts {
        // Crash while the ledger put is failing: the batch object is left as an orphan.
        child.kill().await.unwrap();
        stop.store(true, Ordering::Relaxed);
        let errors = writer.await.unwrap();
        let exhausted: Vec<_> = errors.iter().filter(|status| status.code() == tonic::Code::ResourceExhausted).collect();
        assert!(!exhausted.is_empty(), "a full WAL answers RESOURCE_EXHAUSTED: {errors:?}");
        assert!(exhausted[0].message().contains("wal_max_bytes"), "{}", exhausted[0].message());
        proxy.set_down(false);
        let (new_child, _) = spawn_binary(dir.path(), &args).await;
        child = new_child;
        restarted = true;
    } else {
        use tonic_health::pb::health_check_response::ServingStatus;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(health_status(&server_url, "auditum.log.default").await, ServingStatus::NotServing as i32, "a full WAL is NOT_SERVING");
        assert_eq!(health_status(&server_url, "").await, ServingStatus::Serving as i32, "the process itself stays alive");
        proxy.set_down(false);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            health_status(&server_url, "auditum.log.default").await,
            ServingStatus::Serving as i32,
            "serving again once the backlog sealed"
        );
        stop.store(true, Ordering::Relaxed);
        let errors = writer.await.unwrap();
        assert!(errors.iter().any(|status| status.code() == tonic::Code::ResourceExhausted), "the WAL cap was reached: {errors:?}");
        assert!(errors.iter().all(|status| status.code() == tonic::Code::ResourceExhausted), "only the cap refuses appends: {errors:?}");
    }
    let stopped = terminate(&mut child).await;
    assert!(stopped.success(), "{stopped:?}: {}", std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default());

    let store = store::open(&url, &moto.options()).await.unwrap();
    let verifier = Verifier::parse(&std::fs::read_to_string(dir.path().join("keys/default.vkey")).unwrap()).unwrap();
    let report = verify::verify_log(store.as_ref(), "default", &verifier).await.unwrap();
    assert!(report.ok(), "chain verifies after the outage: {:?}", report.problems);
    let archived = archived_ids(store.as_ref()).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 100);
    for (id, seq) in &acknowledged {
        assert_eq!(archived.get(id), Some(&vec![*seq]), "{id} acknowledged with seq {seq} is sealed exactly once");
    }
    if restarted {
        assert_eq!(report.warnings.len(), 1, "the orphan batch is reported: {:?}", report.warnings);
        assert!(report.warnings[0].contains("orphan batch"), "{:?}", report.warnings);
    }
}

#[test]
fn an_outage_loses_no_acknowledged_event_and_the_wal_cap_refuses_the_rest() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        outage(&moto, "outage-archive", false).await;
    });
}

#[test]
fn an_outage_between_the_batch_put_and_the_ledger_put_leaves_only_an_orphan() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        outage(&moto, "orphan-archive", true).await;
    });
}
