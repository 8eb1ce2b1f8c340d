//! gRPC services (DESIGN §8). Errors become tonic statuses here and nowhere else.

use crate::config::DEFAULT_LOG;
use crate::event::Seq;
use crate::log::{self, Log};
use crate::pb;
use crate::validate::{self, ValidationError, Validator};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The logs of this process and the tenant routing between them.
#[derive(Debug, Clone)]
pub struct Logs {
    by_name: HashMap<String, Log>,
    routes: HashMap<String, String>,
}

impl Logs {
    pub fn new(logs: Vec<Log>, routes: HashMap<String, String>) -> Logs {
        Logs { by_name: logs.into_iter().map(|log| (log.name().to_string(), log)).collect(), routes }
    }

    /// The log a tenant's events go to: its configured log, or `default`.
    pub fn for_tenant(&self, tenant_id: &str) -> Option<&Log> {
        let name = self.routes.get(tenant_id).map(String::as_str).unwrap_or(DEFAULT_LOG);
        self.by_name.get(name)
    }

    /// A log by name; empty means `default`.
    pub fn by_name(&self, name: &str) -> Option<&Log> {
        self.by_name.get(if name.is_empty() { DEFAULT_LOG } else { name })
    }

    pub fn all(&self) -> impl Iterator<Item = &Log> {
        self.by_name.values()
    }
}

pub fn status_from_validation(error: ValidationError) -> Status {
    Status::invalid_argument(error.to_string())
}

pub fn status_from_log(error: log::Error) -> Status {
    match &error {
        // Retryable elsewhere or later; retries are safe because Append is idempotent on id.
        log::Error::Fenced { .. } | log::Error::Failed { .. } | log::Error::ShuttingDown { .. } => Status::unavailable(error.to_string()),
        log::Error::WalFull { .. } => {
            let mut status = Status::resource_exhausted(error.to_string());
            // A hint for clients and proxies: sealing retries within seconds.
            status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from_static("5"));
            status
        }
        _ => {
            tracing::error!(%error, "internal error");
            Status::internal(error.to_string())
        }
    }
}

pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: micros.div_euclid(1_000_000), nanos: (micros.rem_euclid(1_000_000) * 1000) as i32 }
}

#[derive(Debug, Clone)]
pub struct IngestApi {
    logs: Arc<Logs>,
    validator: Arc<Validator>,
}

impl IngestApi {
    pub fn new(logs: Arc<Logs>, validator: Arc<Validator>) -> Self {
        IngestApi { logs, validator }
    }

    /// Validates, routes by tenant, appends per log, and answers in request order.
    pub async fn append(&self, request: pb::AppendRequest) -> Result<pb::AppendResponse, Status> {
        validate::check_append_request(&request).map_err(status_from_validation)?;
        let now = log::now_micros();
        // Validate every event before appending any: a bad event rejects the whole call.
        let mut per_log: HashMap<String, (Log, Vec<usize>, Vec<crate::event::EventRecord>)> = HashMap::new();
        let event_count = request.events.len();
        let wait_for_seal = request.wait_for_seal;
        for (index, event) in request.events.into_iter().enumerate() {
            let record = self.validator.prepare(index, event, now).map_err(status_from_validation)?;
            let log = self.logs.for_tenant(&record.tenant_id).ok_or_else(|| {
                Status::internal(format!("no log is configured for tenant {:?} and there is no default log", record.tenant_id))
            })?;
            let slot = per_log.entry(log.name().to_string()).or_insert_with(|| (log.clone(), Vec::new(), Vec::new()));
            slot.1.push(index);
            slot.2.push(record);
        }
        let mut results: Vec<Option<pb::AppendResult>> = vec![None; event_count];
        let started = std::time::Instant::now();
        let appends = per_log.into_values().map(|(log, indexes, records)| async move {
            let appended = log.append(records).await?;
            crate::metrics::METRICS
                .append_latency
                .get_or_create(&crate::metrics::log_label(log.name()))
                .observe(started.elapsed().as_secs_f64());
            if wait_for_seal {
                let end = appended.iter().map(|result| result.seq.next()).max().unwrap_or(Seq(0));
                log.wait_committed(end).await?;
            }
            Ok::<_, log::Error>((log.name().to_string(), indexes, appended))
        });
        for outcome in futures::future::join_all(appends).await {
            let (log_name, indexes, appended) = outcome.map_err(status_from_log)?;
            for (index, result) in indexes.into_iter().zip(appended) {
                results[index] = Some(pb::AppendResult {
                    seq: result.seq.0,
                    id: result.id,
                    duplicate: result.duplicate,
                    received_at: Some(timestamp_from_micros(result.received_at)),
                    log: log_name.clone(),
                });
            }
        }
        let results = results.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| Status::internal("an event got no result"))?;
        Ok(pb::AppendResponse { results })
    }
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for IngestApi {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        IngestApi::append(self, request.into_inner()).await.map(Response::new)
    }
}

/// Query and Export: answered by the query issue; until then UNIMPLEMENTED with a reason.
#[derive(Debug, Clone, Default)]
pub struct QueryApi;

#[tonic::async_trait]
impl pb::query_service_server::QueryService for QueryApi {
    async fn query(&self, _request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        Err(Status::unimplemented("Query is not implemented in this version"))
    }

    type ExportStream = futures::stream::BoxStream<'static, Result<pb::ExportResponse, Status>>;

    async fn export(&self, _request: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        Err(Status::unimplemented("Export is not implemented in this version"))
    }
}

/// Proofs: GetCheckpoint now; the rest with the proofs issue.
#[derive(Debug, Clone)]
pub struct ProofApi {
    logs: Arc<Logs>,
}

impl ProofApi {
    pub fn new(logs: Arc<Logs>) -> Self {
        ProofApi { logs }
    }
}

#[tonic::async_trait]
impl pb::proof_service_server::ProofService for ProofApi {
    async fn get_checkpoint(&self, request: Request<pb::GetCheckpointRequest>) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let name = request.into_inner().log;
        let log = self.logs.by_name(&name).ok_or_else(|| Status::not_found(format!("log: no log named {name:?}")))?;
        let checkpoint = log
            .ledger_snapshot()
            .checkpoint
            .ok_or_else(|| Status::not_found(format!("log {}: no batch has been sealed yet, so there is no checkpoint", log.name())))?;
        Ok(Response::new(pb::GetCheckpointResponse { checkpoint }))
    }

    async fn get_event_proof(&self, _request: Request<pb::GetEventProofRequest>) -> Result<Response<pb::GetEventProofResponse>, Status> {
        Err(Status::unimplemented("GetEventProof is not implemented in this version"))
    }

    async fn get_consistency_proof(
        &self,
        _request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        Err(Status::unimplemented("GetConsistencyProof is not implemented in this version"))
    }

    type VerifyLogStream = futures::stream::BoxStream<'static, Result<pb::VerifyLogResponse, Status>>;

    async fn verify_log(&self, _request: Request<pb::VerifyLogRequest>) -> Result<Response<Self::VerifyLogStream>, Status> {
        Err(Status::unimplemented("VerifyLog is not implemented in this version"))
    }
}
