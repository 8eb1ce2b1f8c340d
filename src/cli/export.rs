//! `auditum export`: a tenant's events to a file, with the summary's hash checked and the
//! summary (rows, SHA-256, checkpoint) saved beside it.

use super::args::{ConnectArgs, FilterArgs};
use super::progress::ProgressLine;
use auditum_client::export::download;
use auditum_proto::pb;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// jsonl, csv or parquet.
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// The output file; the summary is written beside it as FILE.summary.json.
    #[arg(long)]
    out: PathBuf,
    /// Also export events not yet sealed (not covered by the summary's checkpoint).
    #[arg(long)]
    include_unsealed: bool,
    /// Encrypted fields as stored (`auditum:enc:v1:…`), not decrypted: the values the leaf
    /// hashes cover.
    #[arg(long)]
    raw: bool,
}

pub async fn run(args: ExportArgs) -> Result<bool, String> {
    let filter = args.filter.to_filter()?;
    let format = match args.format.as_str() {
        "jsonl" => pb::ExportFormat::Jsonl,
        "csv" => pb::ExportFormat::Csv,
        "parquet" => pb::ExportFormat::Parquet,
        other => return Err(format!("--format {other:?}: use jsonl, csv or parquet")),
    };
    let request = pb::ExportRequest { filter: Some(filter), format: format as i32, include_unsealed: args.include_unsealed, raw: args.raw };
    let started = std::time::Instant::now();
    let mut line = ProgressLine::new();
    let progress = |bytes: u64| {
        line.show(false, || {
            let rate = bytes as f64 / started.elapsed().as_secs_f64().max(0.001) / 1e6;
            format!("exporting: {:.1} MB received, {rate:.1} MB/s, {:.0?} elapsed", bytes as f64 / 1e6, started.elapsed())
        })
    };
    let downloaded = download(args.connect.channel().await?, request, &args.out, progress).await;
    line.finish();
    let downloaded = downloaded.map_err(|error| error.to_string())?;
    let summary = &downloaded.summary;
    let summary_path = PathBuf::from(format!("{}.summary.json", args.out.display()));
    let summary_json = serde_json::json!({
        "rows": summary.rows,
        "unsealed_rows": summary.unsealed_rows,
        "sha256": summary.sha256,
        "bytes": downloaded.bytes,
        "format": args.format,
        "checkpoint": summary.checkpoint,
    });
    std::fs::write(&summary_path, format!("{summary_json:#}\n")).map_err(|error| format!("{}: {error}", summary_path.display()))?;
    eprintln!(
        "exported {} rows ({} bytes, sha256 {}) to {} in {:.1?}; summary and checkpoint in {}",
        summary.rows,
        downloaded.bytes,
        summary.sha256,
        args.out.display(),
        started.elapsed(),
        summary_path.display()
    );
    Ok(true)
}
