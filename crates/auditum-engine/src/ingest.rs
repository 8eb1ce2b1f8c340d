//! Append (docs/API.md): validated records are routed by tenant, appended per log (acknowledged
//! once fsync'd), and answered in request order.

use crate::access::{Access, Call};
use crate::error::{Error, Result};
use crate::log::{self, Log};
use crate::metrics::{METRICS, log_label};
use crate::router::Logs;
use auditum_format::event::{EventRecord, Seq};
use std::collections::HashMap;
use std::sync::Arc;

/// What Append answers for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: Seq,
    pub id: String,
    pub duplicate: bool,
    pub received_at: i64,
    pub log: String,
}

#[derive(Debug, Clone)]
pub struct Ingest {
    logs: Arc<Logs>,
    access: Arc<Access>,
}

impl Ingest {
    pub fn new(logs: Arc<Logs>, access: Arc<Access>) -> Ingest {
        Ingest { logs, access }
    }

    /// Appends a call's records (validated, in request order); with `wait_for_seal`, answers once
    /// they are committed and covered by a checkpoint.
    pub async fn append(&self, call: &Call, records: Vec<EventRecord>, wait_for_seal: bool) -> Result<Vec<Appended>> {
        let event_count = records.len();
        let mut per_log: HashMap<String, (Log, Vec<usize>, Vec<EventRecord>)> = HashMap::new();
        for (index, record) in records.into_iter().enumerate() {
            self.access.require_append_tenant(call, &format!("events[{index}].tenant_id"), &record.tenant_id)?;
            let log = self.logs.for_tenant(&record.tenant_id).ok_or_else(|| Error::NoLogForTenant { tenant: record.tenant_id.clone() })?;
            let slot = per_log.entry(log.name().to_string()).or_insert_with(|| (log.clone(), Vec::new(), Vec::new()));
            slot.1.push(index);
            slot.2.push(record);
        }
        let mut results: Vec<Option<Appended>> = vec![None; event_count];
        let started = std::time::Instant::now();
        let appends = per_log.into_values().map(|(log, indexes, records)| async move {
            let appended = log.append(records).await?;
            METRICS.append_latency.get_or_create(&log_label(log.name())).observe(started.elapsed().as_secs_f64());
            if wait_for_seal {
                let end = appended.iter().map(|result| result.seq.next()).max().unwrap_or(Seq(0));
                log.wait_committed(end).await?;
            }
            Ok::<_, log::Error>((log.name().to_string(), indexes, appended))
        });
        for outcome in futures::future::join_all(appends).await {
            let (log_name, indexes, appended) = outcome?;
            for (index, result) in indexes.into_iter().zip(appended) {
                results[index] = Some(Appended {
                    seq: result.seq,
                    id: result.id,
                    duplicate: result.duplicate,
                    received_at: result.received_at,
                    log: log_name.clone(),
                });
            }
        }
        results.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| Error::Incomplete("an event got no result".into()))
    }
}
