//! gRPC services (docs/API.md) as thin adapters: each decodes its request into domain terms, calls
//! the engine, and encodes the answer; every error becomes a status in `crate::status`.

pub mod admin;
pub mod ingest;
pub mod limits;
pub mod proof;
pub mod query;

use auditum_engine::access::RequestMeta;
use tonic::Request;

/// What the engine needs to know about a call's transport.
pub(crate) fn request_meta<T>(request: &Request<T>) -> RequestMeta<'_> {
    let metadata = request.metadata();
    RequestMeta {
        // A header that is not text is presented as "", which is refused as malformed.
        authorization: metadata.get("authorization").map(|value| value.to_str().unwrap_or("")),
        request_id: metadata.get("x-request-id").and_then(|value| value.to_str().ok()),
        source_ip: request.remote_addr().map(|addr| addr.ip().to_string()).unwrap_or_default(),
        user_agent: metadata.get("user-agent").and_then(|value| value.to_str().ok()),
    }
}
