//! `auditum demo`: an in-process server, a realistic sample, a seal, the signed result, and an
//! offline verification of it.

use super::args::read_trusted_key;
use auditum_client::{AuditClient, Event, Options};
use auditum_proto::pb;
use auditum_server::config::Config;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DemoArgs {
    /// Where to keep the demo's data; default a new temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Events to append.
    #[arg(long, default_value_t = 5000)]
    events: usize,
}

pub async fn run(args: DemoArgs) -> Result<bool, String> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("auditum-demo-{}-{:08x}", std::process::id(), rand::random::<u32>())));
    let config = Config {
        listen: "127.0.0.1:0".parse().map_err(|_| "bad address")?,
        data_dir: data_dir.clone(),
        http_listen: None,
        ..Config::default()
    };
    let running = auditum_server::start(config.clone()).await.map_err(|error| error.to_string())?;
    let url = format!("http://{}", running.addr);
    println!("demo server on {url}, data in {}", data_dir.display());
    let channel = auditum_client::channel(&url, &Default::default()).await.map_err(|error| error.to_string())?;
    let mut rng = rand::thread_rng();
    let now = auditum_format::time::now_micros();
    let events: Vec<pb::AuditEvent> =
        (0..args.events).map(|i| auditum_proto::sample::realistic_event(&mut rng, now - 60_000_000 + i as i64 * 1000)).collect();
    let started = std::time::Instant::now();
    let client = AuditClient::with_channel(channel, Options::default()).await.map_err(|error| error.to_string())?;
    let sent = client.log_durable_each(events.into_iter().map(Event::from).collect(), false, |_| {}).await;
    client.close(std::time::Duration::from_secs(1)).await.map_err(|error| error.to_string())?;
    sent.map_err(|error| error.to_string())?;
    println!(
        "appended {} events across 5 tenants in {:.1} ms (each acknowledged after fsync)",
        args.events,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let log = running.logs.by_name("default").ok_or("no default log")?.clone();
    log.seal_now().await.map_err(|error| error.to_string())?;
    let snapshot = log.ledger_snapshot();
    if let Some(head) = snapshot.entries.last() {
        println!("\nledger head ({} entries):\n{}", snapshot.entries.len(), head.to_json_text());
    }
    if let Some(checkpoint) = &snapshot.checkpoint {
        println!("\nsigned checkpoint:\n{checkpoint}");
    }
    let verifier_key = log.verifier_key();
    println!("verifier key:\n{verifier_key}\n");
    let report = auditum_verify::verify_log(log.store().as_ref(), "default", &read_trusted_key(&verifier_key)?)
        .await
        .map_err(|error| error.to_string())?;
    println!("offline verification: {}", report.summary());
    println!("verify it yourself: auditum verify --store {} --trusted-key '{verifier_key}'", log.store().url());
    running.stop().await.map_err(|error| error.to_string())?;
    Ok(report.ok())
}
