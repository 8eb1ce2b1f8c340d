//! `IngestService.Append`.

use super::request_meta;
use crate::status::{Status, status_from_engine, status_from_validation};
use auditum_engine::access::Access;
use auditum_engine::auth::Scope;
use auditum_engine::ingest::Ingest;
use auditum_proto::convert::timestamp_from_micros;
use auditum_proto::pb;
use auditum_proto::validate::{self, Validator};
use std::sync::Arc;
use tonic::{Request, Response};
use tracing::Instrument;

#[derive(Debug, Clone)]
pub struct IngestApi {
    ingest: Ingest,
    validator: Arc<Validator>,
    access: Arc<Access>,
}

impl IngestApi {
    pub fn new(ingest: Ingest, validator: Arc<Validator>, access: Arc<Access>) -> Self {
        IngestApi { ingest, validator, access }
    }
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for IngestApi {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        // Rate limits count events: one per event, one for an empty call.
        let cost = request.get_ref().events.len().max(1);
        // A call of nothing but `auditum.*` records is a read-only node forwarding the records
        // of its reads (DESIGN §13): that takes its own scope, and only read records pass.
        let events = &request.get_ref().events;
        let forwarded = !events.is_empty() && events.iter().all(|event| event.action.starts_with(validate::RESERVED_ACTION_PREFIX));
        let scope = if forwarded { Scope::MetaAuditForward } else { Scope::Append };
        let call = self.access.open("Append", scope, cost, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        async move {
            let request = request.into_inner();
            validate::check_append_request(&request).map_err(status_from_validation)?;
            let now = auditum_format::time::now_micros();
            // Validate every event before appending any: a bad event rejects the whole call.
            // The data subject is not stored: it only chooses the key of encrypted fields.
            let subjects: Vec<Option<String>> =
                request.events.iter().map(|event| (!event.subject_id.is_empty()).then(|| event.subject_id.clone())).collect();
            let records = request
                .events
                .into_iter()
                .enumerate()
                .map(|(index, event)| match forwarded {
                    true => self
                        .validator
                        .prepare_forwarded(index, event, now)
                        .map(|record| forwarded_by(record, call.caller.key_id()))
                        .and_then(|record| within_limit(index, record)),
                    false => self.validator.prepare(index, event, now),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(status_from_validation)?;
            let appended = self.ingest.append(&call, records, subjects, request.wait_for_seal).await.map_err(status_from_engine)?;
            let results = appended
                .into_iter()
                .map(|result| pb::AppendResult {
                    seq: result.seq.0,
                    id: result.id,
                    duplicate: result.duplicate,
                    received_at: Some(timestamp_from_micros(result.received_at)),
                    log: result.log,
                })
                .collect();
            Ok(Response::new(pb::AppendResponse { results }))
        }
        .instrument(span)
        .await
    }
}

/// A forwarded record names the key that forwarded it (`forwarded_by` in its metadata): the
/// evidence says which read-only node's credentials vouched for it.
fn forwarded_by(mut record: auditum_format::event::EventRecord, key_id: &str) -> auditum_format::event::EventRecord {
    let mut details = record
        .metadata
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok())
        .unwrap_or_default();
    details.insert("forwarded_by".into(), key_id.into());
    record.metadata = Some(auditum_format::json::canonical(&serde_json::Value::Object(details)));
    record
}

/// The event size limit holds for the stored record, `forwarded_by` included.
fn within_limit(
    index: usize,
    record: auditum_format::event::EventRecord,
) -> Result<auditum_format::event::EventRecord, validate::ValidationError> {
    let size = record.encoded_len_hint();
    if size > validate::MAX_EVENT_BYTES {
        return Err(validate::ValidationError {
            field: format!("events[{index}]"),
            rule: format!("{size} bytes with forwarded_by exceeds the limit of {} bytes", validate::MAX_EVENT_BYTES),
        });
    }
    Ok(record)
}
