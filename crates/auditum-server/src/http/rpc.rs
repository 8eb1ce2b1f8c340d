//! `POST /api/v1/{Service}/{Method}`: each gRPC method over HTTP with JSON. The body is decoded
//! into the method's request message and handed to the same service implementation the gRPC
//! server runs, with the caller's `Authorization`, request id, user agent and address, so
//! authentication, scopes, tenant binding, limits, errors and meta-audit are the gRPC ones.

use super::HttpApi;
use super::error::{ApiError, error_json};
use super::export;
use crate::MAX_READ_REQUEST_BYTES;
use crate::grpc::{admin::AdminApi, ingest::IngestApi, proof::ProofApi, query::QueryApi};
use auditum_proto::pb;
use auditum_proto::validate::MAX_APPEND_BYTES;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use prost::Message;
use prost_reflect::MessageDescriptor;
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::Status;
use tonic::transport::server::TcpConnectInfo;

/// JSON is wordier than protobuf: a body may be this many times the message limit before the
/// message itself is measured against it.
const JSON_OVERHEAD: usize = 4;

pub async fn handle(
    State(api): State<HttpApi>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match call(&api, peer, &service, &method, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The gRPC request a service implementation sees for this HTTP call.
pub fn grpc_request<T>(headers: &HeaderMap, peer: SocketAddr, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for name in ["authorization", "x-request-id", "user-agent"] {
        let Some(value) = headers.get(name) else { continue };
        // A header that is not text is presented as "", which authentication refuses as malformed.
        let value =
            value.to_str().ok().and_then(|text| text.parse().ok()).unwrap_or_else(|| tonic::metadata::MetadataValue::from_static(""));
        request.metadata_mut().insert(name, value);
    }
    request.extensions_mut().insert(TcpConnectInfo { local_addr: None, remote_addr: Some(peer) });
    request
}

/// The request limit of a service's calls (4 MiB for Append, 256 KiB for the rest) and what
/// the server accepts before answering it: Append's validation names the oversized event up to
/// twice the limit, as over gRPC.
fn message_limits(service: &str) -> (usize, usize) {
    if service == "IngestService" { (MAX_APPEND_BYTES, 2 * MAX_APPEND_BYTES) } else { (MAX_READ_REQUEST_BYTES, MAX_READ_REQUEST_BYTES) }
}

fn check_size(message: &impl Message, (stated, accepted): (usize, usize)) -> Result<(), Status> {
    let size = message.encoded_len();
    if size > accepted {
        return Err(Status::invalid_argument(format!("request: encoded size {size} bytes exceeds the limit of {stated} bytes")));
    }
    Ok(())
}

pub fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// How much of an oversized body is still read (and dropped) before the 413 is sent: a
/// connection closed with unread bytes is reset by the kernel, and the reset can reach the client
/// before the answer, which then sees a broken connection instead of the limit it passed.
const OVERSIZED_BODY_DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// The whole body when it is at most `body_limit` bytes, else a 413 naming the limit.
async fn read_body_within(mut body: Body, body_limit: usize) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut collected = bytes::BytesMut::new();
    let mut read = 0usize;
    while read <= body_limit + OVERSIZED_BODY_DRAIN_BYTES {
        let Some(frame) = body.frame().await else { break };
        let data = match frame {
            Ok(frame) => frame.into_data().unwrap_or_default(),
            Err(_) if read > body_limit => break,
            Err(error) => return Err(Status::invalid_argument(format!("request: the body could not be read: {error}")).into()),
        };
        read += data.len();
        if read <= body_limit {
            collected.extend_from_slice(&data);
        }
    }
    if read > body_limit {
        return Err(ApiError {
            status: Status::invalid_argument(format!("request: body exceeds the limit of {body_limit} bytes")),
            http: Some(StatusCode::PAYLOAD_TOO_LARGE),
        });
    }
    Ok(collected.freeze())
}

async fn call(api: &HttpApi, peer: SocketAddr, service: &str, method: &str, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let Some(descriptor) = api.mapping.method(service, method) else {
        return Err(ApiError {
            status: Status::unimplemented(format!(
                "no method {service}/{method}: the methods are those of docs/API.md, e.g. QueryService/Query"
            )),
            http: Some(StatusCode::NOT_FOUND),
        });
    };
    // A caller the service would refuse is refused before its body is read into memory.
    if !api.access.development_mode() {
        super::caller(&api.access, headers)?;
    }
    let limit = message_limits(service);
    let body_limit = JSON_OVERHEAD * limit.0;
    let body = read_body_within(body, body_limit).await?;
    let input = descriptor.input();
    let output = descriptor.output();

    // One arm per unary method: decode, measure, call the gRPC implementation, encode.
    macro_rules! unary {
        ($implementation:expr, $api_type:ty, $service_trait:path, $rpc:ident) => {{
            let message = api.mapping.decode(&input, &body)?;
            check_size(&message, limit)?;
            let response = <$api_type as $service_trait>::$rpc(&$implementation, grpc_request(headers, peer, message)).await?;
            Ok(json_response(api.mapping.encode(&output, response.get_ref())?))
        }};
    }
    // Server streams answer newline-delimited JSON, one response message per line.
    macro_rules! streaming {
        ($implementation:expr, $api_type:ty, $service_trait:path, $rpc:ident) => {{
            let message = api.mapping.decode(&input, &body)?;
            check_size(&message, limit)?;
            let response = <$api_type as $service_trait>::$rpc(&$implementation, grpc_request(headers, peer, message)).await?;
            Ok(ndjson(api.mapping.clone(), output, response.into_inner()))
        }};
    }
    use pb::admin_service_server::AdminService;
    use pb::ingest_service_server::IngestService;
    use pb::proof_service_server::ProofService;
    use pb::query_service_server::QueryService;
    match (service, method) {
        ("IngestService", "Append") => unary!(api.ingest, IngestApi, IngestService, append),
        ("QueryService", "Query") => unary!(api.query, QueryApi, QueryService, query),
        ("QueryService", "Summarize") => unary!(api.query, QueryApi, QueryService, summarize),
        ("QueryService", "Subscribe") => streaming!(api.query, QueryApi, QueryService, subscribe),
        ("QueryService", "Export") => {
            let message: pb::ExportRequest = api.mapping.decode(&input, &body)?;
            check_size(&message, limit)?;
            export::respond(api, headers, peer, message).await
        }
        ("ProofService", "GetCheckpoint") => unary!(api.proof, ProofApi, ProofService, get_checkpoint),
        ("ProofService", "GetEventProof") => unary!(api.proof, ProofApi, ProofService, get_event_proof),
        ("ProofService", "GetConsistencyProof") => unary!(api.proof, ProofApi, ProofService, get_consistency_proof),
        ("ProofService", "VerifyLog") => streaming!(api.proof, ProofApi, ProofService, verify_log),
        ("AdminService", "SetLegalHold") => unary!(api.admin, AdminApi, AdminService, set_legal_hold),
        ("AdminService", "ClearLegalHold") => unary!(api.admin, AdminApi, AdminService, clear_legal_hold),
        ("AdminService", "ListLegalHolds") => unary!(api.admin, AdminApi, AdminService, list_legal_holds),
        ("AdminService", "RestoreBatches") => unary!(api.admin, AdminApi, AdminService, restore_batches),
        ("AdminService", "EraseSubject") => unary!(api.admin, AdminApi, AdminService, erase_subject),
        ("AdminService", "EraseTenant") => unary!(api.admin, AdminApi, AdminService, erase_tenant),
        // A method added to the protos but not here is a bug this arm names.
        _ => Err(Status::unimplemented(format!("{service}/{method} is not served over HTTP yet")).into()),
    }
}

/// A server stream as NDJSON: a line per message; an error ends the stream with one
/// `{"error": {...}}` line, as a gRPC stream ends with its status.
fn ndjson<M: Message + Send + 'static>(
    mapping: Arc<super::json::JsonMapping>,
    descriptor: MessageDescriptor,
    messages: BoxStream<'static, Result<M, Status>>,
) -> Response {
    let lines = messages
        .scan(false, |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            *ended = item.is_err();
            futures::future::ready(Some(item))
        })
        .map(move |item| {
            let mut line = match item.and_then(|message| mapping.encode(&descriptor, &message)) {
                Ok(line) => line,
                Err(status) => serde_json::json!({ "error": error_json(&status) }).to_string().into_bytes(),
            };
            line.push(b'\n');
            Ok::<_, std::convert::Infallible>(Bytes::from(line))
        });
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))], Body::from_stream(lines)).into_response()
}
