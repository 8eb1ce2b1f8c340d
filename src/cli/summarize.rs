//! `auditum summarize`: counts of a tenant's events by dimension and time bucket, as a table or
//! JSON lines.

use super::args::{ConnectArgs, FilterArgs};
use super::query::rfc3339;
use auditum_proto::pb;
use clap::Args;

#[derive(Args)]
pub struct SummarizeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Up to two dimensions, comma-separated: action, actor_id, actor_type, target_type,
    /// target_id, outcome, service, source_ip.
    #[arg(long, value_delimiter = ',')]
    by: Vec<String>,
    /// Time bucket of occurred_at (UTC): hour, day, week (ISO, from Monday) or month; none: one
    /// bucket.
    #[arg(long, default_value = "none", value_parser = ["none", "hour", "day", "week", "month"])]
    bucket: String,
    /// Groups kept per bucket, the largest (default 100, at most 10000).
    #[arg(long, default_value_t = 0)]
    limit: u32,
    /// One JSON object per row.
    #[arg(long)]
    json: bool,
}

fn dimension(name: &str) -> Result<pb::SummaryDimension, String> {
    let value = pb::SummaryDimension::from_str_name(&format!("SUMMARY_DIMENSION_{}", name.trim().to_ascii_uppercase()))
        .filter(|value| *value != pb::SummaryDimension::Unspecified);
    value.ok_or_else(|| {
        format!("--by: unknown dimension {name:?} (action, actor_id, actor_type, target_type, target_id, outcome, service, source_ip)")
    })
}

pub async fn run(args: SummarizeArgs) -> Result<bool, String> {
    let group_by = args.by.iter().map(|name| dimension(name).map(|value| value as i32)).collect::<Result<Vec<_>, _>>()?;
    let bucket = match args.bucket.as_str() {
        "hour" => pb::TimeBucket::Hour,
        "day" => pb::TimeBucket::Day,
        "week" => pb::TimeBucket::Week,
        "month" => pb::TimeBucket::Month,
        _ => pb::TimeBucket::Unspecified,
    };
    let request = pb::SummarizeRequest { filter: Some(args.filter.to_filter()?), group_by, bucket: bucket as i32, limit: args.limit };
    let mut client = pb::query_service_client::QueryServiceClient::new(args.connect.channel().await?);
    let response = client.summarize(request).await.map_err(|status| format!("summarize: {}", status.message()))?.into_inner();
    if args.json {
        for row in &response.rows {
            let mut object = serde_json::Map::new();
            object.insert("bucket_start".into(), rfc3339(row.bucket_start.as_ref()).into());
            for (name, key) in args.by.iter().zip(&row.keys) {
                object.insert(name.trim().to_string(), key.clone().into());
            }
            object.insert("count".into(), row.count.into());
            println!("{}", serde_json::Value::Object(object));
        }
    } else {
        let mut header = format!("{:<27}", "BUCKET_START");
        for name in &args.by {
            header.push_str(&format!(" {:<28}", name.trim().to_ascii_uppercase()));
        }
        println!("{header} COUNT");
        for row in &response.rows {
            let mut line = format!("{:<27}", rfc3339(row.bucket_start.as_ref()));
            for key in &row.keys {
                line.push_str(&format!(" {:<28}", if key.is_empty() { "-" } else { key }));
            }
            println!("{line} {}", row.count);
        }
    }
    eprintln!(
        "{} events{}",
        response.total_events,
        if response.truncated {
            format!("; some buckets had more groups than --limit {}", if args.limit == 0 { 100 } else { args.limit })
        } else {
            String::new()
        }
    );
    Ok(true)
}
