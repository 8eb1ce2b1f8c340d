//! Prometheus metrics, process-wide, exposed on `--metrics-listen` at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LogLabel {
    pub log: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreOperation {
    pub log: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rejection {
    pub log: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabel {
    pub key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
    pub log: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthFailure {
    pub code: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

fn seal_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn batch_size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 10))
}

pub struct Metrics {
    registry: Registry,
    pub append_events: Family<LogLabel, Counter>,
    pub append_duplicates: Family<LogLabel, Counter>,
    pub append_bytes: Family<LogLabel, Counter>,
    pub append_rejected: Family<Rejection, Counter>,
    pub append_latency: HistogramFamily<LogLabel>,
    pub wal_bytes: Family<LogLabel, Gauge>,
    pub unsealed_events: Family<LogLabel, Gauge>,
    pub sealed_batches: Family<LogLabel, Counter>,
    pub sealed_events: Family<LogLabel, Counter>,
    pub seal_duration: HistogramFamily<LogLabel>,
    pub batch_events: HistogramFamily<LogLabel>,
    pub store_errors: Family<StoreOperation, Counter>,
    pub store_retries: Family<StoreOperation, Counter>,
    pub log_fenced: Family<LogLabel, Gauge>,
    pub query_latency: HistogramFamily<LogLabel>,
    pub export_duration: HistogramFamily<LogLabel>,
    pub export_rows: Family<LogLabel, Counter>,
    pub rows_scanned: Family<LogLabel, Counter>,
    pub query_bytes_read: Family<LogLabel, Counter>,
    pub rate_limited: Family<KeyLabel, Counter>,
    pub auth_refused: Family<AuthFailure, Counter>,
    pub meta_audit_events: Family<LogLabel, Counter>,
    pub delivery_lag_events: Family<SinkLabel, Gauge>,
    pub delivery_lag_seconds: Family<SinkLabel, Gauge>,
    pub delivered_events: Family<SinkLabel, Counter>,
    pub delivery_failures: Family<SinkLabel, Counter>,
    pub alerts_fired: Family<RuleLabel, Counter>,
    pub alert_groups_evicted: Family<RuleLabel, Counter>,
    pub replica_staleness: Family<LogLabel, Gauge<f64, AtomicU64>>,
    pub replica_refused: Family<LogLabel, Gauge>,
    pub replica_refusals: Family<LogLabel, Counter>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("auditum");
        let metrics = Metrics {
            append_events: Family::default(),
            append_duplicates: Family::default(),
            append_bytes: Family::default(),
            append_rejected: Family::default(),
            append_latency: Family::new_with_constructor(latency_histogram),
            wal_bytes: Family::default(),
            unsealed_events: Family::default(),
            sealed_batches: Family::default(),
            sealed_events: Family::default(),
            seal_duration: Family::new_with_constructor(seal_histogram),
            batch_events: Family::new_with_constructor(batch_size_histogram),
            store_errors: Family::default(),
            store_retries: Family::default(),
            log_fenced: Family::default(),
            query_latency: Family::new_with_constructor(latency_histogram),
            export_duration: Family::new_with_constructor(seal_histogram),
            export_rows: Family::default(),
            rows_scanned: Family::default(),
            query_bytes_read: Family::default(),
            rate_limited: Family::default(),
            auth_refused: Family::default(),
            meta_audit_events: Family::default(),
            delivery_lag_events: Family::default(),
            delivery_lag_seconds: Family::default(),
            delivered_events: Family::default(),
            delivery_failures: Family::default(),
            alerts_fired: Family::default(),
            alert_groups_evicted: Family::default(),
            replica_staleness: Family::default(),
            replica_refused: Family::default(),
            replica_refusals: Family::default(),
            registry: Registry::default(),
        };
        registry.register("append_events", "Events appended (acknowledged, not duplicates)", metrics.append_events.clone());
        registry.register("append_duplicates", "Appended events answered as duplicates of a known id", metrics.append_duplicates.clone());
        registry.register("append_bytes", "Bytes written to the WAL by appends", metrics.append_bytes.clone());
        registry.register("append_rejected", "Append calls refused, by reason", metrics.append_rejected.clone());
        registry.register(
            "append_latency_seconds",
            "Append call latency until acknowledgement (after fsync)",
            metrics.append_latency.clone(),
        );
        registry.register("wal_bytes", "Bytes in the log's WAL segments", metrics.wal_bytes.clone());
        registry.register("unsealed_events", "Acknowledged events not yet committed in the ledger", metrics.unsealed_events.clone());
        registry.register("sealed_batches", "Batches committed to the ledger", metrics.sealed_batches.clone());
        registry.register("sealed_events", "Events committed to the ledger", metrics.sealed_events.clone());
        registry.register("seal_duration_seconds", "Time to encode, store and commit one batch", metrics.seal_duration.clone());
        registry.register("batch_events", "Events per sealed batch", metrics.batch_events.clone());
        registry.register("object_store_errors", "Failed object-store calls, by operation", metrics.store_errors.clone());
        registry.register("object_store_retries", "Object-store calls retried after a failure", metrics.store_retries.clone());
        registry.register(
            "log_fenced",
            "1 when another writer owns the log and this process stopped writing it",
            metrics.log_fenced.clone(),
        );
        registry.register("query_latency_seconds", "Query call latency", metrics.query_latency.clone());
        registry.register("export_duration_seconds", "Export call duration, start to summary", metrics.export_duration.clone());
        registry.register("export_rows", "Rows sent by exports", metrics.export_rows.clone());
        registry.register("rows_scanned", "Rows whose predicate columns queries and exports decoded", metrics.rows_scanned.clone());
        registry.register("query_bytes_read", "Object-store bytes read by queries and exports", metrics.query_bytes_read.clone());
        registry.register("rate_limited", "Calls refused by a key's rate limit", metrics.rate_limited.clone());
        registry.register("auth_refused", "Calls refused as unauthenticated or not permitted, by gRPC code", metrics.auth_refused.clone());
        registry.register("meta_audit_events", "Audit events recording Query, Export and proof calls", metrics.meta_audit_events.clone());
        registry.register("delivery_lag_events", "Durable events a sink has not considered yet", metrics.delivery_lag_events.clone());
        registry.register(
            "delivery_lag_seconds",
            "Age of the oldest event a sink has taken but not delivered (0 when caught up)",
            metrics.delivery_lag_seconds.clone(),
        );
        registry.register("delivered_events", "Events a sink acknowledged with a 2xx", metrics.delivered_events.clone());
        registry.register(
            "delivery_failures",
            "Delivery attempts that failed (a non-2xx answer or no answer)",
            metrics.delivery_failures.clone(),
        );
        registry.register("alerts_fired", "Alerts fired, by rule", metrics.alerts_fired.clone());
        registry.register(
            "alert_groups_evicted",
            "Groups a rule stopped tracking because it hit its cap on tracked groups",
            metrics.alert_groups_evicted.clone(),
        );
        registry.register(
            "replica_staleness_seconds",
            "Read-only node: seconds since it last served the writer's latest checkpoint (about the follow interval when healthy)",
            metrics.replica_staleness.clone(),
        );
        registry.register(
            "replica_checkpoint_refused",
            "Read-only node: 1 while the store's checkpoint fails verification and the last verified state is served",
            metrics.replica_refused.clone(),
        );
        registry.register(
            "replica_checkpoint_refusals",
            "Read-only node: checkpoints refused (bad signature, rollback, fork, broken chain)",
            metrics.replica_refusals.clone(),
        );
        Metrics { registry, ..metrics }
    }

    /// Creates every series a process with these logs, API keys, sinks and alert rules can have,
    /// at zero: dashboards and `absent()` alerts work before the first event. Series labelled by
    /// something only a request names (a refusal code) are created for every value it can take.
    pub fn init_series(&self, logs: &[String], keys: &[String], sinks: &[String], rules: &[String], read_only: bool) {
        for log in logs {
            let label = log_label(log);
            for family in [&self.append_events, &self.append_duplicates, &self.append_bytes, &self.sealed_batches, &self.sealed_events] {
                let _ = family.get_or_create(&label);
            }
            for family in [&self.export_rows, &self.rows_scanned, &self.query_bytes_read, &self.meta_audit_events] {
                let _ = family.get_or_create(&label);
            }
            for family in [&self.wal_bytes, &self.unsealed_events, &self.log_fenced] {
                let _ = family.get_or_create(&label);
            }
            for family in [&self.append_latency, &self.seal_duration, &self.batch_events, &self.query_latency, &self.export_duration] {
                let _ = family.get_or_create(&label);
            }
            for reason in REJECTION_REASONS {
                let _ = self.append_rejected.get_or_create(&Rejection { log: log.clone(), reason: reason.to_string() });
            }
            for operation in STORE_OPERATIONS {
                let label = StoreOperation { log: log.clone(), operation: operation.to_string() };
                let _ = self.store_errors.get_or_create(&label);
                let _ = self.store_retries.get_or_create(&label);
            }
            if read_only {
                let _ = self.replica_staleness.get_or_create(&label);
                let _ = self.replica_refused.get_or_create(&label);
                let _ = self.replica_refusals.get_or_create(&label);
            }
            for sink in sinks {
                let label = SinkLabel { sink: sink.clone(), log: log.clone() };
                let _ = self.delivery_lag_events.get_or_create(&label);
                let _ = self.delivery_lag_seconds.get_or_create(&label);
                let _ = self.delivered_events.get_or_create(&label);
                let _ = self.delivery_failures.get_or_create(&label);
            }
        }
        for key in keys {
            let _ = self.rate_limited.get_or_create(&KeyLabel { key: key.clone() });
        }
        for code in ["Unauthenticated", "PermissionDenied", "ResourceExhausted"] {
            let _ = self.auth_refused.get_or_create(&AuthFailure { code: code.to_string() });
        }
        for rule in rules {
            let _ = self.alerts_fired.get_or_create(&RuleLabel { rule: rule.clone() });
            let _ = self.alert_groups_evicted.get_or_create(&RuleLabel { rule: rule.clone() });
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Every `reason` of `auditum_append_rejected_total`.
pub const REJECTION_REASONS: [&str; 4] = ["fenced", "wal_failed", "shutting_down", "wal_full"];
/// Every `operation` of the object-store error and retry counters.
pub const STORE_OPERATIONS: [&str; 5] = ["put batch", "ledger entry", "checkpoint", "replace latest checkpoint", "read latest checkpoint"];

pub fn log_label(log: &str) -> LogLabel {
    LogLabel { log: log.to_string() }
}
