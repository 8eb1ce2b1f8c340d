//! Query (DESIGN §8): filters, keyset pagination on (occurred_at, seq), and the ordered merge of
//! sealed batches (pruned by the ledger catalog, read through [`crate::scan`]) with the events
//! still unsealed.
//!
//! The scan is synchronous and runs on the blocking pool; store reads block on the runtime.

use crate::event::{EventRecord, LeafHash};
use crate::ledger::LedgerEntry;
use crate::pb;
use crate::scan::{self, BatchScan, FooterCache, IoCounters, Predicate, RangeReader, ScanStats, TextTest};
use crate::store::ObjectStore;
use crate::validate;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;
pub const MAX_FILTER_ACTIONS: usize = 100;
/// Longest value accepted for filter fields the design does not bound.
pub const MAX_FILTER_VALUE_BYTES: usize = 1024;

/// A request the filter rules reject: INVALID_ARGUMENT naming the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {rule}")]
pub struct FilterError {
    pub field: String,
    pub rule: String,
}

fn reject(field: &str, rule: impl Into<String>) -> FilterError {
    FilterError { field: field.to_string(), rule: rule.into() }
}

/// A validated `EventFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub tenant_id: String,
    /// occurred_at in [start, end), microseconds.
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Text column tests, `tenant_id` first.
    pub texts: Vec<(&'static str, TextTest)>,
}

/// Microseconds at or after a timestamp: an event at µs `m` is at or after `t` iff m ≥ ceil(t).
fn ceil_micros(field: &str, timestamp: &prost_types::Timestamp) -> Result<i64, FilterError> {
    let floor = validate::timestamp_micros(timestamp).map_err(|rule| reject(field, rule))?;
    Ok(if timestamp.nanos % 1000 != 0 { floor + 1 } else { floor })
}

impl Filter {
    pub fn from_pb(filter: Option<&pb::EventFilter>) -> Result<Filter, FilterError> {
        let Some(filter) = filter else { return Err(reject("filter", "required (filter.tenant_id at least)")) };
        if filter.tenant_id.is_empty() {
            return Err(reject("filter.tenant_id", "required"));
        }
        if filter.tenant_id.len() > validate::MAX_TENANT_BYTES || !validate::is_valid_tenant_id(&filter.tenant_id) {
            return Err(reject("filter.tenant_id", format!("must be 1 to {} bytes of [A-Za-z0-9._:-]", validate::MAX_TENANT_BYTES)));
        }
        let start = filter.start_time.as_ref().map(|time| ceil_micros("filter.start_time", time)).transpose()?;
        let end = filter.end_time.as_ref().map(|time| ceil_micros("filter.end_time", time)).transpose()?;
        if let (Some(start), Some(end)) = (start, end)
            && start >= end
        {
            return Err(reject("filter.end_time", "must be after start_time"));
        }
        let mut texts = vec![("tenant_id", TextTest::Equals(filter.tenant_id.clone()))];
        let mut equals = |column: &'static str, field: &str, value: &str, limit: usize| -> Result<(), FilterError> {
            if value.is_empty() {
                return Ok(());
            }
            if value.len() > limit {
                return Err(reject(field, format!("{} bytes exceeds the limit of {limit} bytes", value.len())));
            }
            texts.push((column, TextTest::Equals(value.to_string())));
            Ok(())
        };
        equals("actor_id", "filter.actor_id", &filter.actor_id, validate::MAX_ACTOR_ID_BYTES)?;
        let actor_type = validate::actor_type_name(filter.actor_type)
            .map_err(|value| reject("filter.actor_type", format!("unknown enum value {value}")))?;
        if let Some(actor_type) = actor_type {
            equals("actor_type", "filter.actor_type", actor_type, MAX_FILTER_VALUE_BYTES)?;
        }
        equals("target_type", "filter.target_type", &filter.target_type, MAX_FILTER_VALUE_BYTES)?;
        equals("target_id", "filter.target_id", &filter.target_id, MAX_FILTER_VALUE_BYTES)?;
        if filter.outcome != pb::OutcomeResult::Unspecified as i32 {
            let outcome = validate::outcome_name(filter.outcome).map_err(|rule| reject("filter.outcome", rule))?;
            equals("outcome", "filter.outcome", outcome, MAX_FILTER_VALUE_BYTES)?;
        }
        equals("request_id", "filter.request_id", &filter.request_id, MAX_FILTER_VALUE_BYTES)?;
        equals("correlation_id", "filter.correlation_id", &filter.correlation_id, MAX_FILTER_VALUE_BYTES)?;
        equals("session_id", "filter.session_id", &filter.session_id, MAX_FILTER_VALUE_BYTES)?;
        if !filter.source_ip.is_empty() {
            // Stored canonically (DESIGN §2.2 reading in the notes): compare canonically.
            let ip: std::net::IpAddr =
                filter.source_ip.parse().map_err(|_| reject("filter.source_ip", "must be a valid IPv4 or IPv6 address"))?;
            equals("source_ip", "filter.source_ip", &ip.to_string(), MAX_FILTER_VALUE_BYTES)?;
        }
        if filter.actions.len() > MAX_FILTER_ACTIONS {
            return Err(reject("filter.actions", format!("{} entries exceeds the limit of {MAX_FILTER_ACTIONS}", filter.actions.len())));
        }
        if !filter.actions.is_empty() {
            let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
            for (index, action) in filter.actions.iter().enumerate() {
                let field = format!("filter.actions[{index}]");
                if action.len() > validate::MAX_ACTION_BYTES {
                    return Err(reject(
                        &field,
                        format!("{} bytes exceeds the limit of {} bytes", action.len(), validate::MAX_ACTION_BYTES),
                    ));
                }
                match action.strip_suffix(".*") {
                    Some(prefix) if validate::is_valid_action(prefix) => prefixes.push(format!("{prefix}.")),
                    None if validate::is_valid_action(action) => exact.push(action.clone()),
                    _ => return Err(reject(&field, "must be an action like user.login, or a prefix like user.*")),
                }
            }
            exact.sort();
            exact.dedup();
            prefixes.sort();
            prefixes.dedup();
            texts.push(("action", TextTest::OneOf { exact, prefixes }));
        }
        Ok(Filter { tenant_id: filter.tenant_id.clone(), start, end, texts })
    }

    /// What a page token is bound to: this filter and the order.
    fn digest(&self, descending: bool) -> [u8; 16] {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(b"auditum/query/v1");
        field(&[u8::from(descending)]);
        field(&self.start.map_or([0; 9], prefixed));
        field(&self.end.map_or([0; 9], prefixed));
        for (column, test) in &self.texts {
            field(column.as_bytes());
            match test {
                TextTest::Equals(value) => field(value.as_bytes()),
                TextTest::OneOf { exact, prefixes } => {
                    field(b"exact");
                    exact.iter().for_each(|value| field(value.as_bytes()));
                    field(b"prefixes");
                    prefixes.iter().for_each(|value| field(value.as_bytes()));
                }
            }
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let mut out = [0; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    pub fn predicate(&self, cursor: Option<(i64, u64)>, descending: bool) -> Predicate {
        Predicate { texts: self.texts.clone(), start: self.start, end: self.end, cursor, descending }
    }
}

fn prefixed(value: i64) -> [u8; 9] {
    let mut out = [1; 9];
    out[1..].copy_from_slice(&value.to_be_bytes());
    out
}

const TOKEN_VERSION: u8 = 1;

/// Encodes the keyset position after `last`, bound to the filter and order.
pub fn encode_page_token(filter: &Filter, descending: bool, last: (i64, u64)) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(TOKEN_VERSION);
    bytes.extend_from_slice(&filter.digest(descending));
    bytes.extend_from_slice(&last.0.to_be_bytes());
    bytes.extend_from_slice(&last.1.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The keyset position of a page token, which must have been issued for this filter and order.
pub fn decode_page_token(token: &str, filter: &Filter, descending: bool) -> Result<Option<(i64, u64)>, FilterError> {
    if token.is_empty() {
        return Ok(None);
    }
    let malformed = || reject("page_token", "malformed: pass the next_page_token of the previous page unchanged");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    if bytes.len() != 33 || bytes[0] != TOKEN_VERSION {
        return Err(malformed());
    }
    if bytes[1..17] != filter.digest(descending) {
        return Err(reject("page_token", "was issued for another filter or order: repeat the same filter and descending with it"));
    }
    let occurred_at = i64::from_be_bytes(bytes[17..25].try_into().map_err(|_| malformed())?);
    let seq = u64::from_be_bytes(bytes[25..33].try_into().map_err(|_| malformed())?);
    Ok(Some((occurred_at, seq)))
}

/// The page size asked for, or the default; INVALID_ARGUMENT above the limit.
pub fn page_size(requested: u32) -> Result<usize, FilterError> {
    match requested as usize {
        0 => Ok(DEFAULT_PAGE_SIZE),
        size if size > MAX_PAGE_SIZE => Err(reject("page_size", format!("{size} exceeds the limit of {MAX_PAGE_SIZE}"))),
        size => Ok(size),
    }
}

/// What a read sees of one log: committed entries and unsealed events, taken atomically.
#[derive(Debug, Clone)]
pub struct ReadSnapshot {
    pub log: String,
    pub entries: Vec<Arc<LedgerEntry>>,
    pub unsealed: Vec<Arc<EventRecord>>,
    pub checkpoint: Option<String>,
    /// Entries covered by `checkpoint`.
    pub checkpoint_size: usize,
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRow {
    pub record: EventRecord,
    pub leaf_hash: LeafHash,
    /// The batch holding it; None while unsealed.
    pub batch_index: Option<u64>,
}

impl ScanRow {
    fn key(&self) -> (i64, u64) {
        (self.record.occurred_at, self.record.seq.0)
    }
}

/// The stored text of a column the filter can test.
pub fn text_column<'a>(record: &'a EventRecord, column: &str) -> Option<&'a str> {
    match column {
        "tenant_id" => Some(&record.tenant_id),
        "action" => Some(&record.action),
        "actor_id" => Some(&record.actor_id),
        "actor_type" => record.actor_type.as_deref(),
        "target_type" => record.target_type.as_deref(),
        "target_id" => record.target_id.as_deref(),
        "outcome" => Some(&record.outcome),
        "request_id" => record.request_id.as_deref(),
        "correlation_id" => record.correlation_id.as_deref(),
        "session_id" => record.session_id.as_deref(),
        "source_ip" => record.source_ip.as_deref(),
        _ => None,
    }
}

/// Whether an event passes a predicate: the in-memory twin of the Parquet RowFilter.
pub fn matches(predicate: &Predicate, record: &EventRecord) -> bool {
    predicate.matches_key(record.occurred_at, record.seq.0)
        && predicate.texts.iter().all(|(column, test)| text_column(record, column).is_some_and(|value| test.matches(value)))
}

enum Source {
    Batch(Box<BatchScan>),
    Memory(VecDeque<ScanRow>),
    Done,
}

struct HeapItem {
    key: (i64, u64),
    descending: bool,
    source: usize,
    row: ScanRow,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    // BinaryHeap pops the greatest: the next row in scan order must compare greatest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.descending { self.key.cmp(&other.key) } else { other.key.cmp(&self.key) }
    }
}

/// Everything a scan reads through.
#[derive(Clone)]
pub struct ScanContext {
    pub store: Arc<dyn ObjectStore>,
    pub footers: Arc<FooterCache>,
    pub runtime: tokio::runtime::Handle,
    pub io: Arc<IoCounters>,
    /// Rows decoded at a time per batch: about a page for queries, more for exports.
    pub decode_rows: usize,
}

/// Rows matching a predicate in (occurred_at, seq) order, ascending or descending, merged from
/// the batches the catalog keeps and the unsealed events. Batches are opened lazily, only once
/// the merge could need them, so a full page stops the scan early.
pub struct Scan {
    context: ScanContext,
    predicate: Arc<Predicate>,
    pending: VecDeque<Arc<LedgerEntry>>,
    sources: Vec<Source>,
    heap: BinaryHeap<HeapItem>,
    pub stats: ScanStats,
}

impl Scan {
    pub fn new(
        context: ScanContext,
        tenant_id: &str,
        predicate: Predicate,
        entries: &[Arc<LedgerEntry>],
        unsealed: &[Arc<EventRecord>],
    ) -> Scan {
        let mut stats =
            ScanStats { batches_considered: entries.len() as u64, unsealed_considered: unsealed.len() as u64, ..Default::default() };
        let mut pending: Vec<Arc<LedgerEntry>> =
            entries.iter().filter(|entry| predicate.entry_may_match(tenant_id, entry)).cloned().collect();
        stats.batches_pruned = stats.batches_considered - pending.len() as u64;
        if predicate.descending {
            pending.sort_by_key(|entry| (std::cmp::Reverse(entry.max_occurred_at), entry.index));
        } else {
            pending.sort_by_key(|entry| (entry.min_occurred_at, entry.index));
        }
        let mut memory: Vec<ScanRow> = unsealed
            .iter()
            .filter(|record| matches(&predicate, record))
            .map(|record| ScanRow { record: record.as_ref().clone(), leaf_hash: record.leaf_hash(), batch_index: None })
            .collect();
        memory.sort_by_key(ScanRow::key);
        if predicate.descending {
            memory.reverse();
        }
        stats.rows_matched += memory.len() as u64;
        let mut scan =
            Scan { context, predicate: Arc::new(predicate), pending: pending.into(), sources: Vec::new(), heap: BinaryHeap::new(), stats };
        let mut memory: VecDeque<ScanRow> = memory.into();
        if let Some(first) = memory.pop_front() {
            scan.sources.push(Source::Memory(memory));
            scan.push(0, first);
        }
        scan
    }

    fn push(&mut self, source: usize, row: ScanRow) {
        self.heap.push(HeapItem { key: row.key(), descending: self.predicate.descending, source, row });
    }

    fn advance(&mut self, source: usize) -> Result<Option<ScanRow>, scan::Error> {
        let stats = &mut self.stats;
        let next = match self.sources.get_mut(source) {
            Some(Source::Batch(batch)) => {
                let index = batch.entry().index;
                batch.next_row(stats)?.map(|row| ScanRow { record: row.record, leaf_hash: row.stored_leaf_hash, batch_index: Some(index) })
            }
            Some(Source::Memory(rows)) => rows.pop_front(),
            Some(Source::Done) | None => None,
        };
        if next.is_none()
            && let Some(slot) = self.sources.get_mut(source)
        {
            // Frees the batch's buffers as soon as it is exhausted.
            *slot = Source::Done;
        }
        Ok(next)
    }

    /// The next row in order, or None when the scan is complete.
    pub fn next_row(&mut self) -> Result<Option<ScanRow>, scan::Error> {
        while let Some(entry) = self.pending.front() {
            let needed = match self.heap.peek() {
                None => true,
                Some(top) if self.predicate.descending => entry.max_occurred_at >= top.key.0,
                Some(top) => entry.min_occurred_at <= top.key.0,
            };
            if !needed {
                break;
            }
            let Some(entry) = self.pending.pop_front() else { break };
            let reader = RangeReader::new(self.context.store.clone(), &entry, self.context.runtime.clone(), self.context.io.clone());
            let batch =
                BatchScan::open(entry, reader, &self.context.footers, self.predicate.clone(), self.context.decode_rows, &mut self.stats)?;
            let source = self.sources.len();
            self.sources.push(Source::Batch(Box::new(batch)));
            if let Some(row) = self.advance(source)? {
                self.push(source, row);
            }
        }
        let Some(top) = self.heap.pop() else { return Ok(None) };
        if let Some(next) = self.advance(top.source)? {
            self.push(top.source, next);
        }
        Ok(Some(top.row))
    }
}

/// One page of a query.
pub struct Page {
    pub rows: Vec<ScanRow>,
    /// The key of the last row when more rows follow.
    pub next: Option<(i64, u64)>,
    pub stats: ScanStats,
}

/// Reads up to `page_size` rows, and one more to learn whether another page follows.
pub fn run_page(mut scan: Scan, page_size: usize) -> Result<Page, scan::Error> {
    let mut rows = Vec::with_capacity(page_size.min(1024) + 1);
    while rows.len() <= page_size {
        match scan.next_row()? {
            Some(row) => rows.push(row),
            None => break,
        }
    }
    let next = if rows.len() > page_size {
        rows.truncate(page_size);
        rows.last().map(ScanRow::key)
    } else {
        None
    };
    Ok(Page { rows, next, stats: scan.stats })
}

fn struct_from_json(text: Option<&str>) -> Option<prost_types::Struct> {
    let serde_json::Value::Object(object) = serde_json::from_str(text?).ok()? else { return None };
    Some(crate::client::json_to_struct(&object))
}

/// The wire event of a stored record (absent columns become empty strings, as sent).
pub fn audit_event(record: &EventRecord) -> pb::AuditEvent {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let any = |values: &[&Option<String>]| values.iter().any(|value| value.is_some());
    pb::AuditEvent {
        id: record.id.clone(),
        tenant_id: record.tenant_id.clone(),
        occurred_at: Some(crate::api::timestamp_from_micros(record.occurred_at)),
        action: record.action.clone(),
        actor: Some(pb::Actor {
            id: record.actor_id.clone(),
            r#type: crate::client::parse_actor_type(record.actor_type.as_deref().unwrap_or_default()).unwrap_or_default(),
            name: text(&record.actor_name),
        }),
        target: any(&[&record.target_type, &record.target_id, &record.target_name]).then(|| pb::Target {
            r#type: text(&record.target_type),
            id: text(&record.target_id),
            name: text(&record.target_name),
        }),
        outcome: Some(pb::Outcome {
            result: crate::client::parse_outcome(&record.outcome).unwrap_or_default(),
            error_code: text(&record.error_code),
            reason: text(&record.reason),
        }),
        context: any(&[
            &record.request_id,
            &record.correlation_id,
            &record.session_id,
            &record.source_ip,
            &record.user_agent,
            &record.service,
        ])
        .then(|| pb::Context {
            request_id: text(&record.request_id),
            correlation_id: text(&record.correlation_id),
            session_id: text(&record.session_id),
            source_ip: text(&record.source_ip),
            user_agent: text(&record.user_agent),
            service: text(&record.service),
        }),
        before: struct_from_json(record.before.as_deref()),
        after: struct_from_json(record.after.as_deref()),
        metadata: struct_from_json(record.metadata.as_deref()),
    }
}

/// The stored record behind a `StoredEvent` (the inverse of [`stored_event`]), for clients.
pub fn record_of(stored: &pb::StoredEvent) -> Result<EventRecord, String> {
    let event = stored.event.as_ref().ok_or("event is missing")?;
    let micros = |field: &str, time: Option<&prost_types::Timestamp>| -> Result<i64, String> {
        validate::timestamp_micros(time.ok_or(format!("{field} is missing"))?).map_err(|rule| format!("{field}: {rule}"))
    };
    let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_string());
    let no_redaction = validate::Redactor::new(Vec::new());
    let json = |value: Option<&prost_types::Struct>, field: &str| {
        validate::struct_to_canonical_json(value, &no_redaction, 0, field).map_err(|error| error.to_string())
    };
    let actor = event.actor.clone().unwrap_or_default();
    let target = event.target.clone().unwrap_or_default();
    let outcome = event.outcome.clone().unwrap_or_default();
    let context = event.context.clone().unwrap_or_default();
    Ok(EventRecord {
        seq: crate::event::Seq(stored.seq),
        id: event.id.clone(),
        tenant_id: event.tenant_id.clone(),
        occurred_at: micros("occurred_at", event.occurred_at.as_ref())?,
        received_at: micros("received_at", stored.received_at.as_ref())?,
        action: event.action.clone(),
        actor_id: actor.id.clone(),
        actor_type: validate::actor_type_name(actor.r#type).map_err(|value| format!("actor.type {value} is unknown"))?.map(str::to_string),
        actor_name: non_empty(&actor.name),
        target_type: non_empty(&target.r#type),
        target_id: non_empty(&target.id),
        target_name: non_empty(&target.name),
        outcome: validate::outcome_name(outcome.result)?.to_string(),
        error_code: non_empty(&outcome.error_code),
        reason: non_empty(&outcome.reason),
        request_id: non_empty(&context.request_id),
        correlation_id: non_empty(&context.correlation_id),
        session_id: non_empty(&context.session_id),
        source_ip: non_empty(&context.source_ip),
        user_agent: non_empty(&context.user_agent),
        service: non_empty(&context.service),
        before: json(event.before.as_ref(), "before")?,
        after: json(event.after.as_ref(), "after")?,
        metadata: json(event.metadata.as_ref(), "metadata")?,
    })
}

pub fn stored_event(row: &ScanRow, log: &str) -> pb::StoredEvent {
    pb::StoredEvent {
        event: Some(audit_event(&row.record)),
        seq: row.record.seq.0,
        received_at: Some(crate::api::timestamp_from_micros(row.record.received_at)),
        sealed: row.batch_index.is_some(),
        batch_index: row.batch_index.unwrap_or_default(),
        leaf_hash: row.leaf_hash.to_vec(),
        log: log.to_string(),
    }
}

pub fn stats_message(stats: &ScanStats, io: &IoCounters) -> pb::QueryStats {
    use std::sync::atomic::Ordering;
    pb::QueryStats {
        batches_considered: stats.batches_considered,
        batches_pruned: stats.batches_pruned,
        row_groups_considered: stats.row_groups_considered,
        row_groups_pruned: stats.row_groups_pruned,
        rows_considered: stats.rows_considered,
        rows_pruned: stats.rows_pruned,
        rows_read: stats.rows_read,
        batches_opened: stats.batches_opened,
        row_groups_pruned_by_bloom: stats.row_groups_pruned_by_bloom,
        rows_matched: stats.rows_matched,
        unsealed_considered: stats.unsealed_considered,
        bytes_read: io.bytes.load(Ordering::Relaxed),
        read_requests: io.requests.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(tenant: &str) -> pb::EventFilter {
        pb::EventFilter { tenant_id: tenant.into(), ..Default::default() }
    }

    #[test]
    fn filter_rules_name_the_field() {
        assert_eq!(Filter::from_pb(None).unwrap_err().field, "filter");
        assert_eq!(Filter::from_pb(Some(&filter(""))).unwrap_err().field, "filter.tenant_id");
        assert_eq!(Filter::from_pb(Some(&filter("a/b"))).unwrap_err().field, "filter.tenant_id");
        let bad_action = pb::EventFilter { actions: vec!["user.login".into(), "User.*".into()], ..filter("acme") };
        assert_eq!(Filter::from_pb(Some(&bad_action)).unwrap_err().field, "filter.actions[1]");
        let star = pb::EventFilter { actions: vec!["*".into()], ..filter("acme") };
        assert_eq!(Filter::from_pb(Some(&star)).unwrap_err().field, "filter.actions[0]");
        let ip = pb::EventFilter { source_ip: "300.1.1.1".into(), ..filter("acme") };
        assert_eq!(Filter::from_pb(Some(&ip)).unwrap_err().field, "filter.source_ip");
        let backwards = pb::EventFilter {
            start_time: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
            end_time: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
            ..filter("acme")
        };
        assert_eq!(Filter::from_pb(Some(&backwards)).unwrap_err().field, "filter.end_time");
        let long = pb::EventFilter { actor_id: "x".repeat(257), ..filter("acme") };
        assert!(Filter::from_pb(Some(&long)).unwrap_err().rule.contains("256"));
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(1001).unwrap_err().field, "page_size");
    }

    #[test]
    fn tokens_are_bound_to_filter_and_order() {
        let acme = Filter::from_pb(Some(&filter("acme"))).unwrap();
        let token = encode_page_token(&acme, false, (5, 7));
        assert_eq!(decode_page_token(&token, &acme, false), Ok(Some((5, 7))));
        assert_eq!(decode_page_token(&token, &acme, true).unwrap_err().field, "page_token");
        let other = Filter::from_pb(Some(&pb::EventFilter { actor_id: "bob".into(), ..filter("acme") })).unwrap();
        assert!(decode_page_token(&token, &other, false).unwrap_err().rule.contains("another filter"));
        assert!(decode_page_token("garbage!", &acme, false).unwrap_err().rule.contains("malformed"));
        let ip_a = Filter::from_pb(Some(&pb::EventFilter { source_ip: "2001:DB8::1".into(), ..filter("acme") })).unwrap();
        let ip_b = Filter::from_pb(Some(&pb::EventFilter { source_ip: "2001:db8:0::1".into(), ..filter("acme") })).unwrap();
        assert_eq!(ip_a, ip_b, "addresses compare canonically");
    }

    #[test]
    fn time_bounds_round_up_to_microseconds() {
        let filter = Filter::from_pb(Some(&pb::EventFilter {
            start_time: Some(prost_types::Timestamp { seconds: 1, nanos: 1 }),
            end_time: Some(prost_types::Timestamp { seconds: 2, nanos: 0 }),
            ..filter("acme")
        }))
        .unwrap();
        assert_eq!((filter.start, filter.end), (Some(1_000_001), Some(2_000_000)));
    }
}
