//! A gRPC status as an HTTP answer: the status code a JSON client expects, and a body naming the
//! gRPC code, the message and (when the message names one) the field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

/// The canonical upper-case name of a gRPC code (`google.rpc.Code`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The HTTP status of a gRPC code, as grpc-gateway and Google's HTTP APIs map them.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The field an INVALID_ARGUMENT message starts with (`filter.tenant_id: required`), the form
/// every validation message of this server takes.
pub fn field_of(status: &Status) -> Option<&str> {
    if status.code() != Code::InvalidArgument {
        return None;
    }
    let (field, _) = status.message().split_once(": ")?;
    let well_formed = field.starts_with(|first: char| first.is_ascii_lowercase())
        && field.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    well_formed.then_some(field)
}

/// The error body: `{"code": "INVALID_ARGUMENT", "message": "...", "field": "..."}`.
pub fn error_json(status: &Status) -> serde_json::Value {
    let mut body = serde_json::json!({ "code": code_name(status.code()), "message": status.message() });
    if let Some(field) = field_of(status) {
        body["field"] = serde_json::Value::String(field.to_string());
    }
    body
}

#[derive(Debug)]
pub struct ApiError {
    pub status: Status,
    /// When the HTTP status is more precise than the code's (413 for an oversized body).
    pub http: Option<StatusCode>,
}

impl From<Status> for ApiError {
    fn from(status: Status) -> ApiError {
        ApiError { status, http: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let http = self.http.unwrap_or_else(|| http_status(self.status.code()));
        let mut response = (http, axum::Json(error_json(&self.status))).into_response();
        // A rate-limited key learns when to come back, as over gRPC.
        if let Some(retry_after) = self.status.metadata().get("retry-after").and_then(|value| value.to_str().ok())
            && let Ok(value) = HeaderValue::from_str(retry_after)
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_named_only_when_the_message_starts_with_one() {
        assert_eq!(field_of(&Status::invalid_argument("filter.tenant_id: required")), Some("filter.tenant_id"));
        assert_eq!(field_of(&Status::invalid_argument("events[3].action: too long")), Some("events[3].action"));
        assert_eq!(field_of(&Status::invalid_argument("request body: not a QueryRequest")), None);
        assert_eq!(field_of(&Status::permission_denied("filter.tenant_id: not yours")), None);
        let body = error_json(&Status::invalid_argument("page_size: at most 1000"));
        assert_eq!(body, serde_json::json!({"code": "INVALID_ARGUMENT", "message": "page_size: at most 1000", "field": "page_size"}));
    }
}
