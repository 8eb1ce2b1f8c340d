//! `auditum erase --tenant T (--subject S | --all) --reason R` (DESIGN §14): crypto-shredding
//! through the server's AdminService (scope `admin`), recorded in the archive as
//! `auditum.erasure`.

use super::args::ConnectArgs;
use super::hold::status_text;
use auditum_proto::pb;
use auditum_proto::pb::admin_service_client::AdminServiceClient;
use clap::Args;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("whose").required(true).args(["subject", "all"]))]
pub struct EraseArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// The data subject (the `subject_id`, or `actor.id`, its events were logged with).
    #[arg(long)]
    subject: Option<String>,
    /// Every key of the tenant (a customer who leaves).
    #[arg(long)]
    all: bool,
    /// Why (a ticket or request number); recorded with the erasure, unlike the subject.
    #[arg(long)]
    reason: String,
}

pub async fn run(args: EraseArgs) -> Result<bool, String> {
    let mut client = AdminServiceClient::new(args.connect.channel().await?);
    match &args.subject {
        Some(subject) => {
            let request = pb::EraseSubjectRequest { tenant_id: args.tenant.clone(), subject_id: subject.clone(), reason: args.reason };
            let answer = client.erase_subject(request).await.map_err(status_text)?.into_inner();
            if answer.kids.is_empty() {
                println!("log {}, tenant {}: the subject has no key (nothing of it was encrypted); recorded", answer.log, args.tenant);
            } else {
                println!(
                    "log {}, tenant {}: erased {} key(s) ({}); the subject's encrypted fields now read \"[erased]\"",
                    answer.log,
                    args.tenant,
                    answer.kids.len(),
                    answer.kids.join(", ")
                );
            }
        }
        None => {
            let request = pb::EraseTenantRequest { tenant_id: args.tenant.clone(), reason: args.reason };
            let answer = client.erase_tenant(request).await.map_err(status_text)?.into_inner();
            println!(
                "log {}, tenant {}: erased the tenant secret and {} data key(s); every encrypted field of the tenant now reads \"[erased]\"",
                answer.log, args.tenant, answer.keys_erased
            );
        }
    }
    Ok(true)
}
