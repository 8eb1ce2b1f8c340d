//! `auditum query`: a tenant's events as a table, or JSON lines with --json.

use super::args::{ConnectArgs, FilterArgs};
use auditum_client::query::Pager;
use auditum_format::time::rfc3339_micros;
use auditum_proto::convert::{record_of, timestamp_micros};
use clap::Args;

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Stop after this many events.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Events per request (at most 1000).
    #[arg(long, default_value_t = 500)]
    page_size: u32,
    /// Newest first.
    #[arg(long)]
    desc: bool,
    /// One JSON object per line: the stored columns plus sealed, batch_index, log, leaf_hash.
    #[arg(long)]
    json: bool,
    /// Print the pushdown statistics of each page on stderr.
    #[arg(long)]
    stats: bool,
}

/// A wire timestamp as RFC 3339 with microseconds; "" when unset or invalid.
pub fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp.and_then(|time| timestamp_micros(time).ok()).map(rfc3339_micros).unwrap_or_default()
}

pub async fn run(args: QueryArgs) -> Result<bool, String> {
    let filter = args.filter.to_filter()?;
    let mut pager = Pager::new(args.connect.channel().await?, filter, args.desc);
    let mut printed = 0;
    if !args.json {
        print_header();
    }
    while printed < args.limit {
        let page_size = args.page_size.min((args.limit - printed) as u32);
        let Some(response) = pager.next_page(page_size).await.map_err(|error| error.to_string())? else { break };
        if args.stats
            && let Some(stats) = &response.stats
        {
            eprintln!("{stats:?}");
        }
        for stored in &response.events {
            print_event(stored, args.json)?;
            printed += 1;
        }
    }
    if pager.has_more() && !args.json {
        eprintln!("(stopped at --limit {}; more events match)", args.limit);
    }
    Ok(true)
}

/// The table's header line.
pub fn print_header() {
    println!("{:<27} {:>10} {:<28} {:<24} {:<24} {:<8} SEALED", "OCCURRED_AT", "SEQ", "ACTION", "ACTOR", "TARGET", "OUTCOME");
}

/// One event: a table line, or a JSON object with the stored columns plus sealed, batch_index,
/// log and leaf_hash.
pub fn print_event(stored: &auditum_proto::pb::StoredEvent, json: bool) -> Result<(), String> {
    let Some(event) = &stored.event else { return Ok(()) };
    if json {
        let record = record_of(stored).map_err(|error| format!("server sent an event that does not convert: {error}"))?;
        let mut object = record.to_json();
        if let Some(map) = object.as_object_mut() {
            map.insert("sealed".into(), stored.sealed.into());
            map.insert("batch_index".into(), if stored.sealed { stored.batch_index.into() } else { serde_json::Value::Null });
            map.insert("log".into(), stored.log.clone().into());
            map.insert("leaf_hash".into(), hex::encode(&stored.leaf_hash).into());
        }
        println!("{object}");
        return Ok(());
    }
    let actor = event.actor.as_ref().map(|actor| actor.id.clone()).unwrap_or_default();
    let target = event.target.as_ref().map(|target| format!("{}:{}", target.r#type, target.id)).unwrap_or_default();
    let outcome = event.outcome.as_ref().map(|outcome| outcome.result().as_str_name().trim_start_matches("OUTCOME_RESULT_").to_lowercase());
    println!(
        "{:<27} {:>10} {:<28} {:<24} {:<24} {:<8} {}",
        rfc3339(event.occurred_at.as_ref()),
        stored.seq,
        event.action,
        actor,
        target,
        outcome.unwrap_or_default(),
        if stored.sealed { format!("batch {}", stored.batch_index) } else { "unsealed".into() }
    );
    Ok(())
}
