//! Downloading an export: chunks go to `FILE.partial` while their SHA-256 is computed; the file
//! takes its name only once the summary arrived and the hashes agree.

use crate::{AuthChannel, Error, Result};
use auditum_proto::pb;
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A completed download.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub summary: pb::ExportSummary,
    pub bytes: u64,
}

/// Where a download is written until it is complete and checked.
pub fn partial_path(out: &Path) -> PathBuf {
    out.with_extension(format!("{}.partial", out.extension().and_then(|ext| ext.to_str()).unwrap_or("out")))
}

/// Streams an export into `out`; `progress` sees the bytes received so far after each chunk.
pub async fn download(channel: AuthChannel, request: pb::ExportRequest, out: &Path, mut progress: impl FnMut(u64)) -> Result<Downloaded> {
    let mut client = pb::query_service_client::QueryServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let mut stream = client.export(request).await.map_err(Error::rpc("Export"))?.into_inner();
    let partial = partial_path(out);
    let file = std::fs::File::create(&partial).map_err(Error::file(&partial))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut hasher = sha2::Sha256::new();
    let mut bytes = 0u64;
    let mut summary = None;
    while let Some(message) = stream.message().await.map_err(Error::rpc("Export"))? {
        match message.item {
            Some(pb::export_response::Item::Chunk(chunk)) => {
                hasher.update(&chunk);
                bytes += chunk.len() as u64;
                writer.write_all(&chunk).map_err(Error::file(&partial))?;
                progress(bytes);
            }
            Some(pb::export_response::Item::Summary(done)) => summary = Some(done),
            None => {}
        }
    }
    writer.flush().map_err(Error::file(&partial))?;
    let file = writer.into_inner().map_err(|error| Error::File { path: partial.display().to_string(), reason: error.to_string() })?;
    file.sync_all().map_err(Error::file(&partial))?;
    let Some(summary) = summary else {
        return Err(Error::Invalid(format!("the export ended without a summary; {} is incomplete", partial.display())));
    };
    let digest = hex::encode(hasher.finalize());
    if digest != summary.sha256 {
        return Err(Error::Invalid(format!(
            "the received bytes hash to {digest}, the summary says {}; {} is corrupt",
            summary.sha256,
            partial.display()
        )));
    }
    std::fs::rename(&partial, out).map_err(Error::file(out))?;
    Ok(Downloaded { summary, bytes })
}
