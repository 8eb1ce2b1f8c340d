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

/// Rows handed from an export's scan thread to its encoder at a time.
const EXPORT_HANDOFF_ROWS: usize = 1024;

/// Footer cache budget shared by queries and exports.
const FOOTER_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Query and Export over sealed batches and unsealed events (DESIGN §8).
#[derive(Clone)]
pub struct QueryApi {
    logs: Arc<Logs>,
    footers: Arc<crate::scan::FooterCache>,
}

pub fn status_from_filter(error: crate::query::FilterError) -> Status {
    Status::invalid_argument(error.to_string())
}

pub fn status_from_scan(error: crate::scan::Error) -> Status {
    if error.is_transient() {
        return Status::unavailable(format!("{error}; retry later"));
    }
    tracing::error!(%error, "query read failed");
    Status::internal(error.to_string())
}

fn status_from_task(error: tokio::task::JoinError) -> Status {
    tracing::error!(%error, "query task failed");
    Status::internal(format!("query task failed: {error}"))
}

impl QueryApi {
    pub fn new(logs: Arc<Logs>) -> Self {
        QueryApi { logs, footers: Arc::new(crate::scan::FooterCache::new(FOOTER_CACHE_BYTES)) }
    }

    fn log_for(&self, tenant_id: &str) -> Result<&Log, Status> {
        self.logs
            .for_tenant(tenant_id)
            .ok_or_else(|| Status::internal(format!("no log is configured for tenant {tenant_id:?} and there is no default log")))
    }

    fn context(&self, log: &Log, io: Arc<crate::scan::IoCounters>, decode_rows: usize) -> crate::query::ScanContext {
        crate::query::ScanContext {
            store: log.store().clone(),
            footers: self.footers.clone(),
            runtime: tokio::runtime::Handle::current(),
            io,
            decode_rows,
        }
    }

    pub async fn query(&self, request: pb::QueryRequest) -> Result<pb::QueryResponse, Status> {
        use crate::query::{self, Filter};
        let started = std::time::Instant::now();
        let filter = Filter::from_pb(request.filter.as_ref()).map_err(status_from_filter)?;
        let page_size = query::page_size(request.page_size).map_err(status_from_filter)?;
        let cursor = query::decode_page_token(&request.page_token, &filter, request.descending).map_err(status_from_filter)?;
        let log = self.log_for(&filter.tenant_id)?;
        let snapshot = log.read_snapshot();
        let io = Arc::new(crate::scan::IoCounters::default());
        let context = self.context(log, io.clone(), page_size + 1);
        let predicate = filter.predicate(cursor, request.descending);
        let tenant_id = filter.tenant_id.clone();
        let page = tokio::task::spawn_blocking(move || {
            let scan = query::Scan::new(context, &tenant_id, predicate, &snapshot.entries, &snapshot.unsealed);
            query::run_page(scan, page_size)
        })
        .await
        .map_err(status_from_task)?
        .map_err(status_from_scan)?;
        let label = crate::metrics::log_label(log.name());
        let metrics = &crate::metrics::METRICS;
        metrics.query_latency.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        metrics.rows_scanned.get_or_create(&label).inc_by(page.stats.rows_read);
        metrics.query_bytes_read.get_or_create(&label).inc_by(io.bytes.load(std::sync::atomic::Ordering::Relaxed));
        Ok(pb::QueryResponse {
            events: page.rows.iter().map(|row| query::stored_event(row, log.name())).collect(),
            next_page_token: page.next.map(|last| query::encode_page_token(&filter, request.descending, last)).unwrap_or_default(),
            stats: Some(query::stats_message(&page.stats, &io)),
        })
    }

    /// Streams the export from a blocking task through a small channel: a slow client slows the
    /// scan instead of growing memory.
    pub async fn export(
        &self,
        request: pb::ExportRequest,
    ) -> Result<futures::stream::BoxStream<'static, Result<pb::ExportResponse, Status>>, Status> {
        use crate::export::{Exporter, Format};
        use crate::query::{self, Filter};
        let started = std::time::Instant::now();
        let filter = Filter::from_pb(request.filter.as_ref()).map_err(status_from_filter)?;
        let format = match pb::ExportFormat::try_from(request.format) {
            Ok(pb::ExportFormat::Jsonl) => Format::Jsonl,
            Ok(pb::ExportFormat::Csv) => Format::Csv,
            Ok(pb::ExportFormat::Parquet) => Format::Parquet,
            _ => return Err(Status::invalid_argument("format: must be EXPORT_FORMAT_JSONL, EXPORT_FORMAT_CSV or EXPORT_FORMAT_PARQUET")),
        };
        let log = self.log_for(&filter.tenant_id)?.clone();
        let snapshot = log.read_snapshot();
        let io = Arc::new(crate::scan::IoCounters::default());
        let context = self.context(&log, io.clone(), crate::scan::MAX_DECODE_ROWS);
        let predicate = filter.predicate(None, false);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<pb::ExportResponse, Status>>(2);
        let include_unsealed = request.include_unsealed;
        tokio::task::spawn_blocking(move || {
            let chunk = |bytes: bytes::Bytes| Ok(pb::ExportResponse { item: Some(pb::export_response::Item::Chunk(bytes)) });
            let run = || -> Result<Option<pb::ExportSummary>, Status> {
                // Sealed rows come only from batches the starting checkpoint covers, so the
                // summary's checkpoint vouches for every sealed row sent.
                let entries = &snapshot.entries[..snapshot.checkpoint_size];
                let unsealed: &[Arc<crate::event::EventRecord>] = if include_unsealed { &snapshot.unsealed } else { &[] };
                let mut exporter = Exporter::new(format).map_err(|error| Status::internal(error.to_string()))?;
                // Two stages on two threads: the scan decodes rows while this thread encodes
                // and hashes the previous ones. The small channel bounds what is in flight.
                let (outcome, rows_read) = std::thread::scope(|scope| {
                    let (rows_sender, rows_receiver) = std::sync::mpsc::sync_channel::<Result<Vec<query::ScanRow>, Status>>(4);
                    let scanner = scope.spawn(move || {
                        let mut scan = query::Scan::new(context, &filter.tenant_id, predicate, entries, unsealed);
                        let mut rows = Vec::with_capacity(EXPORT_HANDOFF_ROWS);
                        loop {
                            match scan.next_row() {
                                Ok(Some(row)) => {
                                    rows.push(row);
                                    if rows.len() == EXPORT_HANDOFF_ROWS && rows_sender.send(Ok(std::mem::take(&mut rows))).is_err() {
                                        break;
                                    }
                                }
                                Ok(None) => {
                                    let _ = rows_sender.send(Ok(rows));
                                    break;
                                }
                                Err(error) => {
                                    let _ = rows_sender.send(Err(status_from_scan(error)));
                                    break;
                                }
                            }
                        }
                        scan.stats.rows_read
                    });
                    let encode = || -> Result<bool, Status> {
                        for rows in rows_receiver {
                            for row in rows? {
                                exporter.push(row).map_err(|error| Status::internal(error.to_string()))?;
                                if let Some(bytes) = exporter.take_chunk()
                                    && sender.blocking_send(chunk(bytes)).is_err()
                                {
                                    return Ok(false);
                                }
                            }
                        }
                        Ok(true)
                    };
                    // Returning drops the receiver, which stops the scanner at its next send.
                    let outcome = encode();
                    (outcome, scanner.join())
                });
                // A scan that died must not end in a summary that looks complete.
                let rows_read = rows_read.map_err(|_| Status::internal("export scan failed; the export is incomplete"))?;
                if !outcome? {
                    return Ok(None);
                }
                let (last, sha256, exporter) = exporter.finish().map_err(|error| Status::internal(error.to_string()))?;
                if !last.is_empty() && sender.blocking_send(chunk(last)).is_err() {
                    return Ok(None);
                }
                let label = crate::metrics::log_label(&snapshot.log);
                crate::metrics::METRICS.rows_scanned.get_or_create(&label).inc_by(rows_read);
                crate::metrics::METRICS.export_rows.get_or_create(&label).inc_by(exporter.rows);
                Ok(Some(pb::ExportSummary {
                    rows: exporter.rows,
                    sha256,
                    checkpoint: snapshot.checkpoint.clone().unwrap_or_default(),
                    unsealed_rows: exporter.unsealed_rows,
                }))
            };
            let outcome = run();
            let label = crate::metrics::log_label(&snapshot.log);
            crate::metrics::METRICS.export_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
            crate::metrics::METRICS.query_bytes_read.get_or_create(&label).inc_by(io.bytes.load(std::sync::atomic::Ordering::Relaxed));
            match outcome {
                Ok(Some(summary)) => {
                    let _ = sender.blocking_send(Ok(pb::ExportResponse { item: Some(pb::export_response::Item::Summary(summary)) }));
                }
                Ok(None) => tracing::info!(log = %snapshot.log, "export cancelled by the client"),
                Err(status) => {
                    let _ = sender.blocking_send(Err(status));
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }
}

#[tonic::async_trait]
impl pb::query_service_server::QueryService for QueryApi {
    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        QueryApi::query(self, request.into_inner()).await.map(Response::new)
    }

    type ExportStream = futures::stream::BoxStream<'static, Result<pb::ExportResponse, Status>>;

    async fn export(&self, request: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        QueryApi::export(self, request.into_inner()).await.map(Response::new)
    }
}

/// Checkpoints, proofs and server-side verification (DESIGN §7).
#[derive(Clone)]
pub struct ProofApi {
    logs: Arc<Logs>,
    cache: Arc<crate::proof::BatchCache>,
}

impl ProofApi {
    pub fn new(logs: Arc<Logs>) -> Self {
        ProofApi { logs, cache: Arc::default() }
    }

    fn log(&self, name: &str) -> Result<&Log, Status> {
        self.logs.by_name(name).ok_or_else(|| Status::not_found(format!("log: no log named {name:?}")))
    }

    fn basis(&self, log: &Log) -> Result<crate::proof::ProofBasis, Status> {
        log.proof_basis().ok_or_else(|| {
            Status::failed_precondition(format!("log {}: no batch has been sealed yet, so there is no checkpoint", log.name()))
        })
    }
}

pub fn status_from_proof(error: crate::proof::Error) -> Status {
    use crate::proof::Error;
    match &error {
        Error::NotSealed { .. } | Error::NoCheckpoint { .. } => Status::failed_precondition(error.to_string()),
        Error::NoSuchSeq { .. } | Error::NoSuchId { .. } => Status::not_found(error.to_string()),
        Error::AmbiguousId { .. } => Status::failed_precondition(error.to_string()),
        Error::Store(store_error) if store_error.is_transient() => Status::unavailable(error.to_string()),
        Error::Archive(_) | Error::Store(_) => {
            tracing::error!(%error, "proof failed");
            Status::internal(error.to_string())
        }
    }
}

#[tonic::async_trait]
impl pb::proof_service_server::ProofService for ProofApi {
    async fn get_checkpoint(&self, request: Request<pb::GetCheckpointRequest>) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let log = self.log(&request.get_ref().log)?;
        let checkpoint = self.basis(log)?.checkpoint;
        Ok(Response::new(pb::GetCheckpointResponse { checkpoint }))
    }

    async fn get_event_proof(&self, request: Request<pb::GetEventProofRequest>) -> Result<Response<pb::GetEventProofResponse>, Status> {
        let request = request.into_inner();
        let log = self.log(&request.log)?;
        let basis = self.basis(log)?;
        let store = log.store().as_ref();
        let seq = match request.key {
            Some(pb::get_event_proof_request::Key::Seq(seq)) => {
                if seq >= log.committed_next().0 && log.unsealed_events().iter().all(|event| event.seq.0 != seq) {
                    return Err(status_from_proof(crate::proof::Error::NoSuchSeq { log: log.name().to_string(), seq }));
                }
                seq
            }
            Some(pb::get_event_proof_request::Key::EventId(id)) => {
                if id.is_empty() || id.len() > validate::MAX_ID_BYTES {
                    return Err(Status::invalid_argument(format!("event_id: must be 1 to {} bytes", validate::MAX_ID_BYTES)));
                }
                let seqs = crate::proof::find_by_id(store, &basis, &id).await.map_err(status_from_proof)?;
                match seqs.as_slice() {
                    [] => return Err(status_from_proof(crate::proof::Error::NoSuchId { log: log.name().to_string(), id })),
                    [seq] => *seq,
                    _ => return Err(status_from_proof(crate::proof::Error::AmbiguousId { id, count: seqs.len(), seqs })),
                }
            }
            None => return Err(Status::invalid_argument("key: set seq or event_id")),
        };
        let proof_json = crate::proof::build(store, &self.cache, &basis, seq).await.map_err(status_from_proof)?;
        Ok(Response::new(pb::GetEventProofResponse { proof_json }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let log = self.log(&request.log)?;
        let basis = self.basis(log)?;
        if request.old_size == 0 || request.old_size > request.new_size {
            return Err(Status::invalid_argument(format!(
                "old_size: must be between 1 and new_size ({}), got {}",
                request.new_size, request.old_size
            )));
        }
        if request.new_size > basis.checkpoint_size {
            return Err(Status::out_of_range(format!(
                "new_size: {} exceeds the latest checkpoint's size {}",
                request.new_size, basis.checkpoint_size
            )));
        }
        let path = crate::merkle::consistency_path(&basis.entry_hashes[..request.new_size as usize], request.old_size as usize)
            .map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(pb::GetConsistencyProofResponse { path: path.iter().map(|hash| hash.to_vec()).collect() }))
    }

    type VerifyLogStream = futures::stream::BoxStream<'static, Result<pb::VerifyLogResponse, Status>>;

    async fn verify_log(&self, request: Request<pb::VerifyLogRequest>) -> Result<Response<Self::VerifyLogStream>, Status> {
        let log = self.log(&request.get_ref().log)?.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<pb::VerifyLogResponse, Status>>(64);
        tokio::spawn(async move {
            let progress_sender = sender.clone();
            let progress = move |progress: &crate::verify::Progress| {
                let _ = progress_sender.try_send(Ok(pb::VerifyLogResponse {
                    entries_checked: progress.entries_checked,
                    events_checked: progress.events_checked,
                    ..Default::default()
                }));
            };
            let options = crate::verify::Options::default();
            match crate::verify::verify_log_with(log.store().as_ref(), log.name(), &log.verifier(), &options, progress).await {
                Ok(report) => {
                    for problem in &report.problems {
                        let message = pb::VerifyLogResponse {
                            entries_checked: report.entries,
                            events_checked: report.events,
                            problem: format!("{}: {}", problem.kind, problem.detail),
                            object: problem.object.clone(),
                            ..Default::default()
                        };
                        if sender.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                    let _ = sender
                        .send(Ok(pb::VerifyLogResponse {
                            entries_checked: report.entries,
                            events_checked: report.events,
                            done: true,
                            ok: report.ok(),
                            problem: if report.ok() { String::new() } else { report.summary() },
                            ..Default::default()
                        }))
                        .await;
                }
                Err(error) => {
                    let _ = sender.send(Err(Status::unavailable(format!("verification could not read the store: {error}")))).await;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}
