//! `auditum keyring new-kek|rotate-kek` (DESIGN §14): the key-encryption key. Rotation re-wraps
//! every tenant secret and data key in the keyring and touches nothing in the archive.

use super::progress::ProgressLine;
use auditum_keyring::Kek;
use auditum_server::config::{Config, LogConfig};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum KeyringCommand {
    /// Write a new random key-encryption key (32 bytes, mode 0600) to a new file.
    NewKek {
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-wrap every key of the configured logs' keyrings under a new KEK, with the server
    /// stopped. Idempotent: a run cut off half way is finished by running it again (until then
    /// the server refuses to start). Then point kek_file (or kek_env) at the new key and start it.
    RotateKek(RotateArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    /// The server's config file (its keyring and current kek_file or kek_env).
    #[arg(long, env = "AUDITUM_CONFIG")]
    config: PathBuf,
    /// The new key-encryption key (e.g. from `auditum keyring new-kek`).
    #[arg(long)]
    new_kek_file: PathBuf,
    /// Only this log (default: every log with a keyring).
    #[arg(long)]
    log: Option<String>,
}

fn current_kek(log: &LogConfig) -> Result<Kek, String> {
    let kek = log.kek().ok_or_else(|| format!("log {}: a keyring needs kek_file or kek_env", log.name))?;
    kek.map_err(|error| format!("log {}: {error}", log.name))
}

pub async fn run(command: KeyringCommand) -> Result<bool, String> {
    match command {
        KeyringCommand::NewKek { out } => {
            let kek = Kek::write_new_file(&out).map_err(|error| error.to_string())?;
            println!("wrote a new key-encryption key to {} (fingerprint {}); keep a copy offline", out.display(), kek.fingerprint());
            Ok(true)
        }
        KeyringCommand::RotateKek(args) => rotate(args).await,
    }
}

async fn rotate(args: RotateArgs) -> Result<bool, String> {
    let config = Config::from_file(&args.config).map_err(|error| error.to_string())?;
    let new = Kek::from_file(&args.new_kek_file).map_err(|error| error.to_string())?;
    // A running server would create keys under the old KEK meanwhile, and read re-wrapped ones
    // with it: rotation takes the data directory's lock, as the server does.
    let _server_stopped = auditum_engine::dir_lock::DirLock::acquire(&config.data_dir)
        .map_err(|error| format!("{error}; stop the server (it holds the lock) and run this again"))?;
    let logs: Vec<LogConfig> = config
        .resolved_logs()
        .into_iter()
        .filter(|log| log.keyring.is_some() && args.log.as_ref().is_none_or(|name| &log.name == name))
        .collect();
    if logs.is_empty() {
        return Err(match &args.log {
            Some(name) => format!("--log: no log named {name:?} with a keyring in {}", args.config.display()),
            None => format!("no log in {} has a keyring", args.config.display()),
        });
    }
    for log in logs {
        let old = current_kek(&log)?;
        if old.fingerprint() == new.fingerprint() {
            return Err(format!(
                "log {}: --new-kek-file holds the kek already configured ({}): give the new key",
                log.name,
                new.fingerprint()
            ));
        }
        let url = log.keyring.clone().unwrap_or_default();
        let store =
            auditum_store::open(&url, &config.s3_options()).await.map_err(|error| format!("log {}: keyring {url}: {error}", log.name))?;
        eprintln!("log {}: re-wrapping keyring {url} from kek {} to kek {}", log.name, old.fingerprint(), new.fingerprint());
        let mut line = ProgressLine::new();
        let report = auditum_keyring::rotate_kek(store.as_ref(), &log.name, &old, &new, |done, total| {
            line.show(done == total, || format!("  {done}/{total} keys re-wrapped or checked"))
        })
        .await
        .map_err(|error| format!("log {}: {error}", log.name))?;
        line.finish();
        println!(
            "log {}: {} keys re-wrapped, {} already under the new kek {}",
            log.name,
            report.rewrapped,
            report.already_new,
            new.fingerprint()
        );
    }
    println!("now set kek_file = {:?} (or kek_env) and restart the server", args.new_kek_file.display().to_string());
    Ok(true)
}
