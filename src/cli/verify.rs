//! `auditum verify`: the whole archive of a log, offline, straight from its store.

use super::args::{S3Args, read_trusted_key};
use auditum_store::S3Options;
use auditum_verify as verify;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct VerifyArgs {
    /// Store URL, e.g. file:///var/lib/auditum/store.
    #[arg(long)]
    store: String,
    /// Pinned verifier key (`name+id+key`) or a file holding it.
    #[arg(long)]
    trusted_key: String,
    /// Log name.
    #[arg(long, default_value = "default")]
    log: String,
    /// An older checkpoint you kept (signed note file): the archive must extend it.
    #[arg(long)]
    since_checkpoint: Option<PathBuf>,
    /// Batches checked at once.
    #[arg(long)]
    parallelism: Option<usize>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Accept a log with nothing in it (no ledger, no checkpoint, no batch); without it such a
    /// log fails, since a wrong --store or --log looks the same.
    #[arg(long)]
    allow_empty: bool,
    /// Check the archive as of this RFC 3339 time (default now): a batch gone after its entry's
    /// retain_until and before this time is expired (counted, not a problem).
    #[arg(long)]
    as_of: Option<String>,
    /// Flag every ledger entry committed with less Object Lock retention than this (or none).
    #[arg(long)]
    require_retention_days: Option<u32>,
    #[command(flatten)]
    s3: S3Args,
}

pub async fn run(args: VerifyArgs) -> Result<bool, String> {
    let verifier = read_trusted_key(&args.trusted_key)?;
    let s3 = S3Options { endpoint: args.s3.s3_endpoint.clone(), region: args.s3.s3_region.clone(), force_path_style: None };
    let store = auditum_store::open(&args.store, &s3).await.map_err(|error| error.to_string())?;
    let mut options = verify::Options::default();
    if let Some(path) = &args.since_checkpoint {
        options.since_checkpoint =
            Some(std::fs::read_to_string(path).map_err(|error| format!("--since-checkpoint {}: {error}", path.display()))?);
    }
    options.allow_empty = args.allow_empty;
    options.require_retention_days = args.require_retention_days;
    if let Some(text) = &args.as_of {
        let as_of = auditum_proto::convert::parse_timestamp(text).and_then(|time| auditum_proto::convert::timestamp_micros(&time));
        options.as_of_micros = Some(as_of.map_err(|error| format!("--as-of {text:?}: {error}"))?);
    }
    if let Some(parallelism) = args.parallelism {
        options.parallelism = parallelism;
    }
    let started = std::time::Instant::now();
    let last_draw = std::sync::Mutex::new(std::time::Instant::now() - Duration::from_secs(1));
    let quiet = args.quiet;
    let progress = |progress: &verify::Progress| {
        let mut last = last_draw.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if quiet || (last.elapsed() < Duration::from_millis(200) && progress.entries_checked < progress.entries_total) {
            return;
        }
        *last = std::time::Instant::now();
        let rate = progress.events_checked as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\rverifying: {}/{} batches, {} events ({rate:.0} events/s)   ",
            progress.entries_checked, progress.entries_total, progress.events_checked
        );
        let _ = std::io::stderr().flush();
    };
    let report =
        verify::verify_log_with(store.as_ref(), &args.log, &verifier, &options, progress).await.map_err(|error| error.to_string())?;
    if !quiet {
        eprintln!();
    }
    for problem in &report.problems {
        println!("PROBLEM {problem}");
    }
    for warning in &report.warnings {
        println!("WARNING {warning}");
    }
    for object in &report.expired {
        println!("EXPIRED {object}: gone after its retain_until");
    }
    println!("{} in {:.1}s", report.summary(), started.elapsed().as_secs_f64());
    Ok(report.ok())
}
