//! `auditum relay postgres` against a real Postgres and the real `auditum` binary: committed
//! outbox rows arrive exactly once while relays run side by side and one is kill -9'd, rolled-back
//! rows never do, rejected rows land in `<table>_dead` with the server's message; NOTIFY wakes a
//! relay at once and polling is the fallback; an unusable table stops the relay with the reason.

use crate::common::postgres::Postgres;
use crate::common::{spawn_binary, stored_ids, terminate};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DDL: &str = include_str!("../../crates/auditum-relay/outbox.sql");

/// `auditum relay postgres` as a process of its own, its stderr in `log`.
fn spawn_relay(server: &str, postgres: &Postgres, extra: &[&str], log: &Path) -> tokio::process::Child {
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["relay", "postgres", "--server", server, "--dsn", &postgres.dsn()])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the relay")
}

/// Row `index`'s event, and whether the server will take it: a few break its rules (an upper-case
/// action, 70 KiB of metadata) in ways only the server checks.
fn row_event(index: usize) -> (serde_json::Value, bool) {
    let mut event = serde_json::json!({
        "tenant_id": "outbox",
        "action": "invoice.paid",
        "actor": {"id": format!("user-{}", index % 97), "type": "user"},
        "target": {"type": "invoice", "id": format!("inv-{index}")},
        "outcome": "success",
        "metadata": {"row": index},
    });
    if index % 397 == 5 {
        event["action"] = "Invoice.Paid".into();
        return (event, false);
    }
    if index % 1499 == 7 {
        event["metadata"] = serde_json::json!({"blob": "x".repeat(70 * 1024)});
        return (event, false);
    }
    (event, true)
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
}

#[derive(Default)]
struct Written {
    committed: BTreeMap<String, bool>,
    rolled_back: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_rows_arrive_exactly_once_through_a_kill_and_rejected_rows_go_to_the_dead_table() {
    const ROWS: usize = 10_000;
    const PRODUCERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let postgres = Postgres::start();
    let setup = postgres.connect().await;
    setup.batch_execute(DDL).await.unwrap();
    let (mut server, url) = spawn_binary(dir.path(), &[]).await;

    let relay_args = ["--batch", "200", "--poll", "100ms"];
    let log_a = dir.path().join("relay-a.log");
    let log_b = dir.path().join("relay-b.log");
    let mut relay_a = spawn_relay(&url, &postgres, &relay_args, &log_a);
    let mut relay_b = spawn_relay(&url, &postgres, &relay_args, &log_b);

    // Producers: concurrent transactions of 1 to 25 rows, about one in seven rolled back.
    let written = Arc::new(Mutex::new(Written::default()));
    let committed_rows = Arc::new(AtomicUsize::new(0));
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let (written, committed_rows) = (written.clone(), committed_rows.clone());
        let mut client = postgres.connect().await;
        producers.push(tokio::spawn(async move {
            let mut index = producer;
            let mut transaction_number = 0usize;
            while index < ROWS {
                transaction_number += 1;
                let size = 1 + (transaction_number * 7 + producer * 3) % 25;
                let mut rows = Vec::new();
                while rows.len() < size && index < ROWS {
                    let (event, valid) = row_event(index);
                    rows.push((uuid::Uuid::now_v7().to_string(), event.to_string(), valid));
                    index += PRODUCERS;
                }
                let roll_back = transaction_number % 7 == 3;
                let transaction = client.transaction().await.unwrap();
                let ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
                let events: Vec<&str> = rows.iter().map(|(_, event, _)| event.as_str()).collect();
                transaction
                    .execute(
                        "INSERT INTO audit_outbox (id, event) SELECT unnest($1::text[])::uuid, unnest($2::text[])::jsonb",
                        &[&ids, &events],
                    )
                    .await
                    .unwrap();
                if roll_back {
                    transaction.rollback().await.unwrap();
                    written.lock().unwrap().rolled_back.extend(rows.into_iter().map(|(id, _, _)| id));
                } else {
                    transaction.commit().await.unwrap();
                    committed_rows.fetch_add(rows.len(), Ordering::Relaxed);
                    written.lock().unwrap().committed.extend(rows.into_iter().map(|(id, _, valid)| (id, valid)));
                }
            }
        }));
    }

    // kill -9 one relay three times mid-stream, each time starting it again.
    let deadline = Instant::now() + Duration::from_secs(120);
    for kill_at in [2500, 5000, 7500] {
        while committed_rows.load(Ordering::Relaxed) < kill_at {
            assert!(Instant::now() < deadline, "producers stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        relay_a.start_kill().unwrap();
        let killed = relay_a.wait().await.unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&killed), Some(9));
        tokio::time::sleep(Duration::from_millis(200)).await;
        relay_a = spawn_relay(&url, &postgres, &relay_args, &log_a);
    }
    for producer in producers {
        producer.await.unwrap();
    }
    let written = std::mem::take(&mut *written.lock().unwrap());
    assert_eq!(written.committed.len() + written.rolled_back.len(), ROWS);
    assert!(written.rolled_back.len() > 1000, "some transactions rolled back: {}", written.rolled_back.len());

    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&setup, "audit_outbox").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox is not drained: {} rows left\nrelay a: {}\nrelay b: {}",
            count(&setup, "audit_outbox").await,
            std::fs::read_to_string(&log_a).unwrap_or_default(),
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The archive: every committed, valid row's event, once; nothing else.
    let expected: BTreeSet<&String> = written.committed.iter().filter(|(_, valid)| **valid).map(|(id, _)| id).collect();
    let stored = stored_ids(&url, "outbox").await;
    let twice: Vec<_> = stored.iter().filter(|(_, times)| **times > 1).take(5).collect();
    assert!(twice.is_empty(), "events stored twice: {twice:?}");
    let missing: Vec<_> = expected.iter().filter(|id| !stored.contains_key(id.as_str())).take(5).collect();
    assert!(
        missing.is_empty(),
        "committed rows missing from the archive ({} stored of {} expected): {missing:?}",
        stored.len(),
        expected.len(),
    );
    let extra: Vec<_> = stored.keys().filter(|id| !expected.contains(id)).take(5).collect();
    assert!(extra.is_empty(), "events in the archive that no committed valid row holds: {extra:?}");
    assert!(written.rolled_back.iter().all(|id| !stored.contains_key(id)));

    // The dead table: exactly the committed rows the server rejects, each with its message.
    let dead: BTreeMap<String, String> =
        setup.query("SELECT id, error FROM audit_outbox_dead", &[]).await.unwrap().iter().map(|row| (row.get(0), row.get(1))).collect();
    let rejected: BTreeSet<&String> = written.committed.iter().filter(|(_, valid)| !**valid).map(|(id, _)| id).collect();
    assert!(rejected.len() >= 10, "the run includes rejected rows: {}", rejected.len());
    assert_eq!(dead.keys().collect::<BTreeSet<_>>(), rejected);
    let (mut upper_case, mut too_large) = (0, 0);
    for error in dead.values() {
        if error.contains(".action: must match") {
            upper_case += 1;
        } else if error.contains("encoded size") && error.contains("exceeds the limit") {
            too_large += 1;
        } else {
            panic!("unexpected dead-row message: {error}");
        }
    }
    assert!(upper_case > 0 && too_large > 0, "both kinds of rejection: {upper_case} {too_large}");
    let dead_events: i64 = setup.query_one("SELECT count(*) FROM audit_outbox_dead WHERE event ? 'tenant_id'", &[]).await.unwrap().get(0);
    assert_eq!(dead_events as usize, rejected.len(), "the dead table keeps each row's event");

    // SIGTERM: the relays finish their round and say what they moved.
    for (relay, log) in [(&mut relay_a, &log_a), (&mut relay_b, &log_b)] {
        let status = terminate(relay).await;
        let log = std::fs::read_to_string(log).unwrap();
        assert!(status.success(), "the relay exits cleanly on SIGTERM: {status}\n{log}");
        let summary = log.lines().rfind(|line| line.starts_with("auditum relay: moved ")).unwrap_or_else(|| panic!("{log}"));
        eprintln!("{summary}");
    }
    terminate(&mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_the_relay_at_once_polling_is_the_fallback_and_a_bad_table_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = Postgres::start();
    let setup = postgres.connect().await;
    // The README's table without its trigger, so nothing notifies unless the test does.
    for table in ["quiet", "polled"] {
        setup
            .batch_execute(&format!(
                "CREATE TABLE {table} (id text PRIMARY KEY, event jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
            ))
            .await
            .unwrap();
    }
    let (mut server, url) = spawn_binary(dir.path(), &[]).await;
    let insert = |table: &str, id: &str| {
        format!(
            "INSERT INTO {table} (id, event) VALUES ('{id}', '{{\"tenant_id\":\"notify\",\"action\":\"a.b\",\"actor\":{{\"id\":\"u\",\"type\":\"user\"}},\"outcome\":\"success\"}}')"
        )
    };
    let log = dir.path().join("relay.log");
    let mut slow = spawn_relay(&url, &postgres, &["--table", "quiet", "--poll", "60s"], &log);
    let mut fast = spawn_relay(&url, &postgres, &["--table", "polled", "--poll", "200ms"], &log);
    // Both relays are up once their dead tables exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&setup, "pg_tables WHERE tablename IN ('quiet_dead', 'polled_dead')").await < 2 {
        assert!(Instant::now() < deadline, "relays did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    async fn arrives_within(url: &str, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if stored_ids(url, "notify").await.contains_key(id) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
    // Polling every 60 s, a row nobody announces waits...
    setup.batch_execute(&insert("quiet", "unannounced")).await.unwrap();
    assert!(!arrives_within(&url, "unannounced", Duration::from_secs(2)).await, "moved without a NOTIFY or a poll");
    // ...and a NOTIFY on the table's channel moves it at once.
    setup.batch_execute(&format!("{}; NOTIFY quiet", insert("quiet", "announced"))).await.unwrap();
    assert!(arrives_within(&url, "announced", Duration::from_secs(5)).await, "NOTIFY did not wake the relay");
    assert!(stored_ids(&url, "notify").await.contains_key("unannounced"), "the round takes every waiting row");
    // Without any NOTIFY, the poll finds the row.
    setup.batch_execute(&insert("polled", "found-by-polling")).await.unwrap();
    assert!(arrives_within(&url, "found-by-polling", Duration::from_secs(5)).await, "polling did not find the row");
    assert!(terminate(&mut slow).await.success() && terminate(&mut fast).await.success());

    // What waiting cannot cure stops the relay with the reason.
    setup.batch_execute("CREATE TABLE texty (id text, event text, created_at timestamptz)").await.unwrap();
    setup
        .batch_execute(
            "CREATE TABLE parted (id text, event jsonb, created_at timestamptz) PARTITION BY RANGE (created_at); \
             CREATE TABLE parted_2026 PARTITION OF parted FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        )
        .await
        .unwrap();
    let dsn = postgres.dsn();
    for (table, reason) in [
        ("missing", "--table missing: relation \"missing\" does not exist"),
        ("texty", "--table texty: column event is text, expected jsonb (or json)"),
        ("bad;name", "--table \"bad;name\": expected table or schema.table"),
        ("parted", "--table parted: a partitioned table or one with inheritance children is not supported"),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
            .args(["relay", "postgres", "--server", &url, "--dsn", &dsn, "--table", table])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(reason), "{table}: {stderr}");
    }
    assert_eq!(count(&setup, "pg_tables WHERE tablename = 'missing_dead'").await, 0, "a mistyped --table leaves no dead table behind");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["relay", "postgres", "--server", &url, "--dsn", "host=127.0.0.1 port=1 user=postgres", "--table", "quiet"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("auditum: postgres: "), "{stderr}");
    terminate(&mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_outbox_and_a_silent_postgres_time_out_instead_of_hanging_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = Postgres::start();
    let setup = postgres.connect().await;
    setup.batch_execute(DDL).await.unwrap();
    let (mut server, url) = spawn_binary(dir.path(), &[]).await;
    let log = dir.path().join("relay.log");
    let mut relay = spawn_relay(&url, &postgres, &["--poll", "100ms"], &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("relay started") {
        assert!(Instant::now() < deadline, "the relay did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    const DURING_LOCK: &str = "00000000-0000-4000-8000-000000000001";
    const AFTER_LOCK: &str = "00000000-0000-4000-8000-000000000002";
    let insert = |id: &str| {
        format!(
            "INSERT INTO audit_outbox (id, event) VALUES ('{id}', '{{\"tenant_id\":\"locked\",\"action\":\"a.b\",\"actor\":{{\"id\":\"u\",\"type\":\"user\"}},\"outcome\":\"success\"}}')"
        )
    };
    // A migration holds the outbox: the relay's round gives up after its lock timeout (and is
    // retried) instead of waiting for as long as the lock is held.
    let mut migration = postgres.connect().await;
    let transaction = migration.transaction().await.unwrap();
    transaction.batch_execute(&format!("LOCK TABLE audit_outbox IN ACCESS EXCLUSIVE MODE; {}", insert(DURING_LOCK))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("lock timeout") {
        assert!(Instant::now() < deadline, "no lock timeout: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    transaction.commit().await.unwrap();
    // Once the lock is gone, the rows move.
    setup.batch_execute(&insert(AFTER_LOCK)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = stored_ids(&url, "locked").await;
        if stored.contains_key(DURING_LOCK) && stored.contains_key(AFTER_LOCK) {
            break;
        }
        assert!(Instant::now() < deadline, "rows did not move after the lock: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(terminate(&mut relay).await.success());

    // A "Postgres" that accepts connections and never answers: the relay gives up at start,
    // naming the wait, instead of hanging.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let started = Instant::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["relay", "postgres", "--server", &url, "--dsn", &format!("postgres://relay@{silent_addr}/outbox")])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output).await.expect("the relay gives up").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("no answer within 15 s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    held.abort();
    assert!(terminate(&mut server).await.success());
}

/// A relay stopped while it is still starting (Postgres accepts the connection and never
/// answers) exits cleanly on SIGTERM, having moved nothing, rather than by the signal's default
/// action or by hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_postgres_does_not_answer_stops_the_relay_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = spawn_binary(dir.path(), &[]).await;
    // Accepts connections and holds them without a byte in reply.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let log = dir.path().join("relay.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut relay = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["relay", "postgres", "--server", &url, "--dsn", &format!("host=127.0.0.1 port={port} user=relay dbname=app")])
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the relay");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(relay.try_wait().unwrap().is_none(), "the relay waits for Postgres: {}", std::fs::read_to_string(&log).unwrap());
    let status = terminate(&mut relay).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exits cleanly: {status}\n{text}");
    assert!(text.contains("relay stopped before it started") && text.contains("moved 0 rows"), "{text}");
    holding.abort();
    terminate(&mut server).await;
}
