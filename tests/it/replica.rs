//! Beyond one machine (DESIGN §13, README "Scaling"): read-only nodes beside a writer on one
//! bucket serve what the writer sealed, verified; a forged or rolled-back checkpoint is never
//! served; writers sharded by log share a bucket, and a writer started on a log already owned
//! is fenced. Every process is the real binary, the bucket a moto server.

use crate::common::s3::{Moto, runtime, serve_args};
use crate::common::*;
use auditum_format::checkpoint::{Signer, Verifier};
use auditum_format::paths;
use auditum_format::proof;
use auditum_proto::pb;
use auditum_proto::pb::proof_service_client::ProofServiceClient;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use auditum_store as store;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

const SEAL_INTERVAL: Duration = Duration::from_millis(400);
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

/// A read-only node on `url`, pinned to the key in `vkey`, with no meta-audit (it cannot append).
async fn spawn_reader(moto: &Moto, url: &str, vkey: &std::path::Path, dir: &std::path::Path) -> (tokio::process::Child, String, String) {
    let args = strings(&[
        "--read-only",
        "--store",
        url,
        "--s3-endpoint",
        &moto.endpoint,
        "--trusted-key",
        &vkey.display().to_string(),
        "--follow-interval",
        &format!("{}ms", FOLLOW_INTERVAL.as_millis()),
    ]);
    let (child, url, metrics) = spawn_binary_with_env(dir, &args, &[("AUDITUM_META_AUDIT", "false")]).await;
    (child, url, metrics.unwrap())
}

async fn query_client(url: &str) -> QueryServiceClient<tonic::transport::Channel> {
    QueryServiceClient::new(tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap())
}

/// Every page of a query, in order (the common helper, on a fresh connection to `url`).
async fn query_url(url: &str, filter: pb::EventFilter, page_size: u32, descending: bool) -> Vec<pb::StoredEvent> {
    query_all(&mut query_client(url).await, &filter, descending, page_size).await.0
}

async fn checkpoint_of(url: &str) -> String {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    ProofServiceClient::new(channel)
        .get_checkpoint(pb::GetCheckpointRequest { log: String::new() })
        .await
        .map(|response| response.into_inner().checkpoint)
        .unwrap_or_default()
}

/// `auditum.log.default`'s health; Unknown until the server reports it.
async fn health(url: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    let request = tonic_health::pb::HealthCheckRequest { service: "auditum.log.default".into() };
    match tonic_health::pb::health_client::HealthClient::new(channel).check(request).await {
        Ok(response) => ServingStatus::try_from(response.into_inner().status).unwrap(),
        Err(_) => ServingStatus::Unknown,
    }
}

/// Waits (up to `limit`) until `check` holds; returns how long it took.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within {limit:?}");
}

fn random_event(rng: &mut rand::rngs::StdRng, base: i64, index: usize) -> pb::AuditEvent {
    let tenant = ["acme", "globex"][rng.gen_range(0..2)];
    let action = ["user.login", "user.logout", "doc.read", "doc.delete"][rng.gen_range(0..4)];
    let mut event = event(tenant, action, &format!("u{}", rng.gen_range(0..8)));
    event.id = format!("e-{index}");
    event.occurred_at = Some(timestamp(base + rng.gen_range(0..3_600_000_000i64)));
    if rng.gen_bool(0.3) {
        event.outcome = Some(pb::Outcome { result: pb::OutcomeResult::Failure as i32, ..Default::default() });
    }
    event
}

fn random_filter(rng: &mut rand::rngs::StdRng, base: i64) -> pb::EventFilter {
    let mut filter = pb::EventFilter { tenant_id: ["acme", "globex"][rng.gen_range(0..2)].into(), ..Default::default() };
    if rng.gen_bool(0.4) {
        filter.actor_id = format!("u{}", rng.gen_range(0..8));
    }
    if rng.gen_bool(0.4) {
        filter.actions = vec![["user.*", "doc.read", "doc.delete"][rng.gen_range(0..3)].into()];
    }
    if rng.gen_bool(0.3) {
        filter.outcome = pb::OutcomeResult::Failure as i32;
    }
    if rng.gen_bool(0.5) {
        let start = base + rng.gen_range(0..1_800_000_000i64);
        filter.start_time = Some(timestamp(start));
        filter.end_time = Some(timestamp(start + rng.gen_range(1..1_800_000_000i64)));
    }
    filter
}

#[test]
fn a_writer_and_two_readers_on_one_bucket_serve_the_same_verified_events() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("scale").await;
        let url = "s3://scale/prod";
        let writer_dir = tempfile::tempdir().unwrap();
        let seal = format!("{}ms", SEAL_INTERVAL.as_millis());
        let (mut writer, writer_url, _) =
            spawn_binary_with_env(writer_dir.path(), &serve_args(url, &moto.endpoint, &seal), &[("AUDITUM_META_AUDIT", "false")]).await;
        let vkey = writer_dir.path().join("keys/default.vkey");
        let reader_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let mut readers = Vec::new();
        for dir in &reader_dirs {
            readers.push(spawn_reader(&moto, url, &vkey, dir.path()).await);
        }
        let reader_urls: Vec<String> = readers.iter().map(|(_, url, _)| url.clone()).collect();

        let mut rng = rand::rngs::StdRng::seed_from_u64(20);
        let base = now_micros() - 7_200_000_000;
        let mut ingest = pb::ingest_service_client::IngestServiceClient::connect(writer_url.clone()).await.unwrap();
        let mut appended = 0;
        let mut last_seq = 0;
        for round in 0..6 {
            let events: Vec<pb::AuditEvent> = (0..200).map(|index| random_event(&mut rng, base, round * 200 + index)).collect();
            let response = ingest.append(request(events)).await.unwrap().into_inner();
            last_seq = response.results.iter().map(|result| result.seq).max().unwrap();
            appended += 200;
            if round % 2 == 1 {
                tokio::time::sleep(SEAL_INTERVAL).await;
            }
        }
        // The last acknowledged event becomes queryable on both readers within a seal interval
        // plus a follow interval (plus the seal itself: a Parquet encode and four PUTs to moto).
        // A node can prove an event exactly when it serves a checkpoint covering it.
        let acknowledged = Instant::now();
        let provable = |url: String| async move {
            let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
            let key = pb::get_event_proof_request::Key::Seq(last_seq);
            ProofServiceClient::new(channel).get_event_proof(pb::GetEventProofRequest { log: String::new(), key: Some(key) }).await.is_ok()
        };
        let sealed_after =
            eventually(Duration::from_secs(20), "the last event sealed on the writer", || provable(writer_url.clone())).await;
        let mut served_after = Duration::ZERO;
        for url in &reader_urls {
            eventually(Duration::from_secs(20), "the last event served by the reader", || provable(url.clone())).await;
            served_after = acknowledged.elapsed();
        }
        println!(
            "replica visibility: sealed on the writer {sealed_after:?} after the last ack, served by both readers after {served_after:?}"
        );
        let follow_lag = served_after.saturating_sub(sealed_after);
        assert!(
            follow_lag <= FOLLOW_INTERVAL + Duration::from_millis(500),
            "readers served the checkpoint {follow_lag:?} after the writer"
        );
        assert!(
            served_after <= SEAL_INTERVAL + FOLLOW_INTERVAL + Duration::from_millis(1500),
            "queryable {served_after:?} after the last ack"
        );
        for url in reader_urls.iter().chain([&writer_url]) {
            let mut total = 0;
            for tenant in ["acme", "globex"] {
                let events = query_url(url, pb::EventFilter { tenant_id: tenant.into(), ..Default::default() }, 1000, false).await;
                total += events.iter().filter(|stored| stored.sealed).count();
            }
            assert_eq!(total, appended, "every event is sealed and queryable on {url}");
        }

        // Every event is sealed now: readers answer exactly what the writer answers.
        for _ in 0..12 {
            let filter = random_filter(&mut rng, base);
            let page_size = rng.gen_range(40..400);
            let descending = rng.gen_bool(0.5);
            let expected = query_url(&writer_url, filter.clone(), page_size, descending).await;
            assert!(expected.iter().all(|stored| stored.sealed), "the writer's answer is all sealed");
            for url in &reader_urls {
                let answer = query_url(url, filter.clone(), page_size, descending).await;
                assert!(answer == expected, "reader {url} answers {filter:?} as the writer does");
            }
        }

        // Subscribe on a reader streams the sealed events in seq order, as on the writer.
        let acme = query_url(&writer_url, pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }, 1000, false).await;
        let mut expected_seqs: Vec<u64> = acme.iter().map(|stored| stored.seq).collect();
        expected_seqs.sort_unstable();
        let mut subscription = query_client(&reader_urls[0])
            .await
            .subscribe(pb::SubscribeRequest {
                filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
                start: Some(pb::subscribe_request::Start::FromBeginning(true)),
            })
            .await
            .unwrap()
            .into_inner();
        let mut streamed = Vec::new();
        while streamed.len() < expected_seqs.len() {
            let message = tokio::time::timeout(Duration::from_secs(10), subscription.message()).await.unwrap().unwrap().unwrap();
            if let Some(pb::subscribe_response::Item::Event(stored)) = message.item {
                assert!(stored.sealed);
                streamed.push(stored.seq);
            }
        }
        assert_eq!(streamed, expected_seqs, "a reader's subscription streams every sealed event once, in seq order");
        drop(subscription);

        // A proof from a reader verifies offline under the writer's key.
        let verifier = Verifier::parse(&std::fs::read_to_string(&vkey).unwrap()).unwrap();
        let channel = tonic::transport::Endpoint::from_shared(reader_urls[1].clone()).unwrap().connect().await.unwrap();
        let mut proofs = ProofServiceClient::new(channel);
        for seq in [0, 777, appended as u64 - 1] {
            let key = pb::get_event_proof_request::Key::Seq(seq);
            let text = proofs
                .get_event_proof(pb::GetEventProofRequest { log: String::new(), key: Some(key) })
                .await
                .unwrap()
                .into_inner()
                .proof_json;
            let verified = proof::verify(&text, &verifier).unwrap_or_else(|error| panic!("seq {seq}: {error}"));
            assert_eq!(verified.event.seq.0, seq);
        }

        // Without a key (development mode) nobody may send the server's own records.
        let mut forged = event("acme", "auditum.query", "someone");
        forged.context = Some(pb::Context { service: "auditum".into(), ..Default::default() });
        let refused = ingest.append(request(vec![forged])).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

        // Writes belong to the writer.
        let mut reader_ingest = pb::ingest_service_client::IngestServiceClient::connect(reader_urls[0].clone()).await.unwrap();
        let refused = reader_ingest.append(request(vec![event("acme", "user.login", "u1")])).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains("read-only"), "{}", refused.message());
        for url in &reader_urls {
            assert_eq!(health(url).await, ServingStatus::Serving);
            let ingest_health = health_status(url, "auditum.v1.IngestService").await;
            assert_eq!(ingest_health, ServingStatus::NotServing as i32, "a balancer sends appends elsewhere");
        }
        let metrics = http_get(&readers[0].2).await;
        assert!(metrics.contains("auditum_replica_staleness_seconds{log=\"default\"}"), "{metrics}");

        let _ = terminate(&mut writer).await;
        for (child, _, _) in &mut readers {
            assert!(terminate(child).await.success());
        }
    });
}

#[test]
fn a_forged_or_rolled_back_checkpoint_is_never_served() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("guarded").await;
        let url = "s3://guarded/p";
        let writer_dir = tempfile::tempdir().unwrap();
        let (mut writer, writer_url, _) =
            spawn_binary_with_env(writer_dir.path(), &serve_args(url, &moto.endpoint, "300ms"), &[("AUDITUM_META_AUDIT", "false")]).await;
        let vkey = writer_dir.path().join("keys/default.vkey");
        let mut ingest = pb::ingest_service_client::IngestServiceClient::connect(writer_url.clone()).await.unwrap();
        // Three batches, one per call (wait_for_seal answers once its events are committed):
        // checkpoints of size 1, 2 and 3. Then the writer is idle and writes no checkpoint.
        for batch in 0..3 {
            let events = (0..10).map(|index| with_id(event("acme", "user.login", "u1"), &format!("b{batch}-{index}"))).collect();
            let mut append = request(events);
            append.wait_for_seal = true;
            ingest.append(append).await.unwrap();
        }
        let reader_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let mut readers = Vec::new();
        for dir in &reader_dirs {
            readers.push(spawn_reader(&moto, url, &vkey, dir.path()).await);
        }
        let store = store::open(url, &moto.options()).await.unwrap();
        let latest_key = paths::latest_checkpoint_key("default");
        let valid = String::from_utf8(store.get(&latest_key, None).await.unwrap().to_vec()).unwrap();
        assert!(valid.contains("\n3\n"), "{valid}");
        for (_, reader, _) in &readers {
            eventually(Duration::from_secs(10), "the reader serves size 3", || async { checkpoint_of(reader).await == valid }).await;
            assert_eq!(stored_ids(reader, "acme").await.len(), 30);
        }

        let put = |body: String| {
            let store = store.clone();
            let key = latest_key.clone();
            async move {
                let etag = store.head(&key, None).await.unwrap().etag;
                store.put_if_match(&key, bytes::Bytes::from(body), etag.as_deref()).await.unwrap()
            }
        };
        let older = String::from_utf8(store.get(&paths::checkpoint_note_key("default", 2), None).await.unwrap().to_vec()).unwrap();
        let forger = Signer::generate("auditum/default").unwrap();
        let forged = forger.sign_checkpoint(4, &[7u8; 32]);
        // Validly signed by the writer's own key, yet wrong: what a stolen key or a buggy writer
        // could publish.
        let (writer_key, _) = Signer::load_or_generate(&writer_dir.path().join("keys/default.key"), "auditum/default").unwrap();
        let fork = writer_key.sign_checkpoint(3, &[9u8; 32]);
        let beyond = writer_key.sign_checkpoint(5, &[9u8; 32]);
        for (what, tampered) in [
            ("rolled back to size 2", older.clone()),
            ("signed by another key", forged),
            ("a fork: another root at the size served", fork),
            ("covering ledger entries that do not exist", beyond),
        ] {
            put(tampered).await;
            for (_, reader, metrics) in &readers {
                eventually(Duration::from_secs(10), what, || async { health(reader).await == ServingStatus::NotServing }).await;
                assert_eq!(checkpoint_of(reader).await, valid, "{what}: the last verified checkpoint is still the one served");
                assert_eq!(stored_ids(reader, "acme").await.len(), 30, "{what}: reads go on from the last verified state");
                let text = http_get(metrics).await;
                assert!(text.contains("auditum_replica_checkpoint_refused{log=\"default\"} 1"), "{what}: {text}");
            }
            for dir in &reader_dirs {
                let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
                assert!(log.contains("checkpoint refused") && log.contains("default/checkpoint"), "{what}: the log names the object");
            }
            // Recovery: the valid checkpoint is back.
            put(valid.clone()).await;
            for (_, reader, _) in &readers {
                eventually(Duration::from_secs(10), "serving again", || async { health(reader).await == ServingStatus::Serving }).await;
            }
        }

        // A reader started while the pointer is rolled back serves the newest signed note, not
        // the truncated history, and reports the pointer; one started while the pointer is gone
        // serves nothing rather than an empty archive.
        put(older.clone()).await;
        let late_dir = tempfile::tempdir().unwrap();
        let (mut late, late_url, _) = spawn_reader(&moto, url, &vkey, late_dir.path()).await;
        assert_eq!(checkpoint_of(&late_url).await, valid, "the newest note, size 3");
        assert_eq!(stored_ids(&late_url, "acme").await.len(), 30);
        eventually(Duration::from_secs(10), "the late reader reports the rolled-back pointer", || async {
            health(&late_url).await == ServingStatus::NotServing
        })
        .await;
        put(valid.clone()).await;
        store.delete(&latest_key).await.unwrap();
        let empty_dir = tempfile::tempdir().unwrap();
        let (mut blind, blind_url, _) = spawn_reader(&moto, url, &vkey, empty_dir.path()).await;
        eventually(Duration::from_secs(10), "a reader with no pointer reports it", || async {
            health(&blind_url).await == ServingStatus::NotServing
        })
        .await;
        let mut blind_query = query_client(&blind_url).await;
        let acme_page = pb::QueryRequest {
            filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
            page_size: 10,
            ..Default::default()
        };
        let refused = blind_query.query(acme_page).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains("no verified checkpoint"), "{}", refused.message());
        store.put_if_match(&latest_key, bytes::Bytes::from(valid.clone()), None).await.unwrap();
        for reader in [&late_url, &blind_url] {
            eventually(Duration::from_secs(10), "serving once the pointer is valid", || async {
                health(reader).await == ServingStatus::Serving
            })
            .await;
        }
        assert_eq!(stored_ids(&blind_url, "acme").await.len(), 30);
        let _ = terminate(&mut late).await;
        let _ = terminate(&mut blind).await;

        // The writer goes on (it re-reads the moved checkpoint and moves it forward): readers
        // follow to the new, valid state.
        let mut append = request((0..5).map(|index| with_id(event("acme", "user.login", "u2"), &format!("late-{index}"))).collect());
        append.wait_for_seal = true;
        ingest.append(append).await.unwrap();
        let newest = String::from_utf8(store.get(&latest_key, None).await.unwrap().to_vec()).unwrap();
        assert!(newest.contains("\n4\n"), "{newest}");
        for (_, reader, metrics) in &readers {
            eventually(Duration::from_secs(10), "the reader serves size 4", || async { checkpoint_of(reader).await == newest }).await;
            assert_eq!(stored_ids(reader, "acme").await.len(), 35);
            assert_eq!(health(reader).await, ServingStatus::Serving);
            assert!(http_get(metrics).await.contains("auditum_replica_checkpoint_refused{log=\"default\"} 0"));
        }
        let _ = terminate(&mut writer).await;
        for (child, _, _) in &mut readers {
            let _ = terminate(child).await;
        }
    });
}

#[test]
fn writers_sharded_by_log_share_a_bucket_and_a_third_on_an_owned_log_is_fenced() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("shards").await;
        let url = "s3://shards/all";
        let config = |dir: &std::path::Path, log: &str, tenant: &str| {
            let path = dir.join("auditum.toml");
            std::fs::write(
                &path,
                format!("default_log = false\nmeta_audit = false\n\n[[logs]]\nname = \"{log}\"\ntenants = [\"{tenant}\"]\n"),
            )
            .unwrap();
            path.display().to_string()
        };
        let args = |config: String, seal: &str| {
            let mut args = serve_args(url, &moto.endpoint, seal);
            args.extend(["--config".to_string(), config]);
            args
        };
        let (eu_dir, us_dir, twin_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut eu, eu_url) = spawn_binary(eu_dir.path(), &args(config(eu_dir.path(), "eu", "eu-corp"), "200ms")).await;
        let (mut us, us_url) = spawn_binary(us_dir.path(), &args(config(us_dir.path(), "us", "us-corp"), "200ms")).await;
        let mut eu_ingest = pb::ingest_service_client::IngestServiceClient::connect(eu_url.clone()).await.unwrap();
        let mut us_ingest = pb::ingest_service_client::IngestServiceClient::connect(us_url.clone()).await.unwrap();
        for index in 0..5 {
            // The last waits for its seal: eu's ledger must hold an entry before the third writer
            // starts, or under load that writer could seal first and fence eu instead.
            let mut eu_append = request(vec![with_id(event("eu-corp", "user.login", "u"), &format!("eu-{index}"))]);
            eu_append.wait_for_seal = index == 4;
            eu_ingest.append(eu_append).await.unwrap();
            us_ingest.append(request(vec![with_id(event("us-corp", "user.login", "u"), &format!("us-{index}"))])).await.unwrap();
        }
        // A tenant of another writer's log is refused with a precise status, never stored here.
        let misrouted = eu_ingest.append(request(vec![event("us-corp", "user.login", "u")])).await.unwrap_err();
        assert_eq!(misrouted.code(), tonic::Code::FailedPrecondition, "{misrouted:?}");
        assert!(misrouted.message().contains("us-corp"), "{}", misrouted.message());

        // A third writer, misconfigured with eu's log (and its key), while eu keeps sealing.
        let twin_config = config(twin_dir.path(), "eu", "eu-corp");
        std::fs::create_dir_all(twin_dir.path().join("keys")).unwrap();
        for file in ["eu.key", "eu.vkey"] {
            std::fs::copy(eu_dir.path().join("keys").join(file), twin_dir.path().join("keys").join(file)).unwrap();
        }
        let (mut twin, twin_url) = spawn_binary(twin_dir.path(), &args(twin_config, "5s")).await;
        let mut twin_ingest = pb::ingest_service_client::IngestServiceClient::connect(twin_url.clone()).await.unwrap();
        // Acknowledged into its WAL, or refused as fenced when eu sealed while it started (it then
        // finds the checkpoint ahead of the ledger it listed): either way never in eu's archive.
        if let Err(refused) = twin_ingest.append(request(vec![with_id(event("eu-corp", "user.login", "twin"), "twin-0")])).await {
            assert!(refused.code() == tonic::Code::Unavailable && refused.message().contains("fenced"), "{refused:?}");
        }
        // eu seals the ledger entry the third writer would take next before that writer's first
        // seal: whichever writer creates an entry first owns the log, and under load a third
        // writer sealing between eu's seals could otherwise win it and fence eu.
        let mut eu_append = request(vec![with_id(event("eu-corp", "user.login", "u"), "eu-5")]);
        eu_append.wait_for_seal = true;
        eu_ingest.append(eu_append).await.unwrap();
        let keep_sealing = tokio::spawn(async move {
            for index in 6..60 {
                eu_ingest.append(request(vec![with_id(event("eu-corp", "user.login", "u"), &format!("eu-{index}"))])).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let twin_log = twin_dir.path().join("server.log");
        eventually(Duration::from_secs(20), "the third writer is fenced", || async {
            std::fs::read_to_string(&twin_log).unwrap().contains("log fenced: another writer owns it")
        })
        .await;
        keep_sealing.await.unwrap();
        let status = ServingStatus::try_from(health_status(&twin_url, "auditum.log.eu").await).unwrap();
        assert_eq!(status, ServingStatus::NotServing, "the fenced writer reports it");
        let refused = twin_ingest.append(request(vec![event("eu-corp", "user.login", "twin")])).await.unwrap_err();
        assert!(refused.code() == tonic::Code::Unavailable && refused.message().contains("fenced"), "{refused:?}");
        assert_eq!(ServingStatus::try_from(health_status(&eu_url, "auditum.log.eu").await).unwrap(), ServingStatus::Serving);

        assert!(terminate(&mut eu).await.success());
        assert!(terminate(&mut us).await.success());
        let _ = terminate(&mut twin).await;
        // Each log verifies under its own writer's key, and holds its own tenant's events.
        let store = store::open(url, &moto.options()).await.unwrap();
        for (log, dir, tenant, count) in [("eu", &eu_dir, "eu-corp", 60), ("us", &us_dir, "us-corp", 5)] {
            let verifier = Verifier::parse(&std::fs::read_to_string(dir.path().join(format!("keys/{log}.vkey"))).unwrap()).unwrap();
            let report = auditum_verify::verify_log(store.as_ref(), log, &verifier).await.unwrap();
            assert!(report.ok(), "{log}: {:?}", report.problems);
            assert_eq!(report.events, count, "{log} holds every event its writer acknowledged");
            let mut ids = Vec::new();
            for entry in ledger_entries(store.as_ref(), log).await {
                for row in auditum_batch::read_batch(store.get(&entry.object, entry.version.as_deref()).await.unwrap()).unwrap() {
                    assert_eq!(row.record.tenant_id, tenant);
                    ids.push(row.record.id);
                }
            }
            assert!(!ids.iter().any(|id| id.starts_with("twin")), "{log}: the fenced writer's event is not in the chain");
        }
        assert!(store.list("default/").await.unwrap().is_empty(), "no process owns the default log");
    });
}

/// `[[api_keys]]` TOML lines for test keys (hashes only).
fn keys_toml(keys: &[(&str, &str)]) -> String {
    keys.iter()
        .map(|(id, scopes)| {
            format!(
                "[[api_keys]]\nid = {id:?}\nsecret_sha256 = \"{}\"\ntenant = \"*\"\nscopes = [{scopes}]\n\n",
                auditum_engine::auth::sha256_hex(&secret(id))
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_a_reader_are_recorded_on_the_writer_or_not_served() {
    let (writer_dir, reader_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_url = format!("file://{}", writer_dir.path().join("store").display());
    let writer_config = writer_dir.path().join("auditum.toml");
    let writer_keys = [("ops", "\"append\", \"query\", \"proof\""), ("reader-node", "\"meta_audit_forward\""), ("root", "\"admin\"")];
    std::fs::write(&writer_config, keys_toml(&writer_keys)).unwrap();
    let writer_args = strings(&["--config", &writer_config.display().to_string(), "--store", &store_url, "--seal-interval", "200ms"]);
    let (mut writer, writer_url) = spawn_binary(writer_dir.path(), &writer_args).await;
    let ops = keyed_channel(&writer_url, "ops").await;
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(ops.clone());
    let mut append = request(vec![with_id(event("acme", "user.login", "u1"), "first")]);
    append.wait_for_seal = true;
    ingest.append(append).await.unwrap();

    let reader_config = reader_dir.path().join("auditum.toml");
    let vkey = writer_dir.path().join("keys/default.vkey");
    let text = format!(
        "read_only = true\ntrusted_key = {:?}\nfollow_interval = \"100ms\"\nstore = {store_url:?}\nmeta_audit_writer = {writer_url:?}\nmeta_audit_writer_key_env = \"FORWARD_KEY\"\n\n{}",
        vkey.display().to_string(),
        keys_toml(&[("ops", "\"query\", \"proof\"")])
    );
    std::fs::write(&reader_config, text).unwrap();
    let forward_secret = secret("reader-node");
    let (mut reader, reader_url, _) = spawn_binary_with_env(
        reader_dir.path(),
        &strings(&["--config", &reader_config.display().to_string()]),
        &[("FORWARD_KEY", forward_secret.as_str()), ("HOSTNAME", "reader-7")],
    )
    .await;
    let mut reader_query = QueryServiceClient::new(keyed_channel(&reader_url, "ops").await);
    let filter = pb::EventFilter { tenant_id: "acme".into(), actor_id: "u1".into(), ..Default::default() };
    let query = || pb::QueryRequest { filter: Some(filter.clone()), page_size: 10, ..Default::default() };
    let answer = reader_query.query(query()).await.unwrap().into_inner();
    assert_eq!(answer.events.len(), 1);

    // The writer holds the record of that read: who asked, which node served it, which node's
    // key vouched for it.
    let writer_query = QueryServiceClient::new(ops.clone());
    let recorded = eventually(Duration::from_secs(10), "the read's record on the writer", || {
        let mut writer_query = writer_query.clone();
        async move {
            let filter = pb::EventFilter { tenant_id: "acme".into(), actions: vec!["auditum.query".into()], ..Default::default() };
            let page = writer_query.query(pb::QueryRequest { filter: Some(filter), page_size: 100, ..Default::default() }).await.unwrap();
            page.into_inner().events.iter().any(|stored| {
                let event = stored.event.as_ref().unwrap();
                let metadata = format!("{:?}", event.metadata);
                event.actor.as_ref().unwrap().id == "ops" && metadata.contains("reader-7") && metadata.contains("reader-node")
            })
        }
    })
    .await;
    println!("a reader's read recorded on the writer within {recorded:?}");

    // Only the forwarding scope may send `auditum.*` records, and only records of reads.
    let mut forged = event("acme", "auditum.query", "someone");
    forged.context = Some(pb::Context { service: "auditum".into(), ..Default::default() });
    for key in ["ops", "root"] {
        let mut client = pb::ingest_service_client::IngestServiceClient::new(keyed_channel(&writer_url, key).await);
        let refused = client.append(request(vec![forged.clone()])).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{key}: {refused:?}");
        assert!(refused.message().contains("meta_audit_forward"), "{}", refused.message());
    }
    let mut forwarding = pb::ingest_service_client::IngestServiceClient::new(keyed_channel(&writer_url, "reader-node").await);
    let mut alert = forged.clone();
    alert.action = "auditum.alert".into();
    let refused = forwarding.append(request(vec![alert])).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("events[0].action"), "{}", refused.message());
    let refused = forwarding.append(request(vec![event("acme", "user.login", "u")])).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "the forwarding key appends nothing else: {refused:?}");

    // Writer down: the reader cannot record the read, so it does not serve it.
    assert!(terminate(&mut writer).await.success());
    let refused = reader_query.query(query()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("not served"), "{}", refused.message());
    // A Summarize counts while its record is written, and is not served either.
    let summarize = pb::SummarizeRequest {
        filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
        group_by: vec![pb::SummaryDimension::Action as i32],
        ..Default::default()
    };
    let refused = reader_query.summarize(summarize).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("not served"), "{}", refused.message());
    assert!(terminate(&mut reader).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_on_the_writer_reaches_reads_on_a_reader_within_its_follow_interval() {
    let (writer_dir, reader_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let kek = writer_dir.path().join("kek");
    auditum_keyring::Kek::write_new_file(&kek).unwrap();
    let store_url = format!("file://{}", writer_dir.path().join("store").display());
    let shared = format!(
        "meta_audit = false\nstore = {store_url:?}\nencrypt_fields = [\"actor_name\"]\nkeyring = \"file://{}\"\nkek_file = {:?}\n",
        writer_dir.path().join("keyring").display(),
        kek.display().to_string()
    );
    let writer_config = writer_dir.path().join("auditum.toml");
    std::fs::write(&writer_config, format!("{shared}seal_interval = \"200ms\"\n")).unwrap();
    let (mut writer, writer_url) = spawn_binary(writer_dir.path(), &strings(&["--config", &writer_config.display().to_string()])).await;
    let mut ingest = pb::ingest_service_client::IngestServiceClient::connect(writer_url.clone()).await.unwrap();
    let mut alice = event("acme", "user.login", "alice");
    alice.actor.as_mut().unwrap().name = "Alice Liddell".into();
    let mut append = request(vec![alice]);
    append.wait_for_seal = true;
    ingest.append(append).await.unwrap();

    let reader_config = reader_dir.path().join("auditum.toml");
    let vkey = writer_dir.path().join("keys/default.vkey");
    std::fs::write(
        &reader_config,
        format!("{shared}read_only = true\ntrusted_key = {:?}\nfollow_interval = \"300ms\"\n", vkey.display().to_string()),
    )
    .unwrap();
    let (mut reader, reader_url) = spawn_binary(reader_dir.path(), &strings(&["--config", &reader_config.display().to_string()])).await;
    let actor_name = |url: String| async move {
        let events = query_url(&url, pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }, 10, false).await;
        events.first().map(|stored| stored.event.as_ref().unwrap().actor.as_ref().unwrap().name.clone()).unwrap_or_default()
    };
    assert_eq!(actor_name(reader_url.clone()).await, "Alice Liddell", "the reader decrypts with the shared keyring");

    let channel = tonic::transport::Endpoint::from_shared(writer_url.clone()).unwrap().connect().await.unwrap();
    pb::admin_service_client::AdminServiceClient::new(channel)
        .erase_subject(pb::EraseSubjectRequest { tenant_id: "acme".into(), subject_id: "alice".into(), reason: "GDPR art. 17".into() })
        .await
        .unwrap();
    let erased_after =
        eventually(Duration::from_secs(5), "the erasure on the reader", || async { actor_name(reader_url.clone()).await == "[erased]" })
            .await;
    assert!(erased_after <= Duration::from_millis(300) + Duration::from_secs(1), "erased on the reader after {erased_after:?}");
    assert_eq!(actor_name(writer_url.clone()).await, "[erased]");
    assert!(terminate(&mut reader).await.success());
    assert!(terminate(&mut writer).await.success());
}
