//! gRPC services (DESIGN §8). Errors become tonic statuses here and nowhere else.

use crate::auth::{Authenticator, Caller, Scope};
use crate::config::DEFAULT_LOG;
use crate::event::Seq;
use crate::log::{self, Log};
use crate::pb;
use crate::validate::{self, ValidationError, Validator};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

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

/// One call: who made it, from where, under which request id.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: Caller,
    pub method: &'static str,
    pub request_id: String,
    source_ip: String,
    user_agent: String,
}

impl Call {
    /// The span every log line of the call is in.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("rpc", method = self.method, request_id = %self.request_id, key = %self.caller.key_id())
    }
}

/// A client-chosen `x-request-id` when sane, else a new one.
fn request_id(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|byte| byte.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// What a meta-audit event says about a call (DESIGN §8).
pub struct MetaNote {
    pub action: &'static str,
    pub tenant: String,
    pub target_type: &'static str,
    pub target_id: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Authentication, authorization and meta-audit, shared by every service.
#[derive(Debug)]
pub struct Guard {
    authenticator: Authenticator,
    logs: Arc<Logs>,
    validator: Arc<Validator>,
    meta_audit: bool,
    meta_audit_tenant: String,
}

fn refused(status: Status) -> Status {
    let code = format!("{:?}", status.code());
    crate::metrics::METRICS.auth_refused.get_or_create(&crate::metrics::AuthFailure { code }).inc();
    status
}

impl Guard {
    pub fn new(config: &crate::config::Config, logs: Arc<Logs>, validator: Arc<Validator>) -> Guard {
        Guard {
            authenticator: Authenticator::from_config(config),
            logs,
            validator,
            meta_audit: config.meta_audit,
            meta_audit_tenant: config.meta_audit_tenant.clone(),
        }
    }

    pub fn development_mode(&self) -> bool {
        self.authenticator.development_mode()
    }

    /// Authenticates a call and checks its scope; the key's rate limit is charged `cost`.
    pub fn open<T>(&self, method: &'static str, scope: Scope, cost: usize, request: &Request<T>) -> Result<Call, Status> {
        let caller = self.authenticator.authenticate(request.metadata()).map_err(refused)?;
        let call = Call {
            caller,
            method,
            request_id: request_id(request.metadata()),
            source_ip: request.remote_addr().map(|addr| addr.ip().to_string()).unwrap_or_default(),
            user_agent: request
                .metadata()
                .get("user-agent")
                .and_then(|value| value.to_str().ok())
                .map(|agent| agent.chars().take(256).collect())
                .unwrap_or_default(),
        };
        if let Err(status) = call.caller.require_scope(scope) {
            tracing::warn!(parent: &call.span(), scope = scope.as_str(), "call refused: missing scope");
            return Err(refused(status));
        }
        call.caller.charge(cost)?;
        Ok(call)
    }

    /// A refused call is itself recorded (outcome DENIED) in the caller's tenant, so attempts to
    /// reach another tenant leave a trace; returns the status to answer with.
    pub async fn deny(&self, call: &Call, status: Status, mut note: MetaNote) -> Status {
        tracing::warn!(parent: &call.span(), reason = %status.message(), "call refused");
        if let Some(own) = call.caller.tenant() {
            note.tenant = own.to_string();
        }
        if let Err(error) = self.write(call, note, Some(&status)).await {
            tracing::warn!(parent: &call.span(), %error, "cannot record the refused call");
        }
        refused(status)
    }

    /// Records the call, before it runs when `permitted`, or as refused (see [`Guard::deny`]).
    pub async fn admit(&self, call: &Call, permitted: Result<(), Status>, note: MetaNote) -> Result<(), Status> {
        match permitted {
            Ok(()) => self.record(call, note).await,
            Err(status) => Err(self.deny(call, status, note).await),
        }
    }

    /// Records a permitted Query, Export or proof call before it runs: a read that cannot be
    /// recorded is not served.
    pub async fn record(&self, call: &Call, note: MetaNote) -> Result<(), Status> {
        self.write(call, note, None).await
    }

    /// The tenant of meta-audit events for calls that name no tenant.
    pub fn log_wide_tenant(&self, call: &Call) -> String {
        call.caller.tenant().unwrap_or(&self.meta_audit_tenant).to_string()
    }

    /// Refuses a tenant-bound key any log but its tenant's.
    pub fn require_log(&self, call: &Call, log: &Log) -> Result<(), Status> {
        let Some(own) = call.caller.tenant() else { return Ok(()) };
        match self.logs.for_tenant(own) {
            Some(own_log) if own_log.name() == log.name() => Ok(()),
            _ => Err(Status::permission_denied(format!(
                "log: api key {:?} is bound to tenant {own:?}, whose events are not in log {:?}",
                call.caller.key_id(),
                log.name()
            ))),
        }
    }

    async fn write(&self, call: &Call, note: MetaNote, denied: Option<&Status>) -> Result<(), Status> {
        if !self.meta_audit {
            return Ok(());
        }
        let now = log::now_micros();
        let (result, error_code, reason) = match denied {
            Some(status) => (pb::OutcomeResult::Denied, format!("{:?}", status.code()), status.message().chars().take(1000).collect()),
            None => (pb::OutcomeResult::Success, String::new(), String::new()),
        };
        let mut details = note.details;
        details.insert("rpc".into(), call.method.into());
        let actor_type = if call.caller.is_anonymous() { pb::ActorType::Anonymous } else { pb::ActorType::ApiKey };
        let event = pb::AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: note.tenant,
            occurred_at: Some(timestamp_from_micros(now)),
            action: note.action.to_string(),
            actor: Some(pb::Actor { id: call.caller.key_id().to_string(), r#type: actor_type as i32, name: String::new() }),
            target: Some(pb::Target { r#type: note.target_type.to_string(), id: note.target_id, name: String::new() }),
            outcome: Some(pb::Outcome { result: result as i32, error_code, reason }),
            context: Some(pb::Context {
                request_id: call.request_id.clone(),
                correlation_id: String::new(),
                session_id: String::new(),
                source_ip: call.source_ip.clone(),
                user_agent: call.user_agent.clone(),
                service: "auditum".to_string(),
            }),
            before: None,
            after: None,
            metadata: Some(crate::client::json_to_struct(&details)),
        };
        let record = self.validator.prepare(0, event, now).map_err(|error| Status::internal(format!("meta-audit event: {error}")))?;
        let log = self.logs.for_tenant(&record.tenant_id).ok_or_else(|| {
            Status::internal(format!("no log is configured for tenant {:?} and there is no default log", record.tenant_id))
        })?;
        log.append(vec![record]).await.map_err(status_from_log)?;
        crate::metrics::METRICS.meta_audit_events.get_or_create(&crate::metrics::log_label(log.name())).inc();
        Ok(())
    }
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The filter as meta-audit metadata: its set fields only.
pub fn filter_details(filter: &pb::EventFilter) -> serde_json::Value {
    use serde_json::{Map, Value};
    let mut out = Map::new();
    let mut text = |name: &str, value: &str| {
        if !value.is_empty() {
            out.insert(name.to_string(), Value::String(value.to_string()));
        }
    };
    text("tenant_id", &filter.tenant_id);
    text("actor_id", &filter.actor_id);
    text("target_type", &filter.target_type);
    text("target_id", &filter.target_id);
    text("request_id", &filter.request_id);
    text("correlation_id", &filter.correlation_id);
    text("session_id", &filter.session_id);
    text("source_ip", &filter.source_ip);
    let time = |timestamp: &Option<prost_types::Timestamp>| {
        timestamp.as_ref().and_then(|time| validate::timestamp_micros(time).ok()).map(crate::export::rfc3339_micros)
    };
    if let Some(start) = time(&filter.start_time) {
        out.insert("start_time".into(), Value::String(start));
    }
    if let Some(end) = time(&filter.end_time) {
        out.insert("end_time".into(), Value::String(end));
    }
    if filter.actor_type != 0 {
        let name = pb::ActorType::try_from(filter.actor_type).map(|value| value.as_str_name().to_string());
        out.insert("actor_type".into(), Value::String(name.unwrap_or_else(|_| filter.actor_type.to_string())));
    }
    if filter.outcome != 0 {
        let name = pb::OutcomeResult::try_from(filter.outcome).map(|value| value.as_str_name().to_string());
        out.insert("outcome".into(), Value::String(name.unwrap_or_else(|_| filter.outcome.to_string())));
    }
    if !filter.actions.is_empty() {
        out.insert("actions".into(), Value::Array(filter.actions.iter().cloned().map(Value::String).collect()));
    }
    Value::Object(out)
}

#[derive(Debug, Clone)]
pub struct IngestApi {
    logs: Arc<Logs>,
    validator: Arc<Validator>,
    guard: Arc<Guard>,
}

impl IngestApi {
    pub fn new(logs: Arc<Logs>, validator: Arc<Validator>, guard: Arc<Guard>) -> Self {
        IngestApi { logs, validator, guard }
    }

    /// Validates, routes by tenant, appends per log, and answers in request order.
    pub async fn append(&self, call: &Call, request: pb::AppendRequest) -> Result<pb::AppendResponse, Status> {
        validate::check_append_request(&request).map_err(status_from_validation)?;
        let now = log::now_micros();
        // Validate every event before appending any: a bad event rejects the whole call.
        let mut per_log: HashMap<String, (Log, Vec<usize>, Vec<crate::event::EventRecord>)> = HashMap::new();
        let event_count = request.events.len();
        let wait_for_seal = request.wait_for_seal;
        for (index, event) in request.events.into_iter().enumerate() {
            let record = self.validator.prepare(index, event, now).map_err(status_from_validation)?;
            if let Err(status) = call.caller.require_tenant(&format!("events[{index}].tenant_id"), &record.tenant_id) {
                tracing::warn!(reason = %status.message(), "append refused");
                return Err(refused(status));
            }
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
        // Rate limits count events: one per event, one for an empty call.
        let call = self.guard.open("Append", Scope::Append, request.get_ref().events.len().max(1), &request)?;
        let span = call.span();
        IngestApi::append(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
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
    guard: Arc<Guard>,
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
    pub fn new(logs: Arc<Logs>, guard: Arc<Guard>) -> Self {
        QueryApi { logs, footers: Arc::new(crate::scan::FooterCache::new(FOOTER_CACHE_BYTES)), guard }
    }

    /// Tenant binding, then the meta-audit record, for a Query or an Export of `filter`.
    async fn admit(
        &self,
        call: &Call,
        action: &'static str,
        filter: &pb::EventFilter,
        mut details: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), Status> {
        details.insert("filter".into(), filter_details(filter));
        let note =
            MetaNote { action, tenant: filter.tenant_id.clone(), target_type: "tenant", target_id: filter.tenant_id.clone(), details };
        self.guard.admit(call, call.caller.require_tenant("filter.tenant_id", &filter.tenant_id), note).await
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

    pub async fn query(&self, call: &Call, request: pb::QueryRequest) -> Result<pb::QueryResponse, Status> {
        use crate::query::{self, Filter};
        let started = std::time::Instant::now();
        let filter = Filter::from_pb(request.filter.as_ref()).map_err(status_from_filter)?;
        let page_size = query::page_size(request.page_size).map_err(status_from_filter)?;
        let cursor = query::decode_page_token(&request.page_token, &filter, request.descending).map_err(status_from_filter)?;
        let log = self.log_for(&filter.tenant_id)?;
        // The snapshot comes first, so a query does not read its own meta-audit record.
        let snapshot = log.read_snapshot();
        let details = serde_json::json!({
            "page_size": page_size,
            "descending": request.descending,
            "continued": !request.page_token.is_empty(),
        });
        self.admit(call, "auditum.query", request.filter.as_ref().unwrap_or(&pb::EventFilter::default()), object(details)).await?;
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
        call: &Call,
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
        let details = serde_json::json!({
            "format": pb::ExportFormat::try_from(request.format).map(|format| format.as_str_name()).unwrap_or_default(),
            "include_unsealed": request.include_unsealed,
            "checkpoint_size": snapshot.checkpoint_size,
        });
        self.admit(call, "auditum.export", request.filter.as_ref().unwrap_or(&pb::EventFilter::default()), object(details)).await?;
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
        let call = self.guard.open("Query", Scope::Query, 1, &request)?;
        let span = call.span();
        QueryApi::query(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }

    type ExportStream = futures::stream::BoxStream<'static, Result<pb::ExportResponse, Status>>;

    async fn export(&self, request: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        let call = self.guard.open("Export", Scope::Export, 1, &request)?;
        let span = call.span();
        QueryApi::export(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }
}

/// Checkpoints, proofs and server-side verification (DESIGN §7).
#[derive(Clone)]
pub struct ProofApi {
    logs: Arc<Logs>,
    cache: Arc<crate::proof::BatchCache>,
    guard: Arc<Guard>,
}

impl ProofApi {
    pub fn new(logs: Arc<Logs>, guard: Arc<Guard>) -> Self {
        ProofApi { logs, cache: Arc::default(), guard }
    }

    fn log(&self, name: &str) -> Result<&Log, Status> {
        self.logs.by_name(name).ok_or_else(|| Status::not_found(format!("log: no log named {name:?}")))
    }

    fn basis(&self, log: &Log) -> Result<crate::proof::ProofBasis, Status> {
        log.proof_basis().ok_or_else(|| {
            Status::failed_precondition(format!("log {}: no batch has been sealed yet, so there is no checkpoint", log.name()))
        })
    }

    /// A log-wide proof call: the log must be the caller's tenant's; recorded as `auditum.proof`.
    async fn admit_log(&self, call: &Call, log: &Log, details: serde_json::Value) -> Result<(), Status> {
        let note = MetaNote {
            action: "auditum.proof",
            tenant: self.guard.log_wide_tenant(call),
            target_type: "log",
            target_id: log.name().to_string(),
            details: object(details),
        };
        self.guard.admit(call, self.guard.require_log(call, log), note).await
    }

    async fn get_event_proof(&self, call: &Call, request: pb::GetEventProofRequest) -> Result<pb::GetEventProofResponse, Status> {
        let log = self.log(&request.log)?;
        let details = match &request.key {
            Some(pb::get_event_proof_request::Key::Seq(seq)) => serde_json::json!({ "log": log.name(), "seq": seq }),
            Some(pb::get_event_proof_request::Key::EventId(id)) => serde_json::json!({ "log": log.name(), "event_id": id }),
            None => serde_json::json!({ "log": log.name() }),
        };
        let note = |tenant: String, target_id: String| MetaNote {
            action: "auditum.proof",
            tenant,
            target_type: "event",
            target_id,
            details: object(details.clone()),
        };
        if let Err(status) = self.guard.require_log(call, log) {
            return Err(self.guard.deny(call, status, note(self.guard.log_wide_tenant(call), String::new())).await);
        }
        let basis = self.basis(log)?;
        let store = log.store().as_ref();
        let seq = match request.key {
            Some(pb::get_event_proof_request::Key::Seq(seq)) => {
                if seq >= log.committed_next().0 {
                    // Not sealed yet: say so only to a caller who may see the event.
                    let unsealed = log.unsealed_events();
                    let Some(event) = unsealed.iter().find(|event| event.seq.0 == seq) else {
                        return Err(status_from_proof(crate::proof::Error::NoSuchSeq { log: log.name().to_string(), seq }));
                    };
                    if let Err(status) = call.caller.require_tenant("seq", &event.tenant_id) {
                        let target = format!("{}/{seq}", log.name());
                        return Err(self.guard.deny(call, status, note(event.tenant_id.clone(), target)).await);
                    }
                }
                seq
            }
            Some(pb::get_event_proof_request::Key::EventId(id)) => {
                if id.is_empty() || id.len() > validate::MAX_ID_BYTES {
                    return Err(Status::invalid_argument(format!("event_id: must be 1 to {} bytes", validate::MAX_ID_BYTES)));
                }
                // A tenant key looks only among its tenant's events: another tenant's ids stay invisible.
                let seqs = crate::proof::find_by_id(store, &basis, &id, call.caller.tenant()).await.map_err(status_from_proof)?;
                match seqs.as_slice() {
                    [] => return Err(status_from_proof(crate::proof::Error::NoSuchId { log: log.name().to_string(), id })),
                    [seq] => *seq,
                    _ => return Err(status_from_proof(crate::proof::Error::AmbiguousId { id, count: seqs.len(), seqs })),
                }
            }
            None => return Err(Status::invalid_argument("key: set seq or event_id")),
        };
        let proof_json = crate::proof::build(store, &self.cache, &basis, seq).await.map_err(status_from_proof)?;
        // The proof carries the whole event: only its tenant's keys may have it.
        let tenant = crate::proof::event_tenant(&proof_json).map_err(|error| Status::internal(format!("proof document: {error}")))?;
        let target = format!("{}/{seq}", log.name());
        self.guard.admit(call, call.caller.require_tenant("seq", &tenant), note(tenant, target)).await?;
        Ok(pb::GetEventProofResponse { proof_json })
    }

    async fn get_consistency_proof(
        &self,
        call: &Call,
        request: pb::GetConsistencyProofRequest,
    ) -> Result<pb::GetConsistencyProofResponse, Status> {
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
        let details = serde_json::json!({ "log": log.name(), "old_size": request.old_size, "new_size": request.new_size });
        self.admit_log(call, log, details).await?;
        let path = crate::merkle::consistency_path(&basis.entry_hashes[..request.new_size as usize], request.old_size as usize)
            .map_err(|error| Status::internal(error.to_string()))?;
        Ok(pb::GetConsistencyProofResponse { path: path.iter().map(|hash| hash.to_vec()).collect() })
    }

    fn verify_log(&self, log: Log) -> futures::stream::BoxStream<'static, Result<pb::VerifyLogResponse, Status>> {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<pb::VerifyLogResponse, Status>>(64);
        tokio::spawn(
            async move {
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
            }
            .in_current_span(),
        );
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
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
        let call = self.guard.open("GetCheckpoint", Scope::Proof, 1, &request)?;
        async {
            let log = self.log(&request.get_ref().log)?;
            let checkpoint = self.basis(log)?.checkpoint;
            self.admit_log(&call, log, serde_json::json!({ "log": log.name() })).await?;
            Ok(Response::new(pb::GetCheckpointResponse { checkpoint }))
        }
        .instrument(call.span())
        .await
    }

    async fn get_event_proof(&self, request: Request<pb::GetEventProofRequest>) -> Result<Response<pb::GetEventProofResponse>, Status> {
        let call = self.guard.open("GetEventProof", Scope::Proof, 1, &request)?;
        let span = call.span();
        ProofApi::get_event_proof(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let call = self.guard.open("GetConsistencyProof", Scope::Proof, 1, &request)?;
        let span = call.span();
        ProofApi::get_consistency_proof(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }

    type VerifyLogStream = futures::stream::BoxStream<'static, Result<pb::VerifyLogResponse, Status>>;

    async fn verify_log(&self, request: Request<pb::VerifyLogRequest>) -> Result<Response<Self::VerifyLogStream>, Status> {
        let call = self.guard.open("VerifyLog", Scope::Proof, 1, &request)?;
        let span = call.span();
        async {
            let log = self.log(&request.get_ref().log)?.clone();
            let note = MetaNote {
                action: "auditum.proof",
                tenant: self.guard.log_wide_tenant(&call),
                target_type: "log",
                target_id: log.name().to_string(),
                details: object(serde_json::json!({ "log": log.name(), "verify": true })),
            };
            // Verification reads every tenant's events of the log: platform keys only.
            self.guard.admit(&call, call.caller.require_platform("VerifyLog"), note).await?;
            Ok(Response::new(self.verify_log(log)))
        }
        .instrument(span)
        .await
    }
}
