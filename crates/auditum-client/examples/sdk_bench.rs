//! The SDK's benchmark: one process logs events as fast as it can against a local server, with a
//! spool. Prints events/s delivered, the cost of `log()` itself (p50/p99/max), and the spool's
//! bytes per event, for `spool_fsync = batch` and `always`.
//!
//! `cargo run -p auditum-client --example sdk_bench -- [EVENTS] [--server URL]`
//! Without `--server` it starts `$AUDITUM_BIN serve` (default `target/debug/auditum`) on
//! 127.0.0.1:0 with a temporary data directory.

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

async fn run(url: &str, events: usize, fsync: SpoolFsync) {
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
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: usize = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(200_000);
    let data = tempfile::tempdir().expect("temp dir");
    let (server, url) = match args.iter().position(|arg| arg == "--server") {
        Some(index) => (None, args.get(index + 1).expect("--server URL").clone()),
        None => {
            let (child, url) = start_server(data.path());
            (Some(child), url)
        }
    };
    run(&url, events, SpoolFsync::Batch).await;
    run(&url, (events / 20).max(1000), SpoolFsync::Always).await;
    if let Some(mut server) = server {
        let _ = server.kill();
        let _ = server.wait();
    }
}
