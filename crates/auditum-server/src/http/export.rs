//! Export over HTTP streams the file itself (JSONL, CSV or Parquet), not JSON messages. Its
//! summary (rows, SHA-256, checkpoint) comes after the last byte, as gRPC's last message does:
//! in HTTP trailers for clients that read them (`TE: trailers`), and from
//! `GET /api/v1/exports/{id}/summary` for those that cannot (browsers), `id` being the
//! `auditum-export-id` response header. Summaries are kept in memory, for the same key only.

use super::HttpApi;
use super::error::ApiError;
use super::rpc::{grpc_request, json_response};
use auditum_proto::pb;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tonic::Status;

/// Summaries kept: enough for every export of a busy console, small in memory.
const KEPT_SUMMARIES: usize = 1024;
/// Summaries kept per key: one key exporting in a loop cannot push out everyone else's.
const KEPT_PER_KEY: usize = 64;
/// A summary is fetched right after its file; an hour is generous.
const SUMMARY_LIFETIME: Duration = Duration::from_secs(3600);

pub const EXPORT_ID_HEADER: &str = "auditum-export-id";

enum Outcome {
    Running,
    Done(pb::ExportSummary),
    Failed(Status),
}

struct Kept {
    id: String,
    /// The key the export was made with (`anonymous` in development mode): only it reads the summary.
    caller: String,
    at: Instant,
    outcome: Outcome,
}

#[derive(Default)]
pub struct ExportSummaries {
    kept: Mutex<VecDeque<Kept>>,
}

/// The key a request is made with, or the refusal to answer.
fn caller(api: &HttpApi, headers: &HeaderMap) -> Result<String, Status> {
    Ok(super::caller(&api.access, headers)?.key_id().to_string())
}

impl ExportSummaries {
    fn begin(&self, id: &str, caller: String) {
        let Ok(mut kept) = self.kept.lock() else { return };
        while kept.len() >= KEPT_SUMMARIES || kept.front().is_some_and(|oldest| oldest.at.elapsed() > SUMMARY_LIFETIME) {
            kept.pop_front();
        }
        if kept.iter().filter(|entry| entry.caller == caller).count() >= KEPT_PER_KEY
            && let Some(oldest_of_key) = kept.iter().position(|entry| entry.caller == caller)
        {
            kept.remove(oldest_of_key);
        }
        kept.push_back(Kept { id: id.to_string(), caller, at: Instant::now(), outcome: Outcome::Running });
    }

    fn finish(&self, id: &str, outcome: Outcome) {
        let Ok(mut kept) = self.kept.lock() else { return };
        if let Some(entry) = kept.iter_mut().find(|entry| entry.id == id) {
            entry.outcome = outcome;
        }
    }

    fn lookup(&self, id: &str, caller: &str) -> Result<pb::ExportSummary, Status> {
        let unknown = || Status::not_found(format!("export {id}: no such export for this key (summaries are kept for an hour)"));
        let kept = self.kept.lock().map_err(|_| Status::internal("export summaries: lock poisoned"))?;
        let entry = kept.iter().find(|entry| entry.id == id && entry.caller == caller).ok_or_else(unknown)?;
        if entry.at.elapsed() > SUMMARY_LIFETIME {
            return Err(unknown());
        }
        match &entry.outcome {
            Outcome::Running => Err(Status::failed_precondition(format!("export {id}: still running; read the whole file first"))),
            Outcome::Done(summary) => Ok(summary.clone()),
            Outcome::Failed(status) => Err(status.clone()),
        }
    }
}

fn file_type(format: i32) -> (&'static str, &'static str) {
    match pb::ExportFormat::try_from(format) {
        Ok(pb::ExportFormat::Csv) => ("text/csv; charset=utf-8", "csv"),
        Ok(pb::ExportFormat::Parquet) => ("application/vnd.apache.parquet", "parquet"),
        _ => ("application/x-ndjson", "jsonl"),
    }
}

fn trailers(summary: &pb::ExportSummary) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            trailers.insert(HeaderName::from_static(name), value);
        }
    };
    set("auditum-export-rows", summary.rows.to_string());
    set("auditum-export-unsealed-rows", summary.unsealed_rows.to_string());
    set("auditum-export-sha256", summary.sha256.clone());
    // A note is several lines: its lines joined by spaces would not verify, so it is base64.
    set("auditum-export-checkpoint-base64", base64_standard(summary.checkpoint.as_bytes()));
    trailers
}

fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub async fn respond(api: &HttpApi, headers: &HeaderMap, peer: SocketAddr, request: pb::ExportRequest) -> Result<Response, ApiError> {
    use pb::query_service_server::QueryService;
    let (content_type, extension) = file_type(request.format);
    let tenant: String = request
        .filter
        .as_ref()
        .map(|filter| filter.tenant_id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect())
        .unwrap_or_default();
    let mut items = api.query.export(grpc_request(headers, peer, request)).await?.into_inner();
    // Wait for the first item so that a refusal found only once the scan starts is still a
    // status, not a cut file.
    let first = match items.next().await {
        Some(Err(status)) => return Err(status.into()),
        first => first,
    };
    let id = uuid::Uuid::now_v7().to_string();
    api.exports.begin(&id, caller(api, headers)?);
    let summaries = api.exports.clone();
    let export_id = id.clone();
    let frames = futures::stream::iter(first).chain(items).map(move |item| match item {
        Ok(pb::ExportResponse { item: Some(pb::export_response::Item::Chunk(bytes)) }) => Ok(Frame::data(bytes)),
        Ok(pb::ExportResponse { item: Some(pb::export_response::Item::Summary(summary)) }) => {
            let frame = Frame::trailers(trailers(&summary));
            summaries.finish(&export_id, Outcome::Done(summary));
            Ok(frame)
        }
        Ok(pb::ExportResponse { item: None }) => Ok(Frame::data(Bytes::new())),
        Err(status) => {
            tracing::warn!(export_id = %export_id, code = ?status.code(), message = status.message(), "export over http failed mid-stream: the body is cut");
            summaries.finish(&export_id, Outcome::Failed(status.clone()));
            // An error frame makes hyper abort the body: the client sees a cut, never a short file.
            Err(std::io::Error::other(status.message().to_string()))
        }
    });
    let filename = format!("auditum-export-{}.{extension}", if tenant.is_empty() { "events" } else { &tenant });
    let mut response = Body::new(StreamBody::new(frames)).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        response_headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response_headers.insert(HeaderName::from_static(EXPORT_ID_HEADER), value);
    }
    response_headers.insert(
        header::TRAILER,
        HeaderValue::from_static(
            "auditum-export-rows, auditum-export-unsealed-rows, auditum-export-sha256, auditum-export-checkpoint-base64",
        ),
    );
    response_headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPORT_ID_HEADER));
    Ok(response)
}

/// `GET /api/v1/exports/{id}/summary`: the ExportSummary of a finished export, as JSON.
pub async fn summary(State(api): State<HttpApi>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let answer = || -> Result<Response, ApiError> {
        let summary = api.exports.lookup(&id, &caller(&api, &headers)?)?;
        let descriptor = api
            .mapping
            .message("auditum.v1.ExportSummary")
            .ok_or_else(|| Status::internal("api descriptors: no auditum.v1.ExportSummary"))?;
        Ok(json_response(api.mapping.encode(&descriptor, &summary)?))
    };
    answer().unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(summaries: &ExportSummaries, id: &str, caller: &str) {
        summaries.begin(id, caller.to_string());
        summaries.finish(id, Outcome::Done(pb::ExportSummary { rows: 1, ..Default::default() }));
    }

    #[test]
    fn summaries_are_the_exporting_keys_and_one_key_cannot_push_out_the_others() {
        let summaries = ExportSummaries::default();
        done(&summaries, "a-0", "alice");
        summaries.begin("running", "alice".to_string());
        assert_eq!(summaries.lookup("a-0", "alice").map(|summary| summary.rows).ok(), Some(1));
        assert_eq!(summaries.lookup("a-0", "mallory").unwrap_err().code(), tonic::Code::NotFound, "another key");
        assert_eq!(summaries.lookup("running", "alice").unwrap_err().code(), tonic::Code::FailedPrecondition);
        summaries.finish("running", Outcome::Failed(Status::unavailable("store down")));
        assert_eq!(summaries.lookup("running", "alice").unwrap_err().code(), tonic::Code::Unavailable, "the export's own error");
        // A flood of one key's exports keeps only its latest KEPT_PER_KEY; alice's stays.
        for index in 0..KEPT_SUMMARIES {
            done(&summaries, &format!("m-{index}"), "mallory");
        }
        assert!(summaries.lookup("a-0", "alice").is_ok());
        assert!(summaries.lookup("m-0", "mallory").is_err());
        assert!(summaries.lookup(&format!("m-{}", KEPT_SUMMARIES - 1), "mallory").is_ok());
    }
}
