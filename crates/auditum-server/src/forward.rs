//! A read-only node's meta-audit records, appended on the log's writer (DESIGN §13) through
//! `IngestService.Append` under a key with the `meta_audit_forward` scope.

use auditum_engine::access::RecordForwarder;
use auditum_format::event::EventRecord;
use auditum_proto::pb;
use std::time::Duration;

/// How long a read waits for its record to be appended on the writer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct WriterForwarder {
    writer: String,
    client: pb::ingest_service_client::IngestServiceClient<auditum_client::AuthChannel>,
}

impl WriterForwarder {
    /// Connects lazily: the node starts, and serves unrecorded nothing, while the writer is down.
    pub fn new(writer: &str, api_key: Option<String>) -> Result<WriterForwarder, String> {
        let options = auditum_client::ConnectOptions { api_key, ..Default::default() };
        let channel = auditum_client::connect::lazy_channel(writer, &options)?;
        Ok(WriterForwarder { writer: writer.to_string(), client: pb::ingest_service_client::IngestServiceClient::new(channel) })
    }
}

impl RecordForwarder for WriterForwarder {
    fn forward(&self, record: EventRecord) -> futures::future::BoxFuture<'_, Result<(), String>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            // The record's id is fixed: a retry by the caller is answered as a duplicate.
            let mut request =
                tonic::Request::new(pb::AppendRequest { events: vec![auditum_proto::convert::audit_event(&record)], wait_for_seal: false });
            request.set_timeout(FORWARD_TIMEOUT);
            client.append(request).await.map(|_| ()).map_err(|status| {
                tracing::warn!(writer = %self.writer, code = ?status.code(), message = status.message(), "the writer did not append a meta-audit record");
                format!("writer {}: {:?}: {}", self.writer, status.code(), status.message())
            })
        })
    }
}
