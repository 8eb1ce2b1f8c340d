//! `auditum append`: one event from flags, or JSON lines from a file or stdin, sent through the
//! SDK's durable path (`AuditClient::log_durable_each`): ids assigned before the first try,
//! transient failures retried, each result printed once the server has it.

use super::args::ConnectArgs;
use auditum_client::event_json::event_from_json;
use auditum_client::{AuditClient, Event, Options};
use auditum_proto::convert::{json_to_struct, now_timestamp, parse_actor_type, parse_outcome, parse_timestamp};
use auditum_proto::pb;
use clap::Args;
use std::io::BufRead;

#[derive(Args)]
pub struct AppendArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// JSON lines, one event per line ('-' for stdin); see `auditum_client::event_json` for the shape.
    #[arg(long, conflicts_with_all = ["tenant", "action", "actor_id"])]
    file: Option<String>,
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    actor_id: Option<String>,
    /// user, service, api_key, system or anonymous.
    #[arg(long)]
    actor_type: Option<String>,
    #[arg(long)]
    actor_name: Option<String>,
    #[arg(long)]
    target_type: Option<String>,
    #[arg(long)]
    target_id: Option<String>,
    #[arg(long)]
    target_name: Option<String>,
    /// success, failure or denied.
    #[arg(long, default_value = "success")]
    outcome: String,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    source_ip: Option<String>,
    #[arg(long)]
    request_id: Option<String>,
    /// RFC 3339; default now.
    #[arg(long)]
    occurred_at: Option<String>,
    /// JSON object.
    #[arg(long)]
    metadata: Option<String>,
    /// JSON object.
    #[arg(long)]
    before: Option<String>,
    /// JSON object.
    #[arg(long)]
    after: Option<String>,
    /// Answer only once the events are sealed into a committed batch.
    #[arg(long)]
    wait_for_seal: bool,
}

fn parse_json_object(flag: &str, text: &Option<String>) -> Result<Option<prost_types::Struct>, String> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(fields)) => Ok(Some(json_to_struct(&fields))),
        Ok(_) => Err(format!("--{flag}: expected a JSON object")),
        Err(error) => Err(format!("--{flag}: {error}")),
    }
}

fn event_from_flags(args: &AppendArgs) -> Result<pb::AuditEvent, String> {
    let occurred_at = match &args.occurred_at {
        Some(text) => parse_timestamp(text).map_err(|error| format!("--occurred-at: {error}"))?,
        None => now_timestamp(),
    };
    Ok(pb::AuditEvent {
        subject_id: String::new(),
        id: args.id.clone().unwrap_or_default(),
        tenant_id: args.tenant.clone().unwrap_or_default(),
        occurred_at: Some(occurred_at),
        action: args.action.clone().unwrap_or_default(),
        actor: Some(pb::Actor {
            id: args.actor_id.clone().unwrap_or_default(),
            r#type: parse_actor_type(args.actor_type.as_deref().unwrap_or("")).map_err(|error| format!("--actor-type: {error}"))?,
            name: args.actor_name.clone().unwrap_or_default(),
        }),
        target: Some(pb::Target {
            r#type: args.target_type.clone().unwrap_or_default(),
            id: args.target_id.clone().unwrap_or_default(),
            name: args.target_name.clone().unwrap_or_default(),
        }),
        outcome: Some(pb::Outcome {
            result: parse_outcome(&args.outcome).map_err(|error| format!("--outcome: {error}"))?,
            error_code: String::new(),
            reason: args.reason.clone().unwrap_or_default(),
        }),
        context: Some(pb::Context {
            request_id: args.request_id.clone().unwrap_or_default(),
            source_ip: args.source_ip.clone().unwrap_or_default(),
            ..Default::default()
        }),
        before: parse_json_object("before", &args.before)?,
        after: parse_json_object("after", &args.after)?,
        metadata: parse_json_object("metadata", &args.metadata)?,
    })
}

fn read_events(path: &str) -> Result<Vec<pb::AuditEvent>, String> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(|error| format!("{path}: {error}"))?))
    };
    let mut events = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|error| format!("{path}: {error}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|error| format!("{path}:{}: {error}", number + 1))?;
        events.push(event_from_json(&value, now_timestamp()).map_err(|error| format!("{path}:{}: {error}", number + 1))?);
    }
    Ok(events)
}

pub async fn run(args: AppendArgs) -> Result<bool, String> {
    let events = match &args.file {
        Some(path) => read_events(path)?,
        None => vec![event_from_flags(&args)?],
    };
    // Connecting first keeps the CLI's fail-fast "cannot connect" error.
    let channel = args.connect.channel().await?;
    // The server's verdict, word for word, rather than the SDK's local copy of its rules.
    let options = Options { validate_locally: false, ..Options::default() };
    let client = AuditClient::with_channel(channel, options).await.map_err(|error| error.to_string())?;
    let print = |results: &[pb::AppendResult]| {
        for result in results {
            println!("seq={} id={} log={} duplicate={}", result.seq, result.id, result.log, result.duplicate);
        }
    };
    let events = events.into_iter().map(Event::from).collect();
    let sent = client.log_durable_each(events, args.wait_for_seal, print).await.map_err(|error| error.to_string());
    client.close(std::time::Duration::from_secs(1)).await.map_err(|error| error.to_string())?;
    sent?;
    Ok(true)
}
