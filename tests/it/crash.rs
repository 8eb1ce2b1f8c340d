//! Crash safety with the real binary, on the file store and on S3 (moto): append continuously while recording acknowledgements,
//! kill -9 at random moments (also mid-seal), restart, and prove every acknowledged event is
//! in the archive exactly once, with its acknowledged seq, in a chain that verifies.

use crate::common;

use crate::common::*;
use auditum_batch as batch;
use auditum_format::checkpoint::Verifier;
use auditum_format::ledger::LedgerEntry;
use auditum_proto::pb;
use auditum_store::{self as store, ObjectStore};
use auditum_verify as verify;
use rand::Rng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const CYCLES: usize = 6;
const WORKERS: usize = 4;

/// (tenant, id) → acknowledged seq.
type Acknowledged = Arc<std::sync::Mutex<HashMap<(String, String), u64>>>;

async fn append_until_stopped(url: String, cycle: usize, worker: usize, acknowledged: Acknowledged, stop: Arc<AtomicBool>) {
    let Ok(mut client) = auditum_client::connect(&url).await else { return };
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let size = rand::thread_rng().gen_range(1..=20);
        let events: Vec<pb::AuditEvent> = (0..size)
            .map(|i| {
                let tenant = ["acme", "globex", "initech"][(next + i) % 3];
                with_id(event(tenant, "user.login", &format!("u{worker}")), &format!("c{cycle}-w{worker}-{}", next + i))
            })
            .collect();
        next += size;
        match client.append(request(events.clone())).await {
            Ok(response) => {
                let mut acknowledged = acknowledged.lock().unwrap();
                for (event, result) in events.iter().zip(response.into_inner().results) {
                    assert!(!result.duplicate, "fresh ids are never duplicates");
                    acknowledged.insert((event.tenant_id.clone(), event.id.clone()), result.seq);
                }
            }
            // Killed mid-call: unacknowledged, may or may not be stored.
            Err(_) => return,
        }
    }
}

/// Retries some acknowledged events: each must come back as a duplicate with its original seq.
async fn check_retries_are_duplicates(url: &str, acknowledged: &Acknowledged) {
    let sample: Vec<((String, String), u64)> = {
        let acknowledged = acknowledged.lock().unwrap();
        let mut rng = rand::thread_rng();
        acknowledged.iter().filter(|_| rng.gen_bool(0.05)).take(200).map(|(key, seq)| (key.clone(), *seq)).collect()
    };
    if sample.is_empty() {
        return;
    }
    let mut client = auditum_client::connect(url).await.unwrap();
    let events: Vec<pb::AuditEvent> = sample.iter().map(|((tenant, id), _)| with_id(event(tenant, "user.login", "retry"), id)).collect();
    let response = client.append(request(events)).await.unwrap().into_inner();
    for (((tenant, id), seq), result) in sample.iter().zip(response.results) {
        assert!(result.duplicate, "{tenant}/{id} acknowledged before the crash is a duplicate after it");
        assert_eq!(result.seq, *seq, "{tenant}/{id} keeps its acknowledged seq");
    }
}

/// Runs CYCLES kill -9 cycles against the binary started with `args`, then a graceful stop, and
/// checks every acknowledged event against the archive in `store`.
pub async fn crash_cycles(dir: &Path, args: &[String], store: &dyn ObjectStore, cycles: usize) {
    let acknowledged: Acknowledged = Arc::default();
    let mut rng = rand::rngs::StdRng::from_entropy();
    for cycle in 0..cycles {
        let (mut child, url) = spawn_binary(dir, args).await;
        check_retries_are_duplicates(&url, &acknowledged).await;
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| tokio::spawn(append_until_stopped(url.clone(), cycle, worker, acknowledged.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
        child.kill().await.expect("kill -9");
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.await.unwrap();
        }
        eprintln!("cycle {cycle}: {} events acknowledged so far", acknowledged.lock().unwrap().len());
    }

    // Last start: retries still deduplicate, then a graceful stop (SIGTERM) seals everything.
    let (mut child, url) = spawn_binary(dir, args).await;
    check_retries_are_duplicates(&url, &acknowledged).await;
    let status = terminate(&mut child).await;
    assert!(status.success(), "graceful stop exits 0, got {status}");

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 300, "the test appended for real ({} events)", acknowledged.len());
    let verifier = Verifier::parse(&std::fs::read_to_string(dir.join("keys/default.vkey")).unwrap()).unwrap();
    let report = verify::verify_log(store, "default", &verifier).await.unwrap();
    assert!(report.ok(), "chain verifies: {:?}", report.problems);

    let mut archived: HashMap<(String, String), Vec<u64>> = HashMap::new();
    for meta in store.list("default/ledger/").await.unwrap() {
        let entry = LedgerEntry::parse(std::str::from_utf8(&store.get(&meta.key, None).await.unwrap()).unwrap()).unwrap();
        for row in batch::read_batch(store.get(&entry.object, entry.version.as_deref()).await.unwrap()).unwrap() {
            archived.entry((row.record.tenant_id, row.record.id)).or_default().push(row.record.seq.0);
        }
    }
    for (key, seq) in &acknowledged {
        assert_eq!(archived.get(key), Some(&vec![*seq]), "{key:?} acknowledged with seq {seq} is archived exactly once with that seq");
    }
    assert!(archived.values().all(|seqs| seqs.len() == 1), "no event is archived twice");
    eprintln!("{} acknowledged, {} archived, {} orphan warnings", acknowledged.len(), archived.len(), report.warnings.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let args = vec!["--seal-interval".to_string(), "250ms".to_string()];
    let store = store::open(&format!("file://{}", dir.path().join("store").display()), &Default::default()).await.unwrap();
    crash_cycles(dir.path(), &args, store.as_ref(), CYCLES).await;
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_event_on_s3() {
    common::s3::runtime().block_on(async {
        let moto = common::s3::Moto::start().await;
        moto.locked_bucket("crash-archive").await;
        let dir = tempfile::tempdir().unwrap();
        let url = "s3://crash-archive/auditum";
        let args = common::s3::serve_args(url, &moto.endpoint, "250ms");
        let store = store::open(url, &moto.options()).await.unwrap();
        crash_cycles(dir.path(), &args, store.as_ref(), 5).await;
    });
}
