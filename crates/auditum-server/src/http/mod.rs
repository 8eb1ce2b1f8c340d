//! The HTTP listener (`http_listen`): the web console at `/`, and the JSON API under `/api/v1/`
//! that mirrors the gRPC services one to one (docs/API.md, "HTTP and JSON"). TLS and client
//! certificates follow the gRPC listener's settings.

mod console;
mod error;
mod export;
mod json;
mod rpc;

use crate::grpc::{admin::AdminApi, ingest::IngestApi, proof::ProofApi, query::QueryApi};
use auditum_engine::access::Access;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use console::ASSETS;
pub use error::{code_name, http_status};

/// What the HTTP handlers share: the gRPC service implementations themselves.
#[derive(Clone)]
pub struct HttpApi {
    pub ingest: IngestApi,
    pub query: QueryApi,
    pub proof: ProofApi,
    pub admin: AdminApi,
    pub access: Arc<Access>,
    pub read_only: bool,
    mapping: Arc<json::JsonMapping>,
    exports: Arc<export::ExportSummaries>,
}

impl HttpApi {
    pub fn new(
        ingest: IngestApi,
        query: QueryApi,
        proof: ProofApi,
        admin: AdminApi,
        access: Arc<Access>,
        read_only: bool,
    ) -> Result<HttpApi, String> {
        Ok(HttpApi {
            ingest,
            query,
            proof,
            admin,
            access,
            read_only,
            mapping: Arc::new(json::JsonMapping::new()?),
            exports: Arc::default(),
        })
    }
}

/// Who the request's `Authorization` names (development mode's anonymous caller when there are
/// no keys), or the refusal. A header that is not text is presented as "", refused as malformed.
fn caller(access: &Access, headers: &HeaderMap) -> Result<auditum_engine::auth::Caller, tonic::Status> {
    let authorization = headers.get(header::AUTHORIZATION).map(|value| value.to_str().unwrap_or(""));
    access.identify(authorization).map_err(crate::status::status_from_denied)
}

/// `GET /api/v1/info`: what the console needs before sign-in, and who a key is.
async fn info(State(api): State<HttpApi>, headers: HeaderMap) -> Response {
    let mut body = serde_json::json!({
        "developmentMode": api.access.development_mode(),
        "readOnly": api.read_only,
        "version": env!("CARGO_PKG_VERSION"),
    });
    if headers.contains_key(header::AUTHORIZATION) {
        let caller = match caller(&api.access, &headers) {
            Ok(caller) => caller,
            Err(status) => return error::ApiError::from(status).into_response(),
        };
        if !caller.is_anonymous() {
            let mut key = serde_json::json!({ "id": caller.key_id(), "scopes": caller.scopes() });
            if let Some(tenant) = caller.tenant() {
                key["tenant"] = serde_json::Value::String(tenant.to_string());
            }
            body["key"] = key;
        }
    }
    axum::Json(body).into_response()
}

async fn no_such_route() -> Response {
    error::ApiError {
        status: tonic::Status::not_found("no such path: the console is at /, the API at /api/v1/{Service}/{Method} (docs/API.md)"),
        http: None,
    }
    .into_response()
}

async fn wrong_method(request: Request) -> Response {
    let status = tonic::Status::unimplemented(format!(
        "{} {}: the API's methods are POST /api/v1/{{Service}}/{{Method}}; GET only /api/v1/info and /api/v1/exports/{{id}}/summary",
        request.method(),
        request.uri().path()
    ));
    error::ApiError { status, http: Some(StatusCode::METHOD_NOT_ALLOWED) }.into_response()
}

fn refuse(http: StatusCode, status: tonic::Status) -> Response {
    error::ApiError { status, http: Some(http) }.into_response()
}

/// The host a request was sent to: `Host`, or HTTP/2's `:authority`.
fn request_host(request: &Request) -> Option<String> {
    match request.headers().get(header::HOST).and_then(|value| value.to_str().ok()) {
        Some(host) => Some(host.to_ascii_lowercase()),
        None => request.uri().authority().map(|authority| authority.as_str().to_ascii_lowercase()),
    }
}

/// `localhost`, or a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The API answers only requests this server's own pages (or non-browser clients) could send.
/// A web page elsewhere can make a browser POST `text/plain` to a loopback port without asking
/// first, and a page behind a rebound DNS name can read the answers: with no API keys
/// (development mode) that would be anyone's vault. So POSTs must be `application/json` (which
/// a cross-site page may only send after a CORS preflight, never granted here), an `Origin` must
/// be this server's, and development mode answers only requests addressed to a loopback name.
async fn same_origin_only(State(api): State<HttpApi>, request: Request, next: Next) -> Response {
    let host = request_host(&request);
    if request.method() == Method::POST {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Status::invalid_argument("content-type: must be application/json (curl: -H 'content-type: application/json')"),
            );
        }
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let origin_host = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
        if origin_host.is_none() || origin_host != host.as_deref() {
            return refuse(
                StatusCode::FORBIDDEN,
                tonic::Status::permission_denied(format!("origin {origin:?}: the API answers only pages served by this server")),
            );
        }
    }
    if api.access.development_mode() && !host.as_deref().is_some_and(is_loopback_host) {
        return refuse(
            StatusCode::FORBIDDEN,
            tonic::Status::permission_denied(format!(
                "host {:?}: development mode (no api_keys) answers only requests to localhost or a loopback address",
                host.unwrap_or_default()
            )),
        );
    }
    next.run(request).await
}

/// `nosniff` on every answer, not only the console's files: a JSON error must never be run as
/// a script or rendered as a page.
async fn no_sniffing(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    response
}

pub fn router(api: HttpApi) -> Router {
    let api_routes = Router::new()
        .route("/api/v1/info", get(info))
        .route("/api/v1/exports/{id}/summary", get(export::summary))
        .route("/api/v1/{service}/{method}", post(rpc::handle))
        .method_not_allowed_fallback(wrong_method)
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), same_origin_only));
    Router::new()
        .route("/", get(console::index))
        .route("/assets/{name}", get(console::asset))
        .merge(api_routes)
        .fallback(no_such_route)
        .layer(axum::middleware::from_fn(no_sniffing))
        .with_state(api)
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (with TLS when `tls` is set) until `shutdown` resolves, then
/// lets open requests finish for up to `grace` (a Subscribe stream ends on the server's own
/// closing signal).
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // A client that never finishes its headers does not hold a connection forever.
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    // As on the gRPC listener: more calls on one connection wait their turn.
    builder.http2().timer(hyper_util::rt::TokioTimer::new()).max_concurrent_streams(limits.max_concurrent_streams);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { tower::ServiceExt::oneshot(router, request).await }
        });
        match &tls {
            None => {
                let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).into_owned();
                let watched = graceful.watch(connection);
                connections.spawn(async move {
                    let _ = watched.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                connections.spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => return tracing::debug!(%peer, %error, "http tls handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "http tls handshake timed out"),
                    };
                    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).into_owned();
                    let _ = watcher.watch(connection).await;
                });
            }
        }
    }
    if tokio::time::timeout(limits.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_ms = limits.grace.as_millis() as u64, "http connections still open after the grace period: dropped");
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Concurrent requests per HTTP/2 connection (HTTP/1.1 serves one at a time).
    pub max_concurrent_streams: u32,
    /// How long open requests may run on after shutdown begins.
    pub grace: Duration,
}

/// The rustls acceptor for `tls_cert`/`tls_key`, requiring client certificates signed by
/// `tls_client_ca` when it is set: the same rules as the gRPC listener.
pub fn tls_acceptor(config: &crate::config::Config) -> crate::Result<Option<tokio_rustls::TlsAcceptor>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert_path), Some(key_path)) = (&config.tls_cert, &config.tls_key) else { return Ok(None) };
    let tls_error =
        |field: &'static str, path: &std::path::Path, reason: String| crate::Error::Tls { field, path: path.to_path_buf(), reason };
    let certificates = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| tls_error("tls_cert", cert_path, error.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| tls_error("tls_key", key_path, error.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error("tls_cert", cert_path, error.to_string()))?;
    let builder = match &config.tls_client_ca {
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in
                CertificateDer::pem_file_iter(ca_path).map_err(|error| tls_error("tls_client_ca", ca_path, error.to_string()))?
            {
                let certificate = certificate.map_err(|error| tls_error("tls_client_ca", ca_path, error.to_string()))?;
                roots.add(certificate).map_err(|error| tls_error("tls_client_ca", ca_path, error.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| tls_error("tls_client_ca", ca_path, error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server_config =
        builder.with_single_cert(certificates, key).map_err(|error| tls_error("tls_key", key_path, error.to_string()))?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_config))))
}
