//! The stored form of one event (docs/FORMAT.md, Stored columns) and its canonical encoding (§2.3).
//!
//! The canonical column encoding is also the WAL record payload: one format to get right, and the
//! leaf hash of a replayed record is computed from exactly the bytes that were fsync'd.

use sha2::{Digest, Sha256};
use std::fmt;

/// Sequence number of an event in its log: dense from 0, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Stored column names in Parquet order (docs/FORMAT.md, Stored columns). The first 24 are hashed into the leaf.
pub const COLUMN_NAMES: [&str; 25] = [
    "seq",
    "id",
    "tenant_id",
    "occurred_at",
    "received_at",
    "action",
    "actor_id",
    "actor_type",
    "actor_name",
    "target_type",
    "target_id",
    "target_name",
    "outcome",
    "error_code",
    "reason",
    "request_id",
    "correlation_id",
    "session_id",
    "source_ip",
    "user_agent",
    "service",
    "before",
    "after",
    "metadata",
    "leaf_hash",
];

/// Number of columns covered by the leaf hash.
pub const HASHED_COLUMNS: usize = 24;

const CANONICAL_PREFIX: &[u8] = b"auditum/event/v1\n";
const NULL_MARKER: u8 = 0xFF;
const VALUE_MARKER: u8 = 0x01;

pub type LeafHash = [u8; 32];

/// One event as stored: every column of docs/FORMAT.md, Stored columns but `leaf_hash`, which is derived.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventRecord {
    pub seq: Seq,
    pub id: String,
    pub tenant_id: String,
    /// Microseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    /// Microseconds since the Unix epoch, UTC: server clock at WAL entry.
    pub received_at: i64,
    pub action: String,
    pub actor_id: String,
    pub actor_type: Option<String>,
    pub actor_name: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub target_name: Option<String>,
    pub outcome: String,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub session_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub service: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub metadata: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated while reading column {column}")]
    Truncated { column: &'static str },
    #[error("column {column} has marker byte {marker:#04x}, expected 0x01 or 0xff")]
    BadMarker { column: &'static str, marker: u8 },
    #[error("column {column} is null but is required")]
    RequiredNull { column: &'static str },
    #[error("column {column} has {len} bytes, expected 8")]
    BadIntegerWidth { column: &'static str, len: usize },
    #[error("column {column} is not valid utf-8")]
    NotUtf8 { column: &'static str },
    #[error("{trailing} trailing bytes after the last column")]
    TrailingBytes { trailing: usize },
}

/// A borrowed view of one column's value, in the canonical byte form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnBytes<'a> {
    Null,
    Integer([u8; 8]),
    Text(&'a str),
}

impl EventRecord {
    /// The 24 hashed columns in §2.2 order.
    pub fn column_values(&self) -> [ColumnBytes<'_>; HASHED_COLUMNS] {
        fn text(value: &Option<String>) -> ColumnBytes<'_> {
            match value {
                Some(text) => ColumnBytes::Text(text),
                None => ColumnBytes::Null,
            }
        }
        [
            ColumnBytes::Integer(self.seq.0.to_be_bytes()),
            ColumnBytes::Text(&self.id),
            ColumnBytes::Text(&self.tenant_id),
            ColumnBytes::Integer(self.occurred_at.to_be_bytes()),
            ColumnBytes::Integer(self.received_at.to_be_bytes()),
            ColumnBytes::Text(&self.action),
            ColumnBytes::Text(&self.actor_id),
            text(&self.actor_type),
            text(&self.actor_name),
            text(&self.target_type),
            text(&self.target_id),
            text(&self.target_name),
            ColumnBytes::Text(&self.outcome),
            text(&self.error_code),
            text(&self.reason),
            text(&self.request_id),
            text(&self.correlation_id),
            text(&self.session_id),
            text(&self.source_ip),
            text(&self.user_agent),
            text(&self.service),
            text(&self.before),
            text(&self.after),
            text(&self.metadata),
        ]
    }

    /// Appends the 24 encoded columns (the canonical form without its prefix) to `buf`.
    pub fn encode_columns(&self, buf: &mut Vec<u8>) {
        for value in self.column_values() {
            let bytes: &[u8] = match &value {
                ColumnBytes::Null => {
                    buf.push(NULL_MARKER);
                    continue;
                }
                ColumnBytes::Integer(bytes) => bytes,
                ColumnBytes::Text(text) => text.as_bytes(),
            };
            buf.push(VALUE_MARKER);
            buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            buf.extend_from_slice(bytes);
        }
    }

    /// The canonical encoding of docs/FORMAT.md, Event leaf.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(CANONICAL_PREFIX.len() + self.encoded_len_hint());
        buf.extend_from_slice(CANONICAL_PREFIX);
        self.encode_columns(&mut buf);
        buf
    }

    /// SHA-256(0x00 || canonical).
    pub fn leaf_hash(&self) -> LeafHash {
        let mut columns = Vec::with_capacity(self.encoded_len_hint());
        self.encode_columns(&mut columns);
        leaf_hash_of_encoded_columns(&columns)
    }

    /// Upper bound of the encoded size, used for buffer sizing and batch byte caps.
    pub fn encoded_len_hint(&self) -> usize {
        self.column_values()
            .iter()
            .map(|value| match value {
                ColumnBytes::Null => 1,
                ColumnBytes::Integer(_) => 13,
                ColumnBytes::Text(text) => 5 + text.len(),
            })
            .sum()
    }

    /// Decodes the 24 columns written by [`EventRecord::encode_columns`]; rejects trailing bytes.
    pub fn decode_columns(input: &[u8]) -> Result<EventRecord, DecodeError> {
        let values = encoded_column_values(input)?;
        // `encoded_column_values` has checked each column's kind and that required ones are set.
        let integer = |index: usize| match values[index] {
            ColumnBytes::Integer(bytes) => bytes,
            _ => [0; 8],
        };
        let optional_text = |index: usize| match values[index] {
            ColumnBytes::Text(text) => Some(text.to_string()),
            _ => None,
        };
        let required_text = |index: usize| optional_text(index).unwrap_or_default();
        Ok(EventRecord {
            seq: Seq(u64::from_be_bytes(integer(0))),
            id: required_text(1),
            tenant_id: required_text(2),
            occurred_at: i64::from_be_bytes(integer(3)),
            received_at: i64::from_be_bytes(integer(4)),
            action: required_text(5),
            actor_id: required_text(6),
            actor_type: optional_text(7),
            actor_name: optional_text(8),
            target_type: optional_text(9),
            target_id: optional_text(10),
            target_name: optional_text(11),
            outcome: required_text(12),
            error_code: optional_text(13),
            reason: optional_text(14),
            request_id: optional_text(15),
            correlation_id: optional_text(16),
            session_id: optional_text(17),
            source_ip: optional_text(18),
            user_agent: optional_text(19),
            service: optional_text(20),
            before: optional_text(21),
            after: optional_text(22),
            metadata: optional_text(23),
        })
    }

    /// The §7 `event` object: the 24 columns by name, integers for seq and timestamps.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for (name, value) in COLUMN_NAMES.iter().zip(self.column_values()) {
            let json = match value {
                ColumnBytes::Null => serde_json::Value::Null,
                ColumnBytes::Text(text) => serde_json::Value::String(text.to_string()),
                ColumnBytes::Integer(bytes) if *name == "seq" => u64::from_be_bytes(bytes).into(),
                ColumnBytes::Integer(bytes) => i64::from_be_bytes(bytes).into(),
            };
            object.insert(name.to_string(), json);
        }
        serde_json::Value::Object(object)
    }
}

impl EventRecord {
    /// Parses the §7 `event` object (the inverse of [`EventRecord::to_json`]).
    pub fn from_json(value: &serde_json::Value) -> Result<EventRecord, String> {
        let object = value.as_object().ok_or("event is not a json object")?;
        if let Some(extra) = object.keys().find(|key| !COLUMN_NAMES[..HASHED_COLUMNS].contains(&key.as_str())) {
            return Err(format!("event has unknown column {extra}"));
        }
        let text = |name: &str| -> Result<Option<String>, String> {
            match object.get(name) {
                None => Err(format!("event is missing column {name}")),
                Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(format!("column {name} must be a string or null")),
            }
        };
        let required = |name: &str| text(name)?.ok_or_else(|| format!("column {name} must not be null"));
        let integer = |name: &str| -> Result<i64, String> {
            object.get(name).and_then(serde_json::Value::as_i64).ok_or_else(|| format!("column {name} must be an integer"))
        };
        let seq = object.get("seq").and_then(serde_json::Value::as_u64).ok_or("column seq must be an unsigned integer")?;
        Ok(EventRecord {
            seq: Seq(seq),
            id: required("id")?,
            tenant_id: required("tenant_id")?,
            occurred_at: integer("occurred_at")?,
            received_at: integer("received_at")?,
            action: required("action")?,
            actor_id: required("actor_id")?,
            actor_type: text("actor_type")?,
            actor_name: text("actor_name")?,
            target_type: text("target_type")?,
            target_id: text("target_id")?,
            target_name: text("target_name")?,
            outcome: required("outcome")?,
            error_code: text("error_code")?,
            reason: text("reason")?,
            request_id: text("request_id")?,
            correlation_id: text("correlation_id")?,
            session_id: text("session_id")?,
            source_ip: text("source_ip")?,
            user_agent: text("user_agent")?,
            service: text("service")?,
            before: text("before")?,
            after: text("after")?,
            metadata: text("metadata")?,
        })
    }
}

/// The 24 columns written by [`EventRecord::encode_columns`], borrowed from `input`: what
/// [`EventRecord::column_values`] gives for the record they encode. Rejects trailing bytes, a
/// null required column, an integer not 8 bytes wide and text that is not UTF-8.
pub fn encoded_column_values(mut input: &[u8]) -> Result<[ColumnBytes<'_>; HASHED_COLUMNS], DecodeError> {
    let mut raw: [Option<&[u8]>; HASHED_COLUMNS] = [None; HASHED_COLUMNS];
    for (slot, column) in raw.iter_mut().zip(&COLUMN_NAMES[..HASHED_COLUMNS]) {
        let (&marker, rest) = input.split_first().ok_or(DecodeError::Truncated { column })?;
        input = rest;
        match marker {
            NULL_MARKER => {}
            VALUE_MARKER => {
                let (len, rest) = input.split_first_chunk::<4>().ok_or(DecodeError::Truncated { column })?;
                let len = u32::from_be_bytes(*len) as usize;
                if rest.len() < len {
                    return Err(DecodeError::Truncated { column });
                }
                let (value, rest) = rest.split_at(len);
                *slot = Some(value);
                input = rest;
            }
            marker => return Err(DecodeError::BadMarker { column, marker }),
        }
    }
    if !input.is_empty() {
        return Err(DecodeError::TrailingBytes { trailing: input.len() });
    }
    let mut values = [ColumnBytes::Null; HASHED_COLUMNS];
    for (index, ((value, slot), column)) in raw.iter().zip(values.iter_mut()).zip(COLUMN_NAMES.iter()).enumerate() {
        *slot = match (index, *value) {
            // seq, occurred_at, received_at: required, 8 bytes big-endian.
            (0 | 3 | 4, None) => return Err(DecodeError::RequiredNull { column }),
            (0 | 3 | 4, Some(bytes)) => {
                ColumnBytes::Integer(bytes.try_into().map_err(|_| DecodeError::BadIntegerWidth { column, len: bytes.len() })?)
            }
            (_, Some(bytes)) => ColumnBytes::Text(std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8 { column })?),
            // id, tenant_id, action, actor_id, outcome.
            (1 | 2 | 5 | 6 | 12, None) => return Err(DecodeError::RequiredNull { column }),
            (_, None) => ColumnBytes::Null,
        };
    }
    Ok(values)
}

/// Leaf hash from the encoded columns (a WAL payload) without decoding them.
pub fn leaf_hash_of_encoded_columns(columns: &[u8]) -> LeafHash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(CANONICAL_PREFIX);
    hasher.update(columns);
    hasher.finalize().into()
}

/// Sort key of rows in a batch (docs/FORMAT.md, Merkle trees): (tenant_id, occurred_at, seq).
pub fn batch_order(left: &EventRecord, right: &EventRecord) -> std::cmp::Ordering {
    (left.tenant_id.as_str(), left.occurred_at, left.seq).cmp(&(right.tenant_id.as_str(), right.occurred_at, right.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> EventRecord {
        EventRecord {
            seq: Seq(7),
            id: "e-7".into(),
            tenant_id: "acme".into(),
            occurred_at: 1_700_000_000_000_000,
            received_at: -5,
            action: "user.login".into(),
            actor_id: "u1".into(),
            actor_type: Some("user".into()),
            outcome: "success".into(),
            metadata: Some("{\"k\":1}".into()),
            ..Default::default()
        }
    }

    #[test]
    fn columns_round_trip() {
        let record = sample();
        let mut buf = Vec::new();
        record.encode_columns(&mut buf);
        assert_eq!(EventRecord::decode_columns(&buf).unwrap(), record);
        assert!(buf.len() <= record.encoded_len_hint());
    }

    #[test]
    fn decode_rejects_truncation_and_trailing_bytes() {
        let mut buf = Vec::new();
        sample().encode_columns(&mut buf);
        for cut in 0..buf.len() {
            assert!(EventRecord::decode_columns(&buf[..cut]).is_err(), "cut at {cut}");
        }
        buf.push(0);
        assert_eq!(EventRecord::decode_columns(&buf), Err(DecodeError::TrailingBytes { trailing: 1 }));
    }

    /// The borrowed view of encoded columns is the record's own view, and its length hint is exact.
    #[test]
    fn encoded_column_values_are_the_records_column_values() {
        let full =
            EventRecord { target_type: Some("doc".into()), before: Some(String::new()), user_agent: Some("é ✓".into()), ..sample() };
        for record in [sample(), full, EventRecord::default()] {
            let mut buf = Vec::new();
            record.encode_columns(&mut buf);
            assert_eq!(buf.len(), record.encoded_len_hint());
            assert_eq!(encoded_column_values(&buf).unwrap(), record.column_values());
        }
    }

    /// Each rule names its column: a null required text or integer, an integer of the wrong
    /// width, text that is not UTF-8.
    #[test]
    fn encoded_column_values_name_the_broken_column() {
        let encode = |values: &[Option<&[u8]>]| {
            let mut buf = Vec::new();
            for value in values {
                match value {
                    None => buf.push(NULL_MARKER),
                    Some(bytes) => {
                        buf.push(VALUE_MARKER);
                        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                        buf.extend_from_slice(bytes);
                    }
                }
            }
            buf
        };
        let eight: &[u8] = &[0; 8];
        let valid: Vec<Option<&[u8]>> = (0..HASHED_COLUMNS)
            .map(|index| match index {
                0 | 3 | 4 => Some(eight),
                1 | 2 | 5 | 6 | 12 => Some(b"x".as_slice()),
                _ => None,
            })
            .collect();
        assert!(encoded_column_values(&encode(&valid)).is_ok());
        let broken = |index: usize, value: Option<&'static [u8]>| {
            let mut values = valid.clone();
            values[index] = value;
            encoded_column_values(&encode(&values)).unwrap_err()
        };
        assert_eq!(broken(6, None), DecodeError::RequiredNull { column: "actor_id" });
        assert_eq!(broken(3, None), DecodeError::RequiredNull { column: "occurred_at" });
        assert_eq!(broken(4, Some(b"1234")), DecodeError::BadIntegerWidth { column: "received_at", len: 4 });
        assert_eq!(broken(19, Some(b"\xff")), DecodeError::NotUtf8 { column: "user_agent" });
    }

    #[test]
    fn hand_computed_leaf() {
        // Built byte by byte from the docs/FORMAT.md, Event leaf rules, independently of encode_columns.
        let record = EventRecord {
            seq: Seq(1),
            id: "i".into(),
            tenant_id: "t".into(),
            occurred_at: 2,
            received_at: 3,
            action: "a".into(),
            actor_id: "x".into(),
            outcome: "failure".into(),
            ..Default::default()
        };
        let mut expected = b"auditum/event/v1\n".to_vec();
        let value = |bytes: &[u8]| {
            let mut out = vec![0x01];
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
            out
        };
        expected.extend(value(&1u64.to_be_bytes()));
        expected.extend(value(b"i"));
        expected.extend(value(b"t"));
        expected.extend(value(&2i64.to_be_bytes()));
        expected.extend(value(&3i64.to_be_bytes()));
        expected.extend(value(b"a"));
        expected.extend(value(b"x"));
        expected.extend([0xFF; 5]); // actor_type .. target_name
        expected.extend(value(b"failure"));
        expected.extend([0xFF; 11]); // error_code .. metadata
        assert_eq!(record.canonical_bytes(), expected);
        let mut prefixed = vec![0x00];
        prefixed.extend(&expected);
        let want: [u8; 32] = Sha256::digest(&prefixed).into();
        assert_eq!(record.leaf_hash(), want);
    }
}
