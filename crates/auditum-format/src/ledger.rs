//! Ledger entries (docs/FORMAT.md, Ledger entries): one per batch, the commit point, hash-chained by `prev`.
//!
//! The body is written by hand so its bytes are exactly the contract's; parsing is strict and
//! rejects any text that does not re-serialise to the same bytes.

use crate::event::Seq;
use crate::merkle::{self, Hash};
use serde::Deserialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// At most this many distinct tenants are listed; above it `tenants` is null.
pub const MAX_LISTED_TENANTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ledger entry is not valid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ledger entry field {field} is invalid: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("ledger entry is not in canonical form (keys, order or spacing differ from docs/FORMAT.md, Ledger entries)")]
    NotCanonical,
}

/// What an entry records of its batch object's Object Lock retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// A version 1 entry: nothing recorded (no `retain_until` key).
    NotRecorded,
    /// A version 2 entry: the retain-until date given to the batch object, in µs since the
    /// epoch, or `None` (JSON null) when the log has no retention.
    RetainUntil(Option<i64>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub log: String,
    pub index: u64,
    pub prev: Hash,
    pub object: String,
    pub version: Option<String>,
    pub sha256: Hash,
    pub size: u64,
    pub first_seq: Seq,
    pub count: u64,
    pub root: Hash,
    pub min_occurred_at: i64,
    pub max_occurred_at: i64,
    pub min_received_at: i64,
    pub max_received_at: i64,
    pub sealed_at: i64,
    /// Version 1 (nothing recorded) or version 2 (the batch's retain-until).
    pub retention: Retention,
    pub tenants: Option<Vec<String>>,
}

/// Missing key: `None`; present (a number or null): `Some`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(deserializer).map(Some)
}

/// Raw JSON shape, only for parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    v: u64,
    log: String,
    index: u64,
    prev: String,
    object: String,
    version: Option<String>,
    sha256: String,
    size: u64,
    first_seq: u64,
    count: u64,
    root: String,
    min_occurred_at: i64,
    max_occurred_at: i64,
    min_received_at: i64,
    max_received_at: i64,
    sealed_at: i64,
    #[serde(default, deserialize_with = "present")]
    retain_until: Option<Option<i64>>,
    tenants: Option<Vec<String>>,
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn parse_hash(field: &'static str, text: &str) -> Result<Hash> {
    let invalid = |reason: &str| Error::Field { field, reason: reason.to_string() };
    if text.len() != 64 || text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err(invalid("expected 64 lowercase hex digits"));
    }
    let bytes = hex::decode(text).map_err(|_| invalid("expected 64 lowercase hex digits"))?;
    bytes.try_into().map_err(|_| invalid("expected 32 bytes"))
}

impl LedgerEntry {
    /// The entry's format version: 1 or 2.
    pub fn format_version(&self) -> u8 {
        match self.retention {
            Retention::NotRecorded => 1,
            Retention::RetainUntil(_) => 2,
        }
    }

    /// The recorded retain-until (µs), when this is a version 2 entry of a log with retention.
    pub fn retain_until(&self) -> Option<i64> {
        match self.retention {
            Retention::RetainUntil(until) => until,
            Retention::NotRecorded => None,
        }
    }

    /// The exact body bytes of docs/FORMAT.md, Ledger entries (version 1 or 2).
    pub fn to_json_text(&self) -> String {
        let version = match &self.version {
            Some(version) => json_string(version),
            None => "null".to_string(),
        };
        let tenants = match &self.tenants {
            Some(tenants) => format!("[{}]", tenants.iter().map(|tenant| json_string(tenant)).collect::<Vec<_>>().join(",")),
            None => "null".to_string(),
        };
        let retain_until = match self.retention {
            Retention::NotRecorded => String::new(),
            Retention::RetainUntil(Some(until)) => format!("\"retain_until\":{until},"),
            Retention::RetainUntil(None) => "\"retain_until\":null,".to_string(),
        };
        format!(
            concat!(
                "{{\"v\":{v},\"log\":{log},\"index\":{index},\"prev\":\"{prev}\",\"object\":{object},\"version\":{version},",
                "\"sha256\":\"{sha256}\",\"size\":{size},\"first_seq\":{first_seq},\"count\":{count},\"root\":\"{root}\",",
                "\"min_occurred_at\":{min_occurred_at},\"max_occurred_at\":{max_occurred_at},",
                "\"min_received_at\":{min_received_at},\"max_received_at\":{max_received_at},",
                "\"sealed_at\":{sealed_at},{retain_until}\"tenants\":{tenants}}}"
            ),
            v = self.format_version(),
            log = json_string(&self.log),
            index = self.index,
            prev = hex::encode(self.prev),
            object = json_string(&self.object),
            version = version,
            sha256 = hex::encode(self.sha256),
            size = self.size,
            first_seq = self.first_seq.0,
            count = self.count,
            root = hex::encode(self.root),
            min_occurred_at = self.min_occurred_at,
            max_occurred_at = self.max_occurred_at,
            min_received_at = self.min_received_at,
            max_received_at = self.max_received_at,
            sealed_at = self.sealed_at,
            retain_until = retain_until,
            tenants = tenants,
        )
    }

    /// Parses an entry body strictly: it must be exactly what [`LedgerEntry::to_json_text`] writes.
    pub fn parse(text: &str) -> Result<LedgerEntry> {
        let raw: RawEntry = serde_json::from_str(text)?;
        let retention = match (raw.v, raw.retain_until) {
            (1, None) => Retention::NotRecorded,
            (2, Some(until)) => Retention::RetainUntil(until),
            (1, Some(_)) => return Err(Error::Field { field: "retain_until", reason: "a version 1 entry has no retain_until".into() }),
            (2, None) => return Err(Error::Field { field: "retain_until", reason: "a version 2 entry must have retain_until".into() }),
            (other, _) => return Err(Error::Field { field: "v", reason: format!("version {other} is not 1 or 2") }),
        };
        let entry = LedgerEntry {
            log: raw.log,
            index: raw.index,
            prev: parse_hash("prev", &raw.prev)?,
            object: raw.object,
            version: raw.version,
            sha256: parse_hash("sha256", &raw.sha256)?,
            size: raw.size,
            first_seq: Seq(raw.first_seq),
            count: raw.count,
            root: parse_hash("root", &raw.root)?,
            min_occurred_at: raw.min_occurred_at,
            max_occurred_at: raw.max_occurred_at,
            min_received_at: raw.min_received_at,
            max_received_at: raw.max_received_at,
            sealed_at: raw.sealed_at,
            retention,
            tenants: raw.tenants,
        };
        if entry.to_json_text() != text {
            return Err(Error::NotCanonical);
        }
        Ok(entry)
    }

    /// Seq just past this batch.
    pub fn end_seq(&self) -> Seq {
        Seq(self.first_seq.0 + self.count)
    }
}

/// `entry_hash = SHA-256(0x00 || body bytes)`.
pub fn entry_hash(body: &[u8]) -> Hash {
    merkle::leaf_hash(body)
}

/// `prev` of entry 0.
pub const GENESIS_PREV: Hash = [0u8; 32];

/// The sorted distinct tenants of a batch, or None above [`MAX_LISTED_TENANTS`].
pub fn tenant_list<'a>(tenants: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    let distinct: std::collections::BTreeSet<&str> = tenants.collect();
    if distinct.len() > MAX_LISTED_TENANTS {
        return None;
    }
    Some(distinct.into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LedgerEntry {
        LedgerEntry {
            log: "default".into(),
            index: 3,
            prev: [0xab; 32],
            object: "default/batches/date=2025-11-23/hour=12/000000000003-00000001.parquet".into(),
            version: Some("v\"1".into()),
            sha256: [2; 32],
            size: 99,
            first_seq: Seq(10),
            count: 5,
            root: [3; 32],
            min_occurred_at: -1,
            max_occurred_at: 5,
            min_received_at: 6,
            max_received_at: 7,
            sealed_at: 8,
            retention: Retention::NotRecorded,
            tenants: Some(vec!["a".into(), "b".into()]),
        }
    }

    #[test]
    fn round_trips_and_rejects_non_canonical_text() {
        let entry = sample();
        let text = entry.to_json_text();
        assert_eq!(LedgerEntry::parse(&text).unwrap(), entry);
        let spaced = text.replacen(":", ": ", 1);
        assert!(matches!(LedgerEntry::parse(&spaced), Err(Error::NotCanonical)));
        let upper = text.replace(&hex::encode([0xabu8; 32]), &hex::encode([0xabu8; 32]).to_uppercase());
        assert!(LedgerEntry::parse(&upper).is_err());
        let extra = text.replacen("{", "{\"x\":1,", 1);
        assert!(LedgerEntry::parse(&extra).is_err());
    }

    #[test]
    fn version_2_records_retain_until_and_each_version_keeps_its_own_keys() {
        let mut entry = sample();
        entry.retention = Retention::RetainUntil(Some(1_984_652_060_000_000));
        let text = entry.to_json_text();
        assert!(text.starts_with("{\"v\":2,") && text.contains("\"sealed_at\":8,\"retain_until\":1984652060000000,\"tenants\":"), "{text}");
        assert_eq!(LedgerEntry::parse(&text).unwrap(), entry);
        assert_eq!((entry.format_version(), entry.retain_until()), (2, Some(1_984_652_060_000_000)));

        entry.retention = Retention::RetainUntil(None);
        let null = entry.to_json_text();
        assert!(null.contains("\"retain_until\":null,"), "{null}");
        assert_eq!(LedgerEntry::parse(&null).unwrap().retention, Retention::RetainUntil(None));

        let v1_with_key = null.replacen("\"v\":2", "\"v\":1", 1);
        assert!(matches!(LedgerEntry::parse(&v1_with_key), Err(Error::Field { field: "retain_until", .. })));
        let v2_without_key = sample().to_json_text().replacen("\"v\":1", "\"v\":2", 1);
        assert!(matches!(LedgerEntry::parse(&v2_without_key), Err(Error::Field { field: "retain_until", .. })));
        let v3 = text.replacen("\"v\":2", "\"v\":3", 1);
        assert!(matches!(LedgerEntry::parse(&v3), Err(Error::Field { field: "v", .. })));
        let misplaced = text.replace("\"retain_until\":1984652060000000,", "").replacen("{", "{\"retain_until\":1984652060000000,", 1);
        assert!(matches!(LedgerEntry::parse(&misplaced), Err(Error::NotCanonical)));
    }

    #[test]
    fn tenant_list_caps_at_1000() {
        let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
        assert!(tenant_list(many.iter().map(String::as_str)).is_none());
        assert_eq!(tenant_list(["b", "a", "b"].into_iter()), Some(vec!["a".to_string(), "b".to_string()]));
    }
}
