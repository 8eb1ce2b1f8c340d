//! `auditum restore` (DESIGN §12): asks the server to restore the archived batches of a range
//! (Glacier Flexible Retrieval, Deep Archive), so queries, exports and proofs can read them.

use super::args::ConnectArgs;
use super::hold::{RangeArgs, status_text};
use auditum_proto::pb;
use auditum_proto::pb::admin_service_client::AdminServiceClient;
use clap::Args;

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    range: RangeArgs,
    /// How long the restored copies stay readable (1 to 365 days).
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// S3 retrieval tier: expedited (minutes, Glacier only), standard (hours) or bulk (cheapest).
    #[arg(long, default_value = "standard")]
    tier: String,
}

pub async fn run(args: RestoreArgs) -> Result<bool, String> {
    let tier = match args.tier.to_ascii_lowercase().as_str() {
        "expedited" => pb::RestoreTier::Expedited,
        "standard" => pb::RestoreTier::Standard,
        "bulk" => pb::RestoreTier::Bulk,
        other => return Err(format!("--tier: {other:?} is not expedited, standard or bulk")),
    };
    let scope = args.range.to_scope()?;
    let mut client = AdminServiceClient::new(args.connect.channel().await?);
    let request = pb::RestoreBatchesRequest { scope: Some(scope), days: args.days, tier: tier as i32 };
    let answer = client.restore_batches(request).await.map_err(status_text)?.into_inner();
    for object in &answer.started {
        println!("restore requested: {object}");
    }
    if answer.started_count > answer.started.len() as u64 {
        println!("… and {} more", answer.started_count - answer.started.len() as u64);
    }
    let gone = if answer.gone > 0 { format!(", {} expired", answer.gone) } else { String::new() };
    println!(
        "{} restores started, {} already in progress, {} already restored, {} batches not archived{gone}; restored copies stay readable for {} days",
        answer.started_count, answer.in_progress, answer.already_restored, answer.not_archived, args.days
    );
    if !answer.started.is_empty() || answer.in_progress > 0 {
        eprintln!(
            "reads of these batches answer FAILED_PRECONDITION until their restores finish (minutes to hours, by tier); run this again to see where they stand"
        );
    }
    Ok(true)
}
