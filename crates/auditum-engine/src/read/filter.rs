//! Query filters (docs/API.md): the rules every `EventFilter` must satisfy, as the tests a scan
//! applies to each column.

use crate::scan::{Predicate, TextTest};
use auditum_format::rules;
use sha2::{Digest, Sha256};

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

pub(super) fn reject(field: &str, rule: impl Into<String>) -> FilterError {
    FilterError { field: field.to_string(), rule: rule.into() }
}

/// An `EventFilter` in domain terms, before the rules: times in microseconds (`start` rounded up
/// to the next microsecond), enums as their stored names, empty strings for unset fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    pub tenant_id: String,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub actor_id: String,
    pub actor_type: Option<String>,
    pub actions: Vec<String>,
    pub target_type: String,
    pub target_id: String,
    pub outcome: Option<String>,
    pub request_id: String,
    pub correlation_id: String,
    pub session_id: String,
    pub source_ip: String,
}

/// A read's `occurred_at` window, `[start, end)` in microseconds; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OccurredWindow {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl OccurredWindow {
    /// A window no time falls in: for reads that do not want the unsealed events at all.
    pub const NOTHING: OccurredWindow = OccurredWindow { start: Some(i64::MAX), end: Some(i64::MIN) };

    pub fn contains(&self, occurred_at: i64) -> bool {
        self.start.is_none_or(|start| occurred_at >= start) && self.end.is_none_or(|end| occurred_at < end)
    }
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

impl Filter {
    /// The filter's `occurred_at` window, for choosing the unsealed events a read copies.
    pub fn occurred_window(&self) -> OccurredWindow {
        OccurredWindow { start: self.start, end: self.end }
    }

    /// Applies the filter rules (docs/API.md) to a filter's fields; errors name the field.
    pub fn new(filter: &FilterSpec) -> Result<Filter, FilterError> {
        if filter.tenant_id.is_empty() {
            return Err(reject("filter.tenant_id", "required"));
        }
        if filter.tenant_id.len() > rules::MAX_TENANT_BYTES || !rules::is_valid_tenant_id(&filter.tenant_id) {
            return Err(reject("filter.tenant_id", format!("must be 1 to {} bytes of [A-Za-z0-9._:-]", rules::MAX_TENANT_BYTES)));
        }
        let (start, end) = (filter.start, filter.end);
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
        equals("actor_id", "filter.actor_id", &filter.actor_id, rules::MAX_ACTOR_ID_BYTES)?;
        if let Some(actor_type) = &filter.actor_type {
            equals("actor_type", "filter.actor_type", actor_type, MAX_FILTER_VALUE_BYTES)?;
        }
        equals("target_type", "filter.target_type", &filter.target_type, MAX_FILTER_VALUE_BYTES)?;
        equals("target_id", "filter.target_id", &filter.target_id, MAX_FILTER_VALUE_BYTES)?;
        if let Some(outcome) = &filter.outcome {
            equals("outcome", "filter.outcome", outcome, MAX_FILTER_VALUE_BYTES)?;
        }
        equals("request_id", "filter.request_id", &filter.request_id, MAX_FILTER_VALUE_BYTES)?;
        equals("correlation_id", "filter.correlation_id", &filter.correlation_id, MAX_FILTER_VALUE_BYTES)?;
        equals("session_id", "filter.session_id", &filter.session_id, MAX_FILTER_VALUE_BYTES)?;
        if !filter.source_ip.is_empty() {
            // Stored canonically (docs/FORMAT.md, Stored columns reading in the notes): compare canonically.
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
                if action.len() > rules::MAX_ACTION_BYTES {
                    return Err(reject(&field, format!("{} bytes exceeds the limit of {} bytes", action.len(), rules::MAX_ACTION_BYTES)));
                }
                match action.strip_suffix(".*") {
                    Some(prefix) if rules::is_valid_action(prefix) => prefixes.push(format!("{prefix}.")),
                    None if rules::is_valid_action(action) => exact.push(action.clone()),
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
    pub(super) fn digest(&self, descending: bool) -> [u8; 16] {
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

/// The page size asked for, or the default; INVALID_ARGUMENT above the limit.
pub fn page_size(requested: u32) -> Result<usize, FilterError> {
    match requested as usize {
        0 => Ok(DEFAULT_PAGE_SIZE),
        size if size > MAX_PAGE_SIZE => Err(reject("page_size", format!("{size} exceeds the limit of {MAX_PAGE_SIZE}"))),
        size => Ok(size),
    }
}

fn prefixed(value: i64) -> [u8; 9] {
    let mut out = [1; 9];
    out[1..].copy_from_slice(&value.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::page_token::{decode_page_token, encode_page_token};

    fn spec(tenant: &str) -> FilterSpec {
        FilterSpec { tenant_id: tenant.into(), ..Default::default() }
    }

    #[test]
    fn filter_rules_name_the_field() {
        assert_eq!(Filter::new(&spec("")).unwrap_err().field, "filter.tenant_id");
        assert_eq!(Filter::new(&spec("a/b")).unwrap_err().field, "filter.tenant_id");
        let bad_action = FilterSpec { actions: vec!["user.login".into(), "User.*".into()], ..spec("acme") };
        assert_eq!(Filter::new(&bad_action).unwrap_err().field, "filter.actions[1]");
        let star = FilterSpec { actions: vec!["*".into()], ..spec("acme") };
        assert_eq!(Filter::new(&star).unwrap_err().field, "filter.actions[0]");
        let ip = FilterSpec { source_ip: "300.1.1.1".into(), ..spec("acme") };
        assert_eq!(Filter::new(&ip).unwrap_err().field, "filter.source_ip");
        let backwards = FilterSpec { start: Some(10_000_000), end: Some(10_000_000), ..spec("acme") };
        assert_eq!(Filter::new(&backwards).unwrap_err().field, "filter.end_time");
        let long = FilterSpec { actor_id: "x".repeat(257), ..spec("acme") };
        assert!(Filter::new(&long).unwrap_err().rule.contains("256"));
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(1001).unwrap_err().field, "page_size");
    }

    #[test]
    fn tokens_are_bound_to_filter_and_order() {
        let acme = Filter::new(&spec("acme")).unwrap();
        let token = encode_page_token(&acme, false, (5, 7));
        assert_eq!(decode_page_token(&token, &acme, false), Ok(Some((5, 7))));
        assert_eq!(decode_page_token(&token, &acme, true).unwrap_err().field, "page_token");
        let other = Filter::new(&FilterSpec { actor_id: "bob".into(), ..spec("acme") }).unwrap();
        assert!(decode_page_token(&token, &other, false).unwrap_err().rule.contains("another filter"));
        assert!(decode_page_token("garbage!", &acme, false).unwrap_err().rule.contains("malformed"));
        let ip_a = Filter::new(&FilterSpec { source_ip: "2001:DB8::1".into(), ..spec("acme") }).unwrap();
        let ip_b = Filter::new(&FilterSpec { source_ip: "2001:db8:0::1".into(), ..spec("acme") }).unwrap();
        assert_eq!(ip_a, ip_b, "addresses compare canonically");
    }
}
