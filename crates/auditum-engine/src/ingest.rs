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

/// One log's part of an Append call: its events, their indexes in the call, their subjects.
struct LogShare {
    log: Log,
    indexes: Vec<usize>,
    records: Vec<EventRecord>,
    subjects: Vec<Option<String>>,
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
    /// `subjects[i]` is the data subject of `records[i]` (DESIGN §14; None or missing: the actor).
    pub async fn append(
        &self,
        call: &Call,
        records: Vec<EventRecord>,
        subjects: Vec<Option<String>>,
        wait_for_seal: bool,
    ) -> Result<Vec<Appended>> {
        let event_count = records.len();
        let mut subjects = subjects.into_iter();
        let mut per_log: HashMap<String, LogShare> = HashMap::new();
        for (index, record) in records.into_iter().enumerate() {
            self.access.require_append_tenant(call, &format!("events[{index}].tenant_id"), &record.tenant_id)?;
            let log = self.logs.for_tenant(&record.tenant_id).ok_or_else(|| Error::NoLogForTenant { tenant: record.tenant_id.clone() })?;
            let share = per_log.entry(log.name().to_string()).or_insert_with(|| LogShare {
                log: log.clone(),
                indexes: Vec::new(),
                records: Vec::new(),
                subjects: Vec::new(),
            });
            share.indexes.push(index);
            share.records.push(record);
            share.subjects.push(subjects.next().flatten());
        }
        let mut results: Vec<Option<Appended>> = vec![None; event_count];
        let started = std::time::Instant::now();
        let appends = per_log.into_values().map(|LogShare { log, indexes, records, subjects }| async move {
            let appended = log.append_for_subjects(records, &subjects).await?;
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
