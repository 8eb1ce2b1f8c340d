//! `auditum hold set|clear|list` (DESIGN §12): legal holds through the server's AdminService, so
//! each is authenticated (scope `admin`) and recorded in the archive.

use super::args::ConnectArgs;
use super::query::rfc3339;
use auditum_proto::convert::{parse_timestamp, timestamp_micros};
use auditum_proto::pb;
use auditum_proto::pb::admin_service_client::AdminServiceClient;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum HoldCommand {
    /// Put every batch (and its ledger entry) whose events overlap the range under legal hold.
    Set(HoldArgs),
    /// End the active hold with exactly this scope; objects no other hold covers are released.
    Clear(HoldArgs),
    /// The active holds.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Only this log (default: every log the key may see).
        #[arg(long, default_value = "")]
        log: String,
    },
}

/// A log, optionally a tenant, and an occurred_at range.
#[derive(Args, Clone)]
pub struct RangeArgs {
    /// Log name.
    #[arg(long, default_value = "default")]
    pub log: String,
    /// Only batches that may hold this tenant's events (required for a tenant-bound key).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Start of the range (RFC 3339, inclusive).
    #[arg(long)]
    pub since: String,
    /// End of the range (RFC 3339, exclusive).
    #[arg(long)]
    pub until: String,
}

impl RangeArgs {
    pub fn to_scope(&self) -> Result<pb::TimeRangeScope, String> {
        let time = |flag: &str, text: &str| parse_timestamp(text).map_err(|error| format!("--{flag}: {error} (e.g. 2026-07-01T00:00:00Z)"));
        let since = time("since", &self.since)?;
        let until = time("until", &self.until)?;
        if timestamp_micros(&since)? >= timestamp_micros(&until)? {
            return Err("--until must be after --since".into());
        }
        Ok(pb::TimeRangeScope {
            log: self.log.clone(),
            tenant_id: self.tenant.clone().unwrap_or_default(),
            since: Some(since),
            until: Some(until),
        })
    }
}

#[derive(Args)]
pub struct HoldArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    range: RangeArgs,
    /// Why (a case or matter number); recorded with the hold.
    #[arg(long)]
    reason: String,
}

/// A status as one line: its code and the server's message.
pub fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn describe(scope: &pb::TimeRangeScope) -> String {
    let tenant = if scope.tenant_id.is_empty() { "every tenant".to_string() } else { format!("tenant {}", scope.tenant_id) };
    format!("log {}, {tenant}, [{}, {})", scope.log, rfc3339(scope.since.as_ref()), rfc3339(scope.until.as_ref()))
}

pub async fn run(command: HoldCommand) -> Result<bool, String> {
    match command {
        HoldCommand::Set(args) => {
            let scope = args.range.to_scope()?;
            let mut client = AdminServiceClient::new(args.connect.channel().await?);
            let request = pb::SetLegalHoldRequest { scope: Some(scope.clone()), reason: args.reason };
            let answer = client.set_legal_hold(request).await.map_err(status_text)?.into_inner();
            let again =
                if answer.already_active { " (a hold with this scope was already active; its objects were held again)" } else { "" };
            println!(
                "legal hold {} set on {}: {} batch objects and their ledger entries held{again}",
                answer.hold_id,
                describe(&scope),
                answer.batch_objects
            );
            Ok(true)
        }
        HoldCommand::Clear(args) => {
            let scope = args.range.to_scope()?;
            let mut client = AdminServiceClient::new(args.connect.channel().await?);
            let request = pb::ClearLegalHoldRequest { scope: Some(scope.clone()), reason: args.reason };
            let answer = client.clear_legal_hold(request).await.map_err(status_text)?.into_inner();
            println!(
                "legal hold {} cleared on {}: {} batch objects released, {} stay held by other holds",
                answer.hold_ids.join(", "),
                describe(&scope),
                answer.batch_objects,
                answer.still_held
            );
            Ok(true)
        }
        HoldCommand::List { connect, log } => {
            let mut client = AdminServiceClient::new(connect.channel().await?);
            let answer = client.list_legal_holds(pb::ListLegalHoldsRequest { log }).await.map_err(status_text)?.into_inner();
            if answer.holds.is_empty() {
                println!("no active legal holds");
            }
            for hold in answer.holds {
                let set_at = rfc3339(hold.set_at.as_ref());
                println!(
                    "{}  {}  {} batch objects  set {} by {}  reason: {}",
                    hold.hold_id,
                    hold.scope.as_ref().map(describe).unwrap_or_default(),
                    hold.batch_objects,
                    set_at,
                    hold.set_by,
                    hold.reason
                );
            }
            Ok(true)
        }
    }
}
