//! A read-only node's meta-audit records, appended on the writer of the log each read was of
//! (DESIGN §13) through `IngestService.Append` under a key with the `meta_audit_forward` scope.

use auditum_engine::access::{ForwardError, RecordForwarder};
use auditum_format::event::EventRecord;
use auditum_proto::pb;
use std::collections::HashMap;
use std::time::Duration;

/// How long a read waits for its record to be appended on the writer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

type IngestClient = pb::ingest_service_client::IngestServiceClient<auditum_client::AuthChannel>;

/// One writer per log (several logs may share one).
#[derive(Debug, Default)]
pub struct WriterForwarder {
    writers: HashMap<String, (String, IngestClient)>,
}

impl WriterForwarder {
    /// Adds the writer of `log`. Connects lazily: the node starts while a writer is down (and
    /// serves no read it cannot record).
    pub fn add(&mut self, log: &str, writer: &str, api_key: Option<String>, tls_ca: Option<std::path::PathBuf>) -> Result<(), String> {
        let options = auditum_client::ConnectOptions { api_key, tls_ca, ..Default::default() };
        let channel = auditum_client::connect::lazy_channel(writer, &options)?;
        self.writers.insert(log.to_string(), (writer.to_string(), IngestClient::new(channel)));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.writers.is_empty()
    }
}

impl RecordForwarder for WriterForwarder {
    fn forward<'a>(&'a self, log: &'a str, record: EventRecord) -> futures::future::BoxFuture<'a, Result<(), ForwardError>> {
        Box::pin(async move {
            let Some((writer, client)) = self.writers.get(log) else {
                return Err(ForwardError { reason: format!("no meta_audit_writer for log {log}"), permanent: true });
            };
            let mut request =
                tonic::Request::new(pb::AppendRequest { events: vec![auditum_proto::convert::audit_event(&record)], wait_for_seal: false });
            request.set_timeout(FORWARD_TIMEOUT);
            let response = client.clone().append(request).await.map_err(|status| {
                tracing::warn!(%writer, log, code = ?status.code(), message = status.message(), "the writer did not append a meta-audit record");
                // Refusals that a retry cannot change: the node's key, its scope, the record.
                let permanent = matches!(
                    status.code(),
                    tonic::Code::Unauthenticated
                        | tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument
                        | tonic::Code::FailedPrecondition
                        | tonic::Code::NotFound
                );
                ForwardError { reason: format!("writer {writer}: {:?}: {}", status.code(), status.message()), permanent }
            })?;
            // The writer routes the record by its own tenant table: it must land in the log that
            // was read, or the evidence is filed in the wrong log.
            let landed = response.into_inner().results.into_iter().next().map(|result| result.log).unwrap_or_default();
            if landed != log {
                tracing::error!(%writer, log, %landed, "the writer appended a meta-audit record to another log: its tenant routing differs from this node's");
                return Err(ForwardError {
                    reason: format!(
                        "writer {writer} appended the record to log {landed:?}, not {log:?}: its tenant routing differs from this node's"
                    ),
                    permanent: true,
                });
            }
            Ok(())
        })
    }
}
