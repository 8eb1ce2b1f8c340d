//! `auditum lifecycle plan|apply --log L` (DESIGN §12): the bucket lifecycle rules for a log's
//! batches (archive transition, expiry after retention), from its config. `plan` prints them;
//! `apply` writes them into the bucket, keeping every other rule, and refuses a result that
//! `serve` would refuse.

use auditum_server::config::{Config, LogConfig};
use auditum_store::S3Store;
use auditum_store::lifecycle::{self, LifecyclePlan};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum LifecycleCommand {
    /// Print the log's rules as `aws s3api put-bucket-lifecycle-configuration` takes them.
    Plan(LifecycleArgs),
    /// Write the log's rules into its bucket (other rules are kept).
    Apply(LifecycleArgs),
}

#[derive(Args)]
pub struct LifecycleArgs {
    /// The server's config file.
    #[arg(long, env = "AUDITUM_CONFIG")]
    config: PathBuf,
    /// The log.
    #[arg(long, default_value = "default")]
    log: String,
}

fn load(args: &LifecycleArgs) -> Result<(Config, LogConfig, String), String> {
    let config = Config::from_file(&args.config).map_err(|error| error.to_string())?;
    let log = config
        .resolved_logs()
        .into_iter()
        .find(|log| log.name == args.log)
        .ok_or_else(|| format!("--log: no log named {:?} in {}", args.log, args.config.display()))?;
    let url = log.store.clone().unwrap_or_else(|| config.default_store_url());
    if !url.starts_with("s3://") {
        return Err(format!("log {} is stored at {url}: lifecycle rules are for S3 buckets", log.name));
    }
    Ok((config, log, url))
}

fn plan_for(log: &LogConfig, url: &str) -> Result<LifecyclePlan, String> {
    let (_, store_prefix) = auditum_store::parse_s3_url(url).map_err(|error| error.to_string())?;
    Ok(LifecyclePlan {
        keys: auditum_engine::log::log_keys(&log.name),
        store_prefix,
        archive: log.archive(),
        expire_after_days: log.expire_after_days,
    })
}

fn summary(log: &LogConfig, plan: &LifecyclePlan) -> String {
    let retention =
        log.retention().map(|policy| format!("{} days ({:?})", policy.days, policy.mode).to_lowercase()).unwrap_or("none".into());
    let archive = plan.archive.map(|(days, class)| format!("to {class} after {days} days")).unwrap_or("never".into());
    let expire = plan.expire_after_days.map(|days| format!("after {days} days")).unwrap_or("never".into());
    format!("log {}: batches under {}; retention {retention}; archived {archive}; expired {expire}", log.name, plan.batches_prefix())
}

pub async fn run(command: LifecycleCommand) -> Result<bool, String> {
    match command {
        LifecycleCommand::Plan(args) => {
            let (_, log, url) = load(&args)?;
            let plan = plan_for(&log, &url)?;
            eprintln!("{}", summary(&log, &plan));
            if plan.rules().is_empty() {
                eprintln!("no rules: set archive_after_days or expire_after_days on the log to add some");
            }
            let text = serde_json::to_string_pretty(&plan.to_json()).map_err(|error| error.to_string())?;
            println!("{text}");
            Ok(true)
        }
        LifecycleCommand::Apply(args) => {
            let (config, log, url) = load(&args)?;
            let plan = plan_for(&log, &url)?;
            eprintln!("{}", summary(&log, &plan));
            let store = S3Store::open(&url, &config.s3_options()).await.map_err(|error| error.to_string())?;
            let existing = store.lifecycle_rules().await.map_err(|error| error.to_string())?;
            let merged = lifecycle::merged(&existing, &plan);
            let problems = lifecycle::problems(&merged, &plan.store_prefix, &plan.keys, log.retention_days, chrono::Utc::now());
            if !problems.is_empty() {
                return Err(format!("not applied: the bucket's rules would still be refused by serve: {}", problems.join("; ")));
            }
            let kept = merged.len() - plan.rules().len();
            store.put_lifecycle_rules(merged).await.map_err(|error| error.to_string())?;
            println!("bucket {}: wrote {} rules for log {} (other rules kept: {kept})", store.bucket(), plan.rules().len(), log.name);
            Ok(true)
        }
    }
}
