//! `auditum proof` fetches an event's proof; `auditum verify-proof` checks a saved one offline.

use super::args::{ConnectArgs, read_trusted_key};
use auditum_client::proof::{EventKey, fetch, verify};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ProofArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Log name (default: default).
    #[arg(long, default_value = "")]
    log: String,
    /// The event's seq.
    #[arg(long, conflicts_with = "event_id", required_unless_present = "event_id")]
    seq: Option<u64>,
    /// The event's id.
    #[arg(long)]
    event_id: Option<String>,
    /// Write the proof here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyProofArgs {
    /// The saved proof.
    file: PathBuf,
    /// Pinned verifier key (`name+id+key`) or a file holding it.
    #[arg(long)]
    trusted_key: String,
}

pub async fn run(args: ProofArgs) -> Result<bool, String> {
    let key = match (args.seq, args.event_id) {
        (Some(seq), _) => EventKey::Seq(seq),
        (None, Some(id)) => EventKey::Id(id),
        (None, None) => return Err("give --seq or --event-id".into()),
    };
    let proof_json = fetch(args.connect.channel().await?, &args.log, key).await.map_err(|error| error.to_string())?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &proof_json).map_err(|error| format!("{}: {error}", path.display()))?;
            eprintln!("saved the proof to {}", path.display());
        }
        None => print!("{proof_json}"),
    }
    Ok(true)
}

pub fn verify_saved(args: VerifyProofArgs) -> Result<bool, String> {
    let verifier = read_trusted_key(&args.trusted_key)?;
    let text = std::fs::read_to_string(&args.file).map_err(|error| format!("{}: {error}", args.file.display()))?;
    match verify(&text, &verifier) {
        Ok(verified) => {
            println!(
                "OK: event seq {} (id {}, tenant {}) is in batch {} of log {}, covered by checkpoint {} of {} signed by {}",
                verified.event.seq,
                verified.event.id,
                verified.event.tenant_id,
                verified.entry.index,
                verified.entry.log,
                verified.checkpoint.size,
                verified.checkpoint.origin,
                verifier.name
            );
            Ok(true)
        }
        Err(error) => {
            println!("REJECTED: {error}");
            Ok(false)
        }
    }
}
