//! Reaching a server: `http://` or `https://` (with a CA bundle and an optional client
//! certificate), and the API key sent with every call.

use auditum_proto::pb;

/// How the CLI reaches a server: its API key and TLS trust.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Sent as `authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// PEM CA that signed the server's certificate (for `https://` URLs).
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for servers that require one.
    pub tls_client_cert: Option<std::path::PathBuf>,
    pub tls_client_key: Option<std::path::PathBuf>,
}

/// Adds the bearer API key to every call.
#[derive(Debug, Clone, Default)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    pub fn new(api_key: Option<&str>) -> Result<BearerToken, String> {
        api_key
            .map(|key| format!("Bearer {key}").parse().map_err(|_| "api key: must be printable ASCII".to_string()))
            .transpose()
            .map(BearerToken)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type AuthChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>;

/// A channel to `server` (`http://` or `https://`) that sends the API key with every call.
pub async fn channel(server: &str, options: &ConnectOptions) -> crate::Result<AuthChannel> {
    open_channel(server, options).await.map_err(crate::Error::Connect)
}

async fn open_channel(server: &str, options: &ConnectOptions) -> Result<AuthChannel, String> {
    let channel = endpoint(server, options)?.connect().await.map_err(|error| format!("cannot connect to {server}: {error}"))?;
    Ok(tonic::service::interceptor::InterceptedService::new(channel, BearerToken::new(options.api_key.as_deref())?))
}

/// A channel that connects on first use (and reconnects after an outage): the SDK's client is
/// made, and logs to its spool, while the server is down.
pub fn lazy_channel(server: &str, options: &ConnectOptions) -> Result<AuthChannel, String> {
    let channel = endpoint(server, options)?.connect_timeout(std::time::Duration::from_secs(10)).connect_lazy();
    Ok(tonic::service::interceptor::InterceptedService::new(channel, BearerToken::new(options.api_key.as_deref())?))
}

fn endpoint(server: &str, options: &ConnectOptions) -> Result<tonic::transport::Endpoint, String> {
    let read = |what: &str, path: &std::path::Path| std::fs::read(path).map_err(|error| format!("{what} {}: {error}", path.display()));
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(server.to_string()).map_err(|error| format!("{server}: {error}"))?.tcp_nodelay(true);
    if server.starts_with("https://") || options.tls_ca.is_some() {
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &options.tls_ca {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read("--tls-ca", ca)?));
        }
        match (&options.tls_client_cert, &options.tls_client_key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(tonic::transport::Identity::from_pem(read("--tls-client-cert", cert)?, read("--tls-client-key", key)?))
            }
            (None, None) => {}
            _ => return Err("--tls-client-cert and --tls-client-key come together".into()),
        }
        endpoint = endpoint.tls_config(tls).map_err(|error| format!("tls: {error}"))?;
    }
    Ok(endpoint)
}

/// Connects to a server URL such as `http://127.0.0.1:50051`.
pub async fn connect(
    server: &str,
) -> Result<pb::ingest_service_client::IngestServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    let channel = tonic::transport::Endpoint::from_shared(server.to_string())?.tcp_nodelay(true).connect().await?;
    Ok(pb::ingest_service_client::IngestServiceClient::new(channel)
        .max_encoding_message_size(2 * auditum_proto::validate::MAX_APPEND_BYTES)
        .max_decoding_message_size(16 * 1024 * 1024))
}
