//! `/metrics` over HTTP: the engine's Prometheus registry in the text exposition format.

use auditum_engine::metrics::METRICS;

/// Serves `/metrics` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], METRICS.encode())
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
