//! Query and Export (docs/API.md) over sealed batches and unsealed events: the filter rules, the
//! tenant binding and meta-audit record, then the scan on the blocking pool.

use crate::access::{Access, Call, MetaNote, object};
use crate::archive;
use crate::encryption;
use crate::error::{Error, Result};
use crate::export::pipeline::{self, ExportItem, ExportJob};
use crate::export::{Failure, Format};
use crate::log::Log;
use crate::metrics::{METRICS, log_label};
use crate::read::{self, Filter, FilterSpec, ScanContext, ScanRow};
use crate::router::Logs;
use crate::scan::{FooterCache, IoCounters, MAX_DECODE_ROWS, ScanStats};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Footer cache budget shared by queries and exports.
const FOOTER_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Memory Summarize's ordered answers of sealed batches may take (beside their counts' 64 MiB):
/// the same, so an answer whose counts are cached can have its order cached too.
const SORTED_SUMMARY_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// One Query call.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub filter: FilterSpec,
    /// The filter as the client sent it, for the meta-audit record.
    pub filter_details: Value,
    pub page_size: u32,
    pub page_token: String,
    pub descending: bool,
}

/// One page of results.
#[derive(Debug)]
pub struct QueryPage {
    pub log: String,
    pub rows: Vec<ScanRow>,
    /// Empty when no page follows.
    pub next_page_token: String,
    pub stats: ScanStats,
    pub bytes_read: u64,
    pub read_requests: u64,
    pub pages_read: u64,
}

/// One Export call.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub filter: FilterSpec,
    pub filter_details: Value,
    pub format: Format,
    /// The format's wire name, for the meta-audit record.
    pub format_name: String,
    pub include_unsealed: bool,
    /// Encrypted fields as stored instead of decrypted (DESIGN §14).
    pub raw: bool,
}

#[derive(Clone)]
pub struct Reader {
    logs: Arc<Logs>,
    footers: Arc<FooterCache>,
    /// Partial counts of sealed batches for Summarize.
    summaries: Arc<crate::read::counts::SummaryCache>,
    /// Those counts summed over a ledger prefix, in the answer's order.
    sorted_summaries: Arc<crate::read::counts::SummaryCache<Vec<crate::read::counts::SummaryRow>>>,
    access: Arc<Access>,
    /// Becomes true when the server begins to stop: subscriptions end then.
    closing: tokio::sync::watch::Receiver<bool>,
    /// The sender of a reader made without one, kept so `closing` never reports a closed channel.
    _never_closing: Option<Arc<tokio::sync::watch::Sender<bool>>>,
}

impl Reader {
    pub fn new(logs: Arc<Logs>, access: Arc<Access>) -> Reader {
        let (never_closing, closing) = tokio::sync::watch::channel(false);
        Reader {
            logs,
            footers: Arc::new(FooterCache::new(FOOTER_CACHE_BYTES)),
            summaries: Arc::default(),
            sorted_summaries: Arc::new(crate::read::counts::SummaryCache::with_budget(SORTED_SUMMARY_CACHE_BYTES)),
            access,
            closing,
            _never_closing: Some(Arc::new(never_closing)),
        }
    }

    /// Ends long-lived streams (subscriptions) when `closing` becomes true.
    pub fn closing_on(mut self, closing: tokio::sync::watch::Receiver<bool>) -> Reader {
        self.closing = closing;
        self._never_closing = None;
        self
    }

    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.clone()
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    pub(crate) fn summary_cache(&self) -> Arc<crate::read::counts::SummaryCache> {
        self.summaries.clone()
    }

    pub(crate) fn sorted_summary_cache(&self) -> Arc<crate::read::counts::SummaryCache<Vec<crate::read::counts::SummaryRow>>> {
        self.sorted_summaries.clone()
    }

    /// Tenant binding, then the meta-audit record, for a Query, an Export or a Summarize.
    pub(crate) async fn admit(
        &self,
        call: &Call,
        action: &'static str,
        tenant_id: &str,
        filter_details: Value,
        mut details: Map<String, Value>,
    ) -> Result<()> {
        details.insert("filter".into(), filter_details);
        let note = MetaNote { action, tenant: tenant_id.to_string(), target_type: "tenant", target_id: tenant_id.to_string(), details };
        self.access.admit(call, call.caller.require_tenant("filter.tenant_id", tenant_id), note).await
    }

    pub(crate) fn log_for_tenant(&self, tenant_id: &str) -> Result<&Log> {
        self.logs.for_tenant(tenant_id).ok_or_else(|| Error::NoLogForTenant { tenant: tenant_id.to_string() })
    }

    /// How a follower of `log` reads its batches (subscriptions, alert rules, deliveries).
    pub fn follow_context(&self, log: &Log) -> ScanContext {
        self.scan_context(log, Arc::new(IoCounters::default()), MAX_DECODE_ROWS)
    }

    pub(crate) fn scan_context(&self, log: &Log, io: Arc<IoCounters>, decode_rows: usize) -> ScanContext {
        ScanContext {
            store: log.store().clone(),
            footers: self.footers.clone(),
            runtime: tokio::runtime::Handle::current(),
            io,
            decode_rows,
        }
    }

    pub async fn query(&self, call: &Call, request: QueryRequest) -> Result<QueryPage> {
        let started = std::time::Instant::now();
        let filter = Filter::new(&request.filter)?;
        let page_size = read::page_size(request.page_size)?;
        let cursor = read::decode_page_token(&request.page_token, &filter, request.descending)?;
        let log = self.log_for_tenant(&filter.tenant_id)?;
        encryption::refuse_encrypted_filters(call, log, &filter.tenant_id, &request.filter)?;
        log.require_store()?;
        // The snapshot comes first, so a query does not read its own meta-audit record.
        let snapshot = log.read_snapshot(&filter.tenant_id, filter.occurred_window());
        let details = serde_json::json!({
            "page_size": page_size,
            "descending": request.descending,
            "continued": !request.page_token.is_empty(),
        });
        let recording = self.admit(call, "auditum.query", &filter.tenant_id, request.filter_details, object(details));
        if call.caller.require_tenant("filter.tenant_id", &filter.tenant_id).is_err() {
            // Refused: `admit` records the refusal and returns its error; nothing is read.
            recording.await?;
            return Err(Error::Task { what: "query", reason: "a refused read was recorded as permitted".into() });
        }
        let io = Arc::new(IoCounters::default());
        let context = self.scan_context(log, io.clone(), page_size + 1);
        let predicate = filter.predicate(cursor, request.descending);
        let tenant_id = filter.tenant_id.clone();
        // Kept to name archived batches should the scan meet one (worked out only then).
        let naming = (predicate.clone(), snapshot.entries.len());
        let scanning = tokio::task::spawn_blocking(move || {
            let scan = read::Scan::new(context, &tenant_id, predicate, &snapshot.entries, &snapshot.unsealed);
            read::run_page(scan, page_size, read::merge::MAX_PAGE_BYTES)
        });
        // The page is read while its meta-audit record becomes durable (under ingest the record
        // waits for a group commit), and served only once the record is: a read that cannot be
        // recorded is still not served.
        let (recorded, page) = tokio::join!(recording, scanning);
        recorded?;
        let page = page.map_err(|error| Error::Task { what: "query", reason: error.to_string() })?;
        let page = match page {
            Err(crate::scan::Error::Store { source, .. }) if archive::is_archived(&source) => {
                let (predicate, entries) = naming;
                let snapshot = log.ledger_snapshot().entries;
                let candidates = predicate.candidates(&filter.tenant_id, &snapshot[..entries.min(snapshot.len())]);
                return Err(Error::Archived(archive::name_archived(log.name(), log.store(), &candidates).await));
            }
            other => other?,
        };
        let mut page = page;
        encryption::decrypt_rows(log, &mut page.rows).await?;
        let label = log_label(log.name());
        METRICS.query_latency.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        METRICS.rows_scanned.get_or_create(&label).inc_by(page.stats.rows_read);
        let bytes_read = io.bytes.load(Ordering::Relaxed);
        METRICS.query_bytes_read.get_or_create(&label).inc_by(bytes_read);
        Ok(QueryPage {
            log: log.name().to_string(),
            rows: page.rows,
            next_page_token: page.next.map(|last| read::encode_page_token(&filter, request.descending, last)).unwrap_or_default(),
            stats: page.stats,
            bytes_read,
            read_requests: io.requests.load(Ordering::Relaxed),
            pages_read: io.pages.load(Ordering::Relaxed),
        })
    }

    /// Starts an export; its chunks and summary arrive on the returned channel.
    pub async fn export(&self, call: &Call, request: ExportRequest) -> Result<tokio::sync::mpsc::Receiver<Result<ExportItem, Failure>>> {
        let started = std::time::Instant::now();
        let filter = Filter::new(&request.filter)?;
        let log = self.log_for_tenant(&filter.tenant_id)?.clone();
        encryption::refuse_encrypted_filters(call, &log, &filter.tenant_id, &request.filter)?;
        log.require_store()?;
        // Without include_unsealed the export never looks at unsealed events: none are copied.
        let window = if request.include_unsealed { filter.occurred_window() } else { crate::read::OccurredWindow::NOTHING };
        let snapshot = log.read_snapshot(&filter.tenant_id, window);
        let details = serde_json::json!({
            "format": request.format_name,
            "include_unsealed": request.include_unsealed,
            "raw": request.raw,
            "checkpoint_size": snapshot.checkpoint_size,
        });
        self.admit(call, "auditum.export", &filter.tenant_id, request.filter_details, object(details)).await?;
        let io = Arc::new(IoCounters::default());
        let context = self.scan_context(&log, io.clone(), MAX_DECODE_ROWS);
        let predicate = filter.predicate(None, false);
        // Kept to name archived batches should the export meet one (worked out only then).
        let naming = (predicate.clone(), filter.tenant_id.clone(), snapshot.checkpoint_size);
        let mut items = pipeline::start(ExportJob {
            context,
            io,
            predicate,
            tenant_id: filter.tenant_id,
            snapshot,
            include_unsealed: request.include_unsealed,
            format: request.format,
            started,
            decrypt: if request.raw { None } else { log.encryption().map(|encryption| encryption.keyring.clone()) },
        });
        // The pipeline runs on the blocking pool; naming archived batches takes HEADs, so an
        // archived batch's failure is rewritten here, on the way out.
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            while let Some(item) = items.recv().await {
                let item = match item {
                    Err(failure) if failure.is_archived() => {
                        let (predicate, tenant_id, covered) = &naming;
                        let entries = log.ledger_snapshot().entries;
                        let candidates = predicate.candidates(tenant_id, &entries[..(*covered).min(entries.len())]);
                        Err(Failure::Archived(archive::name_archived(log.name(), log.store(), &candidates).await))
                    }
                    other => other,
                };
                if sender.send(item).await.is_err() {
                    return;
                }
            }
        });
        Ok(receiver)
    }
}
