//! The web console's files, embedded at build time (see build.rs): `/` is `index.html`, the rest
//! are `/assets/{name}`. Each is sent gzipped when the browser accepts it, with an ETag so a
//! reload costs a 304, and with a content security policy that lets the page talk only to this
//! server: the console handles API keys and must not run or send anything from elsewhere.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::LazyLock;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
    pub gzipped: Vec<u8>,
    etag: String,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail; an empty result is only sent when the browser asks for gzip.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

pub static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    embedded::CONSOLE_FILES
        .iter()
        .map(|(name, bytes)| Asset {
            name,
            bytes,
            gzipped: gzip(bytes),
            etag: format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..32]),
        })
        .collect()
});

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accepted| accepted.split(',').any(|coding| coding.trim().split(';').next() == Some("gzip")))
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("no console file {name}\n"))
            .into_response();
    };
    let mut response_headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response_headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, content_type(asset.name));
    set(header::ETAG, &asset.etag);
    // Revalidate every time: the binary (and so the console) may be upgraded under the same URL.
    set(header::CACHE_CONTROL, "no-cache");
    set(header::VARY, "accept-encoding");
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    if headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) == Some(asset.etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    if accepts_gzip(headers) && !asset.gzipped.is_empty() {
        set(header::CONTENT_ENCODING, "gzip");
        return (response_headers, asset.gzipped.clone()).into_response();
    }
    (response_headers, asset.bytes).into_response()
}

pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}
