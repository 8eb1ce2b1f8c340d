//! The Rust SDK (`auditum_client::AuditClient`) against the real `auditum` binary: crash safety of
//! the spool under kill -9, a 30 s server outage, the full-spool policies, dead letters, spool
//! damage, the spool lock, ambient context and `log_durable`.
//!
//! A producer must be a process of its own to be kill -9'd. Rather than an extra binary (nextest
//! builds no examples, and `CARGO_BIN_EXE_*` names only this package's binaries), the test binary
//! re-executes itself running only [`producer_process_entry_point`], which does its work when
//! `AUDITUM_SDK_PRODUCER` is set and returns at once otherwise (so in a normal run it is a no-op).

use crate::common::{stored, stored_ids};
use auditum_client::{ActorType, AuditClient, Event, LogError, OnFull, Options, Problem, RequestContext, SpoolFsync, request_context};
use auditum_proto::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const PRODUCER_ENV: &str = "AUDITUM_SDK_PRODUCER";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real `auditum serve` on a given port (so it can be stopped and started again on it).
async fn serve_on(data_dir: &Path, port: u16) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("server.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "127.0.0.1:0", "--http-listen", "", "--data-dir"])
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("auditum listening on ") {
                return;
            }
        }
        panic!("server exited: {}", std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default());
    })
    .await
    .expect("server listens within 60 s");
    child
}

fn event(tenant: &str, index: usize) -> Event {
    Event::new(tenant, "user.login").actor(ActorType::User, format!("user-{index}")).target("user", "u2")
}

/// Problems reported to the error handler.
fn recorder() -> (Arc<Mutex<Vec<Problem>>>, impl Fn(&Problem) + Send + Sync + 'static) {
    let problems = Arc::new(Mutex::new(Vec::new()));
    let sink = problems.clone();
    (problems, move |problem: &Problem| sink.lock().unwrap().push(problem.clone()))
}

fn spool_segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "spool"))
        .collect();
    segments.sort();
    segments
}

/// The producer's side: `url|spool_dir|tenant|first|end|mode`. Logs events `first..end` with ids
/// `p-<i>`, printing `ID <id>` after each `log()` returned; mode `hold` instead prints `READY` and
/// keeps the spool until stdin closes.
#[test]
fn producer_process_entry_point() {
    let Ok(spec) = std::env::var(PRODUCER_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (url, spool, tenant) = (parts[0], parts[1], parts[2]);
    let (first, end): (usize, usize) = (parts[3].parse().unwrap(), parts[4].parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let client = AuditClient::connect(url, Options::default().with_spool(spool)).await.unwrap();
        let mut stdout = std::io::stdout().lock();
        // libtest printed "test <name> ... " without a newline: our lines start on a fresh one.
        writeln!(stdout).unwrap();
        if parts[5] == "hold" {
            writeln!(stdout, "READY").unwrap();
            stdout.flush().unwrap();
            let _ = std::io::stdin().lock().lines().count();
            return;
        }
        for index in first..end {
            let id = client.log(event(tenant, index).id(format!("p-{index}"))).unwrap();
            writeln!(stdout, "ID {id}").unwrap();
            stdout.flush().unwrap();
        }
        assert!(client.flush(Duration::from_secs(60)).await);
        client.close(Duration::from_secs(10)).await.unwrap();
        writeln!(stdout, "DONE").unwrap();
    });
}

fn producer(url: &str, spool: &Path, tenant: &str, range: std::ops::Range<usize>, mode: &str) -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sdk::producer_process_entry_point", "--nocapture", "--test-threads=1"])
        .env(PRODUCER_ENV, format!("{url}|{}|{tenant}|{}|{}|{mode}", spool.display(), range.start, range.end))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_killed_mid_stream_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let (_server, url) = crate::common::spawn_binary(&dir.path().join("data"), &[]).await;
    const TOTAL: usize = 20_000;

    let mut first = producer(&url, &spool, "crash", 0..TOTAL, "run");
    let mut lines = tokio::io::BufReader::new(first.stdout.take().unwrap()).lines();
    let mut returned = BTreeSet::new();
    while returned.len() < 5_000 {
        let line = lines.next_line().await.unwrap().expect("the producer runs");
        if let Some(id) = line.strip_prefix("ID ") {
            returned.insert(id.to_string());
        }
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    while let Some(line) = lines.next_line().await.unwrap() {
        assert_ne!(line, "DONE", "killed before it finished");
        if let Some(id) = line.strip_prefix("ID ") {
            returned.insert(id.to_string());
        }
    }
    let killed_at = returned.len();
    assert!(killed_at < TOTAL, "killed mid-stream");

    // The next process resends the spool and logs the rest. It starts at the first index whose
    // id was not printed: an event spooled but killed before log() returned is logged again with
    // its id, which the server deduplicates.
    let mut second = producer(&url, &spool, "crash", killed_at..TOTAL, "run");
    let mut lines = tokio::io::BufReader::new(second.stdout.take().unwrap()).lines();
    let mut done = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(id) = line.strip_prefix("ID ") {
            returned.insert(id.to_string());
        }
        done |= line == "DONE";
    }
    assert!(second.wait().await.unwrap().success() && done);

    let stored = stored_ids(&url, "crash").await;
    assert_eq!(stored.len(), TOTAL);
    assert!(stored.values().all(|&count| count == 1), "every event exactly once");
    let extra: Vec<_> = stored.keys().filter(|id| !returned.contains(*id)).take(5).collect();
    let missing: Vec<_> = returned.iter().filter(|id| !stored.contains_key(*id)).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "the archive holds exactly the ids log() returned: extra {extra:?}, missing {missing:?}"
    );
    assert!(spool_segments(&spool).is_empty(), "the spool is empty once everything is delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30s_server_outage_loses_nothing_and_never_blocks_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve_on(&data, port).await;
    let client = Arc::new(AuditClient::connect(&url, Options::default().with_spool(dir.path().join("spool"))).await.unwrap());

    // A producer thread logging ~1000 events/s, timing each call.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producing = std::thread::spawn({
        let (client, stop) = (client.clone(), stop.clone());
        move || {
            let (mut ids, mut slowest) = (Vec::new(), Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..10 {
                    let started = Instant::now();
                    ids.push(client.log(event("outage", ids.len())).unwrap().0);
                    slowest = slowest.max(started.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (ids, slowest)
        }
    });
    let wait_delivered = |count: u64| {
        let client = client.clone();
        async move {
            while client.stats().delivered < count {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait_delivered(500)).await.expect("delivery before the outage");
    crate::common::terminate(&mut server).await;
    let logged_at_stop = client.stats().logged;
    tokio::time::sleep(Duration::from_secs(30)).await; // the outage itself
    let during = client.stats();
    assert!(during.logged > logged_at_stop + 5_000, "logging went on: {during:?}");
    assert!(during.delivered <= logged_at_stop, "nothing was delivered while the server was down");
    assert!(during.retried > 0);
    let _server = serve_on(&data, port).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ids, slowest) = producing.join().unwrap();
    assert!(client.flush(Duration::from_secs(90)).await, "everything arrives after the restart: {:?}", client.stats());
    // The spool had room throughout: log() only wrote a file (this bound allows for a busy 2-core CI machine).
    assert!(slowest < Duration::from_millis(200), "log() took {slowest:?}");

    let stored = stored_ids(&url, "outage").await;
    assert_eq!(stored.len(), ids.len());
    assert!(stored.values().all(|&count| count == 1), "nothing twice");
    let ids: BTreeSet<String> = ids.into_iter().collect();
    assert!(stored.keys().all(|id| ids.contains(id)), "no event that log() did not return");
    client.close(Duration::from_secs(5)).await.unwrap();
}

/// A client whose server is down: nothing drains, so its small spool fills.
async fn stuck_client(spool: &Path, port: u16, on_full: OnFull, block_timeout: Duration) -> (AuditClient, Arc<Mutex<Vec<Problem>>>) {
    let (problems, handler) = recorder();
    let options = Options { spool_max_bytes: 16 * 1024, on_full, block_timeout, ..Options::default().with_spool(spool).on_error(handler) };
    (AuditClient::connect(&format!("http://127.0.0.1:{port}"), options).await.unwrap(), problems)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_full_block_raise_and_drop_behave_as_specified() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();

    // raise: an error at once, the spool within its bound.
    let (client, _) = stuck_client(&dir.path().join("raise"), port, OnFull::Raise, Duration::ZERO).await;
    let mut accepted = 0;
    let error = loop {
        match client.log(event("full", accepted)) {
            Ok(_) => accepted += 1,
            Err(error) => break error,
        }
    };
    assert!(matches!(error, LogError::Full { max: 16384, .. }), "{error}");
    assert!(accepted > 20 && client.stats().spool_bytes <= 16 * 1024, "{accepted} {:?}", client.stats());
    client.close(Duration::ZERO).await.unwrap();

    // drop: counted, reported, the caller told.
    let (client, problems) = stuck_client(&dir.path().join("drop"), port, OnFull::Drop, Duration::ZERO).await;
    let results: Vec<_> = (0..200).map(|index| client.log(event("full", index))).collect();
    let dropped = results.iter().filter(|result| matches!(result, Err(LogError::Dropped { .. }))).count();
    assert!(dropped > 0 && results.iter().all(|result| result.is_ok() || matches!(result, Err(LogError::Dropped { .. }))));
    assert_eq!(client.stats().dropped, dropped as u64);
    assert_eq!(problems.lock().unwrap().iter().filter(|problem| matches!(problem, Problem::Dropped { .. })).count(), dropped);
    client.close(Duration::ZERO).await.unwrap();

    // block: waits block_timeout, then fails...
    let (client, _) = stuck_client(&dir.path().join("block"), port, OnFull::Block, Duration::from_millis(300)).await;
    let mut logged = Vec::new();
    let started = loop {
        let started = Instant::now();
        match client.log(event("full", logged.len())) {
            Ok(id) => logged.push(id.0),
            Err(error) => {
                assert!(matches!(error, LogError::Full { .. }), "{error}");
                break started;
            }
        }
    };
    assert!(started.elapsed() >= Duration::from_millis(300), "blocked for block_timeout first");
    client.close(Duration::ZERO).await.unwrap();
    // ...and returns as soon as delivery makes room.
    let (client, _) = stuck_client(&dir.path().join("block"), port, OnFull::Block, Duration::from_secs(60)).await;
    let client = Arc::new(client);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn({
        let client = client.clone();
        move || sender.send(client.log(event("full", 999_999)).map(|id| id.0)).unwrap()
    });
    assert!(receiver.recv_timeout(Duration::from_millis(500)).is_err(), "log() blocks while the spool is full");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let _server = serve_on(&data, port).await;
    let last = receiver.recv_timeout(Duration::from_secs(60)).expect("log() returns once there is room").unwrap();
    assert!(client.flush(Duration::from_secs(60)).await);
    let stored = stored_ids(&format!("http://127.0.0.1:{port}"), "full").await;
    assert!(logged.iter().chain([&last]).all(|id| stored.get(id) == Some(&1)), "everything accepted under block arrives once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_go_to_the_dead_letter_file_and_the_others_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::common::spawn_binary(dir.path(), &[]).await;
    let (problems, handler) = recorder();
    let spool = dir.path().join("spool");
    let options = Options {
        validate_locally: false,
        linger: Duration::from_millis(500), // one call holds all five
        ..Options::default().with_spool(&spool).on_error(handler)
    };
    let client = AuditClient::connect(&url, options).await.unwrap();
    let ids: Vec<String> = (0..5)
        .map(|index| {
            let event = match index {
                1 => Event::new("dead", "User.Login").actor(ActorType::User, "u1"),
                3 => event("dead", 3).metadata(serde_json::json!({"blob": "x".repeat(70 * 1024)})),
                _ => event("dead", index),
            };
            client.log(event).unwrap().0
        })
        .collect();
    assert!(client.flush(Duration::from_secs(30)).await);
    assert_eq!(client.stats().dead_lettered, 2);
    assert_eq!(client.stats().delivered, 3);

    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(spool.join("dead_letter.jsonl")).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let by_id: BTreeMap<&str, &serde_json::Value> = lines.iter().map(|line| (line["event"]["id"].as_str().unwrap(), line)).collect();
    let action = by_id[ids[1].as_str()];
    assert_eq!(action["code"], "INVALID_ARGUMENT");
    assert!(action["message"].as_str().unwrap().contains("].action: must match"), "{action}");
    assert_eq!(action["event"]["action"], "User.Login");
    assert_eq!(action["event"]["actor"]["type"], "ACTOR_TYPE_USER");
    assert!(chrono::DateTime::parse_from_rfc3339(action["at"].as_str().unwrap()).is_ok());
    let big = by_id[ids[3].as_str()];
    assert!(big["message"].as_str().unwrap().contains("exceeds the limit of 65536 bytes"), "{big}");
    let rejected = problems.lock().unwrap().iter().filter(|problem| matches!(problem, Problem::Rejected { .. })).count();
    assert_eq!(rejected, 2);

    let stored = stored_ids(&url, "dead").await;
    assert_eq!(
        stored.keys().cloned().collect::<Vec<_>>(),
        [&ids[0], &ids[2], &ids[4]].map(Clone::clone).into_iter().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>()
    );
    client.close(Duration::from_secs(5)).await.unwrap();

    // With local checks on (the default), the same mistakes fail in the caller, naming the field.
    let client = AuditClient::connect(&url, Options::default()).await.unwrap();
    let error = client.log(Event::new("dead", "User.Login").actor(ActorType::User, "u1")).unwrap_err();
    assert!(error.to_string().starts_with("invalid event: action: must match"), "{error}");
    let error = client.log(event("dead", 3).metadata(serde_json::json!({"blob": "x".repeat(70 * 1024)}))).unwrap_err();
    assert!(error.to_string().contains("exceeds the limit of 65536 bytes"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_truncated_and_a_damaged_segment_reported_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // Two segments of ten undelivered events each (the server is down).
    let mut ids = Vec::new();
    for _ in 0..2 {
        let client = AuditClient::connect(&url, Options::default().with_spool(&spool)).await.unwrap();
        for index in 0..10 {
            ids.push(client.log(event("damage", index)).unwrap().0);
        }
        assert!(!client.close(Duration::from_millis(100)).await.unwrap());
    }
    let segments = spool_segments(&spool);
    assert_eq!(segments.len(), 2);
    // A torn tail on the first: half a record, as a crash mid-write leaves it.
    let intact = std::fs::metadata(&segments[0]).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&segments[0]).unwrap().write_all(&[200, 1, 0, 0, 7, 7, 1, 10]).unwrap();
    // Damage in the middle of the second: a flipped byte inside its fifth record's payload.
    let mut bytes = std::fs::read(&segments[1]).unwrap();
    let record = (bytes.len() - 16) / 10;
    bytes[16 + 4 * record + 20] ^= 0xff;
    std::fs::write(&segments[1], bytes).unwrap();

    let (problems, handler) = recorder();
    let client = AuditClient::connect(&url, Options::default().with_spool(&spool).on_error(handler)).await.unwrap();
    assert_eq!(std::fs::metadata(&segments[0]).unwrap().len(), intact, "the torn tail is cut");
    let damaged = spool.join("damaged").join(segments[1].file_name().unwrap());
    assert!(damaged.exists() && !segments[1].exists(), "the damaged segment is kept aside, not deleted");
    let reported: Vec<String> = problems
        .lock()
        .unwrap()
        .iter()
        .filter_map(|problem| match problem {
            Problem::SpoolDamaged { file, detail } => Some(format!("{} {detail}", file.display())),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 1, "only the damage is an error: {reported:?}");
    assert!(reported[0].contains("damaged/segment-") && reported[0].contains("invalid records at offsets"), "{reported:?}");

    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let _server = serve_on(&data, port).await;
    assert!(client.flush(Duration::from_secs(30)).await);
    let stored = stored_ids(&url, "damage").await;
    // All of the torn segment's events, and every readable one of the damaged segment's.
    assert_eq!(stored.len(), 19, "{stored:?}");
    assert!(ids[..10].iter().chain(&ids[10..14]).chain(&ids[15..]).all(|id| stored.get(id) == Some(&1)));
    assert!(!stored.contains_key(&ids[14]), "the damaged record is not invented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_on_a_spool_directory_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = format!("http://127.0.0.1:{}", free_port());
    // Another process owns it.
    let mut holder = producer(&url, &spool, "lock", 0..0, "hold");
    let mut lines = tokio::io::BufReader::new(holder.stdout.take().unwrap()).lines();
    while lines.next_line().await.unwrap().expect("the holder starts") != "READY" {}
    let error = AuditClient::connect(&url, Options::default().with_spool(&spool)).await.err().expect("refused");
    let message = error.to_string();
    let pid = holder.id().unwrap();
    assert!(message.contains(&format!("pid {pid}")) && message.contains(&spool.canonicalize().unwrap().display().to_string()), "{message}");
    drop(holder.stdin.take());
    assert!(holder.wait().await.unwrap().success());

    // Released: this process takes it; a second client in the same process is refused too.
    let first = AuditClient::connect(&url, Options::default().with_spool(&spool)).await.unwrap();
    let error = AuditClient::connect(&url, Options::default().with_spool(&spool)).await.err().expect("refused");
    assert!(error.to_string().contains("in use by another client of this process"), "{error}");
    first.close(Duration::ZERO).await.unwrap();
    AuditClient::connect(&url, Options::default().with_spool(&spool)).await.unwrap().close(Duration::ZERO).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambient_context_reaches_events_and_concurrent_tasks_keep_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::common::spawn_binary(dir.path(), &[]).await;
    let client = Arc::new(AuditClient::connect(&url, Options::default()).await.unwrap());
    let tasks: Vec<_> = (0..2)
        .map(|task| {
            let client = client.clone();
            let context = RequestContext::default()
                .request_id(format!("req-{task}"))
                .source_ip(format!("10.0.0.{task}"))
                .actor(pb::Actor { id: format!("ambient-{task}"), r#type: ActorType::User as i32, name: String::new() });
            tokio::spawn(request_context::scope(context, async move {
                for index in 0..20 {
                    client.log(Event::new("ctx", "page.viewed").id(format!("t{task}-{index}"))).unwrap();
                    tokio::task::yield_now().await; // interleave with the other task
                }
                // Explicit fields win over the ambient ones.
                client.log(event("ctx", 0).id(format!("t{task}-explicit")).request_id("mine")).unwrap();
            }))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    client.log(event("ctx", 0).id("outside")).unwrap();
    assert!(client.flush(Duration::from_secs(30)).await);
    let events: BTreeMap<String, pb::AuditEvent> =
        stored(&url, "ctx").await.into_iter().map(|stored| stored.event.unwrap()).map(|event| (event.id.clone(), event)).collect();
    assert_eq!(events.len(), 43);
    for (id, event) in &events {
        let context = event.context.clone().unwrap_or_default();
        match id.split_once('-') {
            Some((task, "explicit")) => {
                assert_eq!(context.request_id, "mine");
                assert_eq!(context.source_ip, format!("10.0.0.{}", &task[1..]));
                assert_eq!(event.actor.as_ref().unwrap().id, "user-0");
            }
            Some((task, _)) => {
                let task = &task[1..];
                assert_eq!(
                    (context.request_id.as_str(), context.source_ip.as_str()),
                    (format!("req-{task}").as_str(), format!("10.0.0.{task}").as_str()),
                    "{id}"
                );
                assert_eq!(event.actor.as_ref().unwrap().id, format!("ambient-{task}"));
            }
            None => assert!(context.request_id.is_empty(), "no scope, no context"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_durable_returns_seq_id_and_duplicate_and_raises_on_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::common::spawn_binary(dir.path(), &[]).await;
    let client = AuditClient::connect(&url, Options { validate_locally: false, ..Options::default() }).await.unwrap();
    let first = client.log_durable(event("durable", 0).id("pay-1")).await.unwrap();
    assert_eq!((first.id.as_str(), first.duplicate, first.log.as_str()), ("pay-1", false, "default"));
    let again = client.log_durable(event("durable", 0).id("pay-1")).await.unwrap();
    assert_eq!((again.seq, again.duplicate), (first.seq, true));
    let generated = client.log_durable(event("durable", 1)).await.unwrap();
    assert!(uuid::Uuid::parse_str(&generated.id).is_ok() && generated.seq > first.seq);
    let error = client.log_durable(Event::new("durable", "Payment.Made").actor(ActorType::User, "u1")).await.unwrap_err();
    match &error {
        LogError::Rejected { status } => assert!(status.message().starts_with("events[0].action: must match"), "{error}"),
        other => panic!("expected a rejection, got {other}"),
    }
    assert_eq!(stored_ids(&url, "durable").await.len(), 2);
}

/// The spool's fsync mode is part of the bytes' contract only through timing; `always` must
/// still deliver (the benchmark measures what it costs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_fsync_always_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::common::spawn_binary(dir.path(), &[]).await;
    let options = Options { spool_fsync: SpoolFsync::Always, ..Options::default().with_spool(dir.path().join("spool")) };
    let client = AuditClient::connect(&url, options).await.unwrap();
    let ids: BTreeSet<String> = (0..200).map(|index| client.log(event("always", index)).unwrap().0).collect();
    assert!(client.flush(Duration::from_secs(30)).await);
    assert_eq!(stored_ids(&url, "always").await.keys().cloned().collect::<BTreeSet<_>>(), ids);
}
