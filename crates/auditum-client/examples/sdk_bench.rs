//! The SDK's benchmark: one process logs events as fast as it can against a local server, with a
//! spool. Prints events/s delivered, the cost of `log()` itself (p50/p99/max), and the spool's
//! bytes per event, for `spool_fsync = batch` and `always`.
//!
//! `cargo run -p auditum-client --example sdk_bench -- [EVENTS] [--server URL] [--runs N]`
//! Without `--server` it starts `$AUDITUM_BIN serve` (default `target/debug/auditum`) on
//! 127.0.0.1:0 with a temporary data directory, a fresh one for each of the `--runs` (default 1);
//! with more than one run it ends with the medians, since one run's p99 moves with the machine.

use auditum_client::{ActorType, AuditClient, Event, Options, SpoolFsync};
use std::io::BufRead;
use std::time::{Duration, Instant};

fn start_server(data: &std::path::Path) -> (std::process::Child, String) {
    let binary = std::env::var("AUDITUM_BIN").unwrap_or_else(|_| "target/debug/auditum".into());
    let mut child = std::process::Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("{binary}: {error} (set AUDITUM_BIN)"));
    let stdout = child.stdout.take().expect("piped");
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(addr) = line.expect("server output").strip_prefix("auditum listening on ") {
            return (child, format!("http://{addr}"));
        }
    }
    let _ = child.wait();
    panic!("the server exited before listening");
}

fn percentile(sorted: &[u32], fraction: f64) -> Duration {
    Duration::from_nanos(u64::from(sorted[((sorted.len() - 1) as f64 * fraction) as usize]))
}

/// What one run measured: events/s delivered, and `log()`'s p50 and p99.
struct Measured {
    delivered_per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(url: &str, events: usize, fsync: SpoolFsync) -> Measured {
    let spool = tempfile::tempdir().expect("temp dir");
    let options = Options { spool_fsync: fsync, ..Options::default().with_spool(spool.path()) };
    let client = AuditClient::connect(url, options).await.expect("connect");
    let tenant = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let prepared: Vec<Event> = (0..events)
        .map(|index| {
            Event::new(&tenant, "user.role.updated")
                .actor(ActorType::User, format!("user-{}", index % 1000))
                .target("user", format!("user-{}", index % 777))
                .request_id(format!("req-{index}"))
                .metadata(serde_json::json!({"ticket": index, "reason": "promotion"}))
        })
        .collect();
    let mut costs = Vec::with_capacity(events);
    let mut peak_spool = 0;
    let started = Instant::now();
    // The calling thread is a runtime thread here, as in a request handler.
    for event in prepared {
        let call = Instant::now();
        client.log(event).expect("log");
        costs.push(call.elapsed().as_nanos() as u32);
        if costs.len() % 1000 == 0 {
            peak_spool = peak_spool.max(client.stats().spool_bytes);
            tokio::task::yield_now().await;
        }
    }
    let logged_in = started.elapsed();
    assert!(client.flush(Duration::from_secs(600)).await, "delivered");
    let delivered_in = started.elapsed();
    let stats = client.stats();
    costs.sort_unstable();
    // Every record is `len | crc | 0x01 | AuditEvent`; segments are 16 MiB, so the peak spool
    // size over the events it held is close to the bytes per event.
    let record_bytes = {
        let sample = Event::new(&tenant, "user.role.updated")
            .actor(ActorType::User, "user-123")
            .target("user", "user-456")
            .request_id("req-100000")
            .metadata(serde_json::json!({"ticket": 100000, "reason": "promotion"}));
        let mut event = sample.0;
        event.id = uuid::Uuid::now_v7().to_string();
        event.occurred_at = Some(auditum_proto::convert::now_timestamp());
        9 + prost::Message::encoded_len(&event)
    };
    println!(
        "spool_fsync={fsync:?}: {events} events, logged in {:.2}s, delivered in {:.2}s = {:.0} events/s delivered; \
         log() p50={:?} p99={:?} max={:?}; spool record {} bytes/event (peak spool {} bytes); delivered={} duplicates={} retried={}",
        logged_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
        events as f64 / delivered_in.as_secs_f64(),
        percentile(&costs, 0.50),
        percentile(&costs, 0.99),
        percentile(&costs, 1.0),
        record_bytes,
        peak_spool,
        stats.delivered,
        stats.duplicates,
        stats.retried,
    );
    client.close(Duration::from_secs(10)).await.expect("close");
    Measured {
        delivered_per_second: events as f64 / delivered_in.as_secs_f64(),
        p50: percentile(&costs, 0.50),
        p99: percentile(&costs, 0.99),
    }
}

fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    sorted[sorted.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The first number that is not a flag's value.
    let events: usize = args
        .iter()
        .enumerate()
        .filter(|(index, _)| *index == 0 || !matches!(args[index - 1].as_str(), "--runs" | "--server"))
        .find_map(|(_, arg)| arg.parse().ok())
        .unwrap_or(200_000);
    let runs: usize = match args.iter().position(|arg| arg == "--runs") {
        Some(index) => args.get(index + 1).and_then(|text| text.parse().ok()).expect("--runs N"),
        None => 1,
    };
    let given_server = args.iter().position(|arg| arg == "--server").map(|index| args.get(index + 1).expect("--server URL").clone());
    let mut batch = Vec::new();
    for _ in 0..runs {
        let data = tempfile::tempdir().expect("temp dir");
        let (server, url) = match &given_server {
            Some(url) => (None, url.clone()),
            None => {
                let (child, url) = start_server(data.path());
                (Some(child), url)
            }
        };
        batch.push(run(&url, events, SpoolFsync::Batch).await);
        run(&url, (events / 20).max(1000), SpoolFsync::Always).await;
        if let Some(mut server) = server {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
    if runs > 1 {
        let p99s: Vec<Duration> = batch.iter().map(|measured| measured.p99).collect();
        println!(
            "spool_fsync=Batch over {runs} runs: delivered median {:.0} events/s; log() p50 median {:?}, p99 median {:?} ({} of {runs} runs <= 10us; each: {:?})",
            median(&batch.iter().map(|measured| measured.delivered_per_second).collect::<Vec<_>>()),
            median(&batch.iter().map(|measured| measured.p50).collect::<Vec<_>>()),
            median(&p99s),
            p99s.iter().filter(|p99| **p99 <= Duration::from_micros(10)).count(),
            p99s,
        );
    }
}
