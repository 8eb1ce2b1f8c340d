//! Regressions for what a hostile test of main broke: each test here failed on main before the
//! fix it names.

use crate::common::*;
use auditum_engine::auth::Scope;
use auditum_proto::pb;
use auditum_server::config::Config;
use std::path::Path;
use std::time::Duration;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_data_dir_is_refused_naming_the_first_and_a_crashed_ones_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, url) = spawn_binary(dir.path(), &[]).await;
    let mut client = auditum_client::connect(&url).await.unwrap();
    client.append(request(vec![event("acme", "user.login", "a")])).await.unwrap();

    // The second process exits at once, naming the holder's pid; it never listened.
    let started = std::time::Instant::now();
    let data_dir = dir.path().display().to_string();
    let (stdout, stderr, ok) = run_binary(&["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--data-dir", &data_dir]);
    assert!(!ok, "a second server on {data_dir} must not start");
    assert!(!stdout.contains("listening"), "{stdout}");
    let pid = first.id().unwrap();
    assert!(stderr.contains("in use by another auditum process") && stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at once, not after a timeout");

    // kill -9 leaves the lock file behind; the next start takes it over and keeps every event.
    first.kill().await.unwrap();
    first.wait().await.unwrap();
    let (mut again, url) = spawn_binary(dir.path(), &[]).await;
    let mut client = auditum_client::connect(&url).await.unwrap();
    let second = client.append(request(vec![event("acme", "user.login", "b")])).await.unwrap().into_inner().results;
    assert_eq!(second[0].seq, 1, "the acknowledged seq 0 survived and was not reused");
    assert!(terminate(&mut again).await.success());
}

/// An archive with three sealed batches (three checkpoint notes), its store URL and verifier key.
async fn sealed_archive(dir: &Path) -> (String, String) {
    let (running, mut client) = start(test_config(dir)).await;
    let log = running.logs.by_name("default").unwrap().clone();
    for round in 0..3 {
        client.append(request(vec![event("acme", "user.login", &format!("u{round}"))])).await.unwrap();
        log.seal_now().await.unwrap();
    }
    let key = log.verifier_key();
    let url = log.store().url().to_string();
    running.stop().await.unwrap();
    (url, key)
}

fn verify(store: &str, key: &str, extra: &[&str]) -> (String, bool) {
    let mut args = vec!["verify", "--quiet", "--store", store, "--trusted-key", key];
    args.extend_from_slice(extra);
    let (stdout, stderr, ok) = run_binary(&args);
    (format!("{stdout}{stderr}"), ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_when_there_is_nothing_to_vouch_for_or_a_note_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = sealed_archive(dir.path()).await;
    let (output, ok) = verify(&store, &key, &[]);
    assert!(ok, "the intact archive verifies: {output}");

    // A misspelled log, and a store that does not exist, hold nothing: that is not "OK".
    let (output, ok) = verify(&store, &key, &["--log", "defualt"]);
    assert!(!ok && output.contains("empty"), "{output}");
    let missing_store = format!("file://{}/no-such-store", dir.path().display());
    let (output, ok) = verify(&missing_store, &key, &[]);
    assert!(!ok && output.contains("empty"), "{output}");
    let (output, ok) = verify(&missing_store, &key, &["--allow-empty"]);
    assert!(ok, "an empty log is accepted when asked for: {output}");

    // A deleted historical checkpoint note is reported.
    let root = store.strip_prefix("file://").unwrap();
    let note = Path::new(root).join("default/checkpoints/000000000002.note");
    std::fs::remove_file(&note).unwrap();
    let (output, ok) = verify(&store, &key, &[]);
    assert!(!ok && output.contains("default/checkpoints/000000000002.note") && output.contains("missing"), "{output}");

    // The ledger and every checkpoint wiped, the batches kept: batches nothing vouches for.
    for gone in ["default/ledger", "default/checkpoints"] {
        std::fs::remove_dir_all(Path::new(root).join(gone)).unwrap();
    }
    std::fs::remove_file(Path::new(root).join("default/checkpoint")).unwrap();
    let (output, ok) = verify(&store, &key, &[]);
    assert!(!ok && output.contains("3 batch objects") && output.contains("PROBLEM"), "{output}");
    let (output, ok) = verify(&store, &key, &["--allow-empty"]);
    assert!(!ok, "--allow-empty does not excuse batches without a ledger: {output}");
}

fn keyed_config(dir: &Path) -> Config {
    Config {
        api_keys: vec![key_config("writer", "*", &[Scope::Append]), key_config("acme", "acme", &[Scope::Proof, Scope::Query])],
        logs: vec![routed_log("initech-log", &["initech"])],
        ..test_config(dir)
    }
}

async fn proof_client(url: &str, id: &str) -> pb::proof_service_client::ProofServiceClient<auditum_client::AuthChannel> {
    pb::proof_service_client::ProofServiceClient::new(keyed_channel(url, id).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_seq_id_or_log_answers_exactly_like_one_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(keyed_config(dir.path())).await;
    let url = format!("http://{}", running.addr);
    let mut writer = pb::ingest_service_client::IngestServiceClient::new(keyed_channel(&url, "writer").await);
    let sealed = writer.append(request(vec![with_id(event("globex", "user.login", "g"), "globex-1")])).await.unwrap().into_inner();
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    let unsealed = writer.append(request(vec![event("globex", "user.login", "g")])).await.unwrap().into_inner();
    writer.append(request(vec![event("initech", "user.login", "i")])).await.unwrap();
    running.logs.by_name("initech-log").unwrap().seal_now().await.unwrap();

    let mut acme = proof_client(&url, "acme").await;
    let by_seq = |seq: u64| pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::Seq(seq)) };
    let nowhere = 1_000_000;
    let answers = [
        acme.get_event_proof(by_seq(sealed.results[0].seq)).await.unwrap_err(),
        acme.get_event_proof(by_seq(unsealed.results[0].seq)).await.unwrap_err(),
        acme.get_event_proof(by_seq(nowhere)).await.unwrap_err(),
    ];
    // The same code, and the same message but for the seq itself.
    let shapes: Vec<(Code, String)> = answers
        .iter()
        .zip([sealed.results[0].seq, unsealed.results[0].seq, nowhere])
        .map(|(status, seq)| (status.code(), status.message().replace(&seq.to_string(), "N")))
        .collect();
    assert!(shapes.iter().all(|shape| shape == &shapes[2]), "{shapes:?}");
    assert_eq!(shapes[2].0, Code::NotFound);
    assert!(answers.iter().all(|status| !status.message().contains("globex")), "{answers:?}");
    let by_id = |id: &str| pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::EventId(id.into())) };
    let foreign_id = acme.get_event_proof(by_id("globex-1")).await.unwrap_err();
    let no_id = acme.get_event_proof(by_id("no-such-id")).await.unwrap_err();
    assert_eq!(
        (foreign_id.code(), foreign_id.message().replace("globex-1", "X")),
        (no_id.code(), no_id.message().replace("no-such-id", "X"))
    );

    // Another tenant's log and a log that does not exist are one answer too.
    let other_log = acme.get_checkpoint(pb::GetCheckpointRequest { log: "initech-log".into() }).await.unwrap_err();
    let no_log = acme.get_checkpoint(pb::GetCheckpointRequest { log: "nosuch-log".into() }).await.unwrap_err();
    assert_eq!(
        (other_log.code(), other_log.message().replace("initech-log", "L")),
        (no_log.code(), no_log.message().replace("nosuch-log", "L"))
    );
    assert_eq!(no_log.code(), Code::NotFound);
    let consistency = |log: &str| pb::GetConsistencyProofRequest { log: log.into(), old_size: 1, new_size: 1 };
    assert_eq!(acme.get_consistency_proof(consistency("initech-log")).await.unwrap_err().code(), Code::NotFound);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_append_the_servers_own_auditum_actions() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    for action in ["auditum.query", "auditum.alert", "auditum.legal_hold.set", "auditum"] {
        let refused = client.append(request(vec![event("acme", "user.login", "a"), event("acme", action, "a")])).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{action}");
        assert!(refused.message().starts_with("events[1].action:") && refused.message().contains("reserved"), "{}", refused.message());
    }
    client.append(request(vec![event("acme", "auditumx.thing", "a")])).await.expect("only the auditum namespace is reserved");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_log_name_is_echoed_in_at_most_a_hundred_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(test_config(dir.path())).await;
    let url = format!("http://{}", running.addr);
    let mut proofs = pb::proof_service_client::ProofServiceClient::new(auditum_client::channel(&url, &Default::default()).await.unwrap());
    let name = "x".repeat(200_000);
    let status = proofs.get_checkpoint(pb::GetCheckpointRequest { log: name }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().len() < 250 && status.message().contains("200000 bytes"), "{}", status.message());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_two_to_the_53_are_stored_without_a_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    let mut big = event("acme", "payment.captured", "a");
    let value = |number: f64| prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(number)) };
    big.metadata = Some(prost_types::Struct {
        fields: [("big".to_string(), value(9_007_199_254_740_994.0)), ("small".to_string(), value(4411.0))].into_iter().collect(),
    });
    client.append(request(vec![big])).await.unwrap();
    let mut query = pb::query_service_client::QueryServiceClient::new(
        auditum_client::channel(&format!("http://{}", running.addr), &Default::default()).await.unwrap(),
    );
    let export = pb::ExportRequest {
        filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
        format: pb::ExportFormat::Jsonl as i32,
        include_unsealed: true,
        raw: false,
    };
    let mut stream = query.export(export).await.unwrap().into_inner();
    let mut text = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        if let Some(pb::export_response::Item::Chunk(chunk)) = message.item {
            text.extend_from_slice(&chunk);
        }
    }
    let line: serde_json::Value = serde_json::from_slice(text.split(|byte| *byte == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["metadata"], r#"{"big":9007199254740994,"small":4411}"#);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_the_signing_key_refuses_and_never_overwrites_the_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(test_config(dir.path())).await;
    running.stop().await.unwrap();
    let keys = dir.path().join("keys");
    let verifier_key = std::fs::read(keys.join("default.vkey")).unwrap();
    std::fs::remove_file(keys.join("default.key")).unwrap();
    let refused = auditum_server::start(test_config(dir.path())).await.err().expect("a start without the signing key is refused");
    assert!(refused.to_string().contains("default.vkey"), "{refused}");
    assert_eq!(std::fs::read(keys.join("default.vkey")).unwrap(), verifier_key, "the verifier key is untouched");
    assert!(!keys.join("default.key").exists(), "no new signing key was made");
}

#[test]
fn a_query_while_the_store_is_a_black_hole_answers_unavailable_naming_it_within_ten_seconds() {
    use crate::common::s3::{Moto, Proxy, runtime};
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("blackhole").await;
        let upstream: std::net::SocketAddr = moto.endpoint.trim_start_matches("http://").parse().unwrap();
        let proxy = Proxy::start(upstream).await;
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            store: Some("s3://blackhole/p".into()),
            s3_endpoint: Some(proxy.endpoint()),
            meta_audit: false,
            ..test_config(dir.path())
        };
        let (running, mut client) = start(config).await;
        client.append(request((0..50).map(|n| event("acme", "user.login", &format!("u{n}"))).collect())).await.unwrap();
        running.logs.by_name("default").unwrap().seal_now().await.unwrap();

        proxy.set_blackhole(true);
        let mut query = pb::query_service_client::QueryServiceClient::new(
            auditum_client::channel(&format!("http://{}", running.addr), &Default::default()).await.unwrap(),
        );
        let filter = pb::EventFilter { tenant_id: "acme".into(), actor_id: "u7".into(), ..Default::default() };
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            query.query(pb::QueryRequest { filter: Some(filter.clone()), page_size: 10, ..Default::default() }),
        )
        .await
        .expect("the query answers instead of hanging");
        let elapsed = started.elapsed();
        let status = outcome.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("s3://blackhole/p"), "names the store: {}", status.message());
        assert!(elapsed < Duration::from_secs(10), "answered after {elapsed:?}");

        // Once the store answers again, so does the query.
        proxy.set_blackhole(false);
        let found = query.query(pb::QueryRequest { filter: Some(filter), page_size: 10, ..Default::default() }).await.unwrap();
        assert_eq!(found.into_inner().events.len(), 1);
        running.stop().await.unwrap();
    });
}

/// A small tmpfs, unmounted when dropped (the test runs as root, as CI does).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root, as CI has");
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system under `dir` until a write fails for lack of space.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
            Err(error) => panic!("filling {}: {error}", path.display()),
        }
    }
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_disk_the_log_recovers_without_a_restart_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let _tmpfs = Tmpfs::mount(&data_dir, "4m");
    let store = format!("file://{}", dir.path().join("store").display());
    let args: Vec<String> =
        ["--store", &store, "--config", &dir.path().join("auditum.toml").display().to_string()].iter().map(|arg| arg.to_string()).collect();
    std::fs::write(dir.path().join("auditum.toml"), "wal_segment_bytes = 65536\nwal_max_bytes = 104857600\n").unwrap();
    let (mut child, url) = spawn_binary(&data_dir, &args).await;
    let mut client = auditum_client::connect(&url).await.unwrap();
    let padded = |n: usize| {
        let mut event = with_id(event("acme", "file.uploaded", "a"), &format!("e-{n}"));
        let text = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("x".repeat(2000))) };
        event.metadata = Some(prost_types::Struct { fields: [("note".to_string(), text)].into_iter().collect() });
        event
    };
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let results = client.append(request(vec![padded(n)])).await.unwrap().into_inner().results;
        acknowledged.push(results[0].seq);
    }

    // The disk fills up: appends are refused (never acknowledged), and health says so.
    fill(&data_dir.join("filler"));
    let mut refused = None;
    for n in 20..2000 {
        match client.append(request(vec![padded(n)])).await {
            Ok(response) => acknowledged.push(response.into_inner().results[0].seq),
            Err(status) => {
                refused = Some((n, status));
                break;
            }
        }
    }
    let (failed_at, status) = refused.expect("a full disk refuses appends");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("write-ahead-log failure"), "{}", status.message());
    let health = "auditum.log.default";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while health_status(&url, health).await != 2 {
        assert!(std::time::Instant::now() < deadline, "health reports the failed log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client.append(request(vec![padded(failed_at)])).await.is_err(), "still refused while the disk is full");

    // Space comes back: the same process accepts appends again, with the next seq.
    std::fs::remove_file(data_dir.join("filler")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let resumed = loop {
        match client.append(request(vec![padded(failed_at)])).await {
            Ok(response) => break response.into_inner().results[0].clone(),
            Err(status) => {
                assert!(std::time::Instant::now() < deadline, "no recovery without a restart: {status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(!resumed.duplicate, "the refused event was never acknowledged, so it is appended now");
    assert_eq!(resumed.seq, acknowledged.len() as u64, "seqs stay dense: nothing of the failed write survived");
    acknowledged.push(resumed.seq);
    while health_status(&url, health).await != 1 {
        assert!(std::time::Instant::now() < deadline, "health reports the log serving again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And a restart replays exactly what was acknowledged.
    assert!(terminate(&mut child).await.success());
    let (mut child, url) = spawn_binary(&data_dir, &args).await;
    let mut query = pb::query_service_client::QueryServiceClient::new(auditum_client::channel(&url, &Default::default()).await.unwrap());
    let filter = pb::EventFilter { tenant_id: "acme".into(), actions: vec!["file.uploaded".into()], ..Default::default() };
    let page = query.query(pb::QueryRequest { filter: Some(filter), page_size: 1000, ..Default::default() }).await.unwrap().into_inner();
    let mut seqs: Vec<u64> = page.events.iter().map(|stored| stored.seq).collect();
    seqs.sort();
    assert_eq!(seqs, acknowledged, "every acknowledged event, once");
    assert!(terminate(&mut child).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_pages_are_bounded_by_bytes_so_a_default_4_mib_client_reads_large_events() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(Config { meta_audit: false, ..test_config(dir.path()) }).await;
    let heavy = |n: usize| {
        let mut event = with_id(event("acme", "document.exported", "a"), &format!("heavy-{n}"));
        let text = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(format!("{n:06}").repeat(10_000))) };
        event.metadata = Some(prost_types::Struct { fields: [("body".to_string(), text)].into_iter().collect() });
        event
    };
    for chunk in (0..300).collect::<Vec<_>>().chunks(50) {
        client.append(request(chunk.iter().map(|n| heavy(*n)).collect())).await.unwrap();
    }
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    client.append(request((300..320).map(heavy).collect())).await.unwrap();

    // tonic's default decoding limit, 4 MiB, as most gRPC clients have.
    let channel = auditum_client::channel(&format!("http://{}", running.addr), &Default::default()).await.unwrap();
    let mut query = pb::query_service_client::QueryServiceClient::new(channel);
    let filter = pb::EventFilter { tenant_id: "acme".into(), ..Default::default() };
    let (mut token, mut seen, mut pages) = (String::new(), Vec::new(), 0);
    loop {
        let request = pb::QueryRequest { filter: Some(filter.clone()), page_size: 1000, page_token: token.clone(), descending: false };
        let page = query.query(request).await.expect("a page fits a 4 MiB client").into_inner();
        assert!(page.encoded_len() <= 4 * 1024 * 1024, "page of {} bytes", page.encoded_len());
        pages += 1;
        seen.extend(page.events.iter().map(|stored| stored.event.as_ref().unwrap().id.clone()));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(pages > 1, "the byte bound cut the pages");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 320, "paging by bytes loses and repeats nothing, sealed and unsealed");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_beyond_the_decoders_limit_is_answered_with_the_4_mib_call_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(test_config(dir.path())).await;
    let channel = auditum_client::channel(&format!("http://{}", running.addr), &Default::default()).await.unwrap();
    let mut client = pb::ingest_service_client::IngestServiceClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    let big = |n: usize| {
        let mut event = event("acme", "bulk.upload", "a");
        let text = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(format!("{n:04}").repeat(15_000))) };
        event.metadata = Some(prost_types::Struct { fields: [("blob".to_string(), text)].into_iter().collect() });
        event
    };
    let status = client.append(request((0..160).map(big).collect())).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("request: encoded size ") && status.message().ends_with("exceeds the limit of 4194304 bytes"),
        "{}",
        status.message()
    );
    running.stop().await.unwrap();
}

/// Every event of tenant acme with action `outage.*`, by seq.
async fn outage_events(url: &str) -> Result<Vec<(u64, String)>, tonic::Status> {
    let channel = auditum_client::channel(url, &Default::default()).await.unwrap();
    let mut query = pb::query_service_client::QueryServiceClient::new(channel);
    let filter = pb::EventFilter { tenant_id: "acme".into(), actions: vec!["outage.*".into()], ..Default::default() };
    let page = query.query(pb::QueryRequest { filter: Some(filter), page_size: 1000, ..Default::default() }).await?.into_inner();
    let mut events: Vec<(u64, String)> = page.events.iter().map(|stored| (stored.seq, stored.event.as_ref().unwrap().id.clone())).collect();
    events.sort();
    Ok(events)
}

async fn wait_for_health(url: &str, wanted: i32, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    let status = || async {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap();
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: "auditum.log.default".into() };
        // Not registered yet right after start: the watcher reports within 250 ms.
        client.check(request).await.map(|response| response.into_inner().status).unwrap_or(0)
    };
    while status().await != wanted {
        assert!(std::time::Instant::now() < deadline, "auditum.log.default never reported {wanted}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_start_while_the_store_refuses_or_never_answers_takes_appends_and_recovers_losing_nothing() {
    use crate::common::s3::{Moto, Proxy, runtime, serve_args};
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("startup-outage").await;
        let upstream: std::net::SocketAddr = moto.endpoint.trim_start_matches("http://").parse().unwrap();
        let proxy = Proxy::start(upstream).await;
        let dir = tempfile::tempdir().unwrap();
        let args = serve_args("s3://startup-outage/p", &proxy.endpoint(), "1s");
        let (mut child, url) = spawn_binary(dir.path(), &args).await;
        let mut client = auditum_client::connect(&url).await.unwrap();
        let mut expected = Vec::new();
        for n in 0..5 {
            let id = format!("before-{n}");
            let result = client.append(request(vec![with_id(event("acme", "outage.before", "a"), &id)])).await.unwrap().into_inner();
            expected.push((result.results[0].seq, id));
        }
        assert!(terminate(&mut child).await.success(), "a clean stop seals what is open");

        for (round, blackhole) in [(0, false), (1, true)] {
            // The store refuses connections (round 0) or accepts them and never answers (round 1).
            if blackhole {
                proxy.set_blackhole(true)
            } else {
                proxy.set_down(true)
            }
            let started = std::time::Instant::now();
            let (mut child, url) = spawn_binary(dir.path(), &args).await;
            assert!(started.elapsed() < Duration::from_secs(40), "serve started within the store's timeouts");
            wait_for_health(&url, 2, Duration::from_secs(5)).await;
            let mut client = auditum_client::connect(&url).await.unwrap();
            for n in 0..3 {
                let id = format!("during-{round}-{n}");
                let result = client.append(request(vec![with_id(event("acme", "outage.during", "a"), &id)])).await.unwrap().into_inner();
                let last = expected.last().map(|(seq, _)| *seq).unwrap_or_default();
                assert!(result.results[0].seq > last && !result.results[0].duplicate, "seqs continue from the wal");
                expected.push((result.results[0].seq, id));
            }
            let refused = outage_events(&url).await.unwrap_err();
            assert_eq!(refused.code(), Code::Unavailable, "reads wait for the store: {refused:?}");

            // The store comes back: the start completes by itself, with nothing lost or doubled.
            if blackhole {
                proxy.set_blackhole(false)
            } else {
                proxy.set_down(false)
            }
            wait_for_health(&url, 1, Duration::from_secs(30)).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                match outage_events(&url).await {
                    Ok(events) if events == expected => break,
                    outcome => assert!(std::time::Instant::now() < deadline, "round {round}: {outcome:?} != {expected:?}"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(terminate(&mut child).await.success());
        }
        let (_, stdout, ok) = {
            let key = std::fs::read_to_string(dir.path().join("keys/default.vkey")).unwrap();
            let s3 = moto.endpoint.clone();
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
                .args(["verify", "--quiet", "--store", "s3://startup-outage/p", "--trusted-key", key.trim(), "--s3-endpoint", &s3])
                .output()
                .unwrap();
            (String::new(), String::from_utf8_lossy(&output.stdout).to_string(), output.status.success())
        };
        assert!(ok, "the archive verifies after both outages: {stdout}");
    });
}
