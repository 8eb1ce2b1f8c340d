//! Typed views of the columns of a decoded record batch, so callers read rows straight from the
//! Arrow arrays: verification re-encodes them for hashing, exports write them as text, and only
//! callers that need owned events build [`EventRecord`]s.

use crate::{Error, Result, column, required_text_at, text_at};
use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use auditum_format::event::{COLUMN_NAMES, ColumnBytes, EventRecord, HASHED_COLUMNS, LeafHash, Seq};

/// Every column of one decoded record batch, checked against the design (names and types).
pub struct EventColumns<'a> {
    seq: &'a UInt64Array,
    occurred_at: &'a TimestampMicrosecondArray,
    received_at: &'a TimestampMicrosecondArray,
    leaf_hash: &'a FixedSizeBinaryArray,
    /// The 21 text columns in §2.2 order: id, tenant_id, action, actor_id, … metadata.
    texts: Vec<&'a StringArray>,
    rows: usize,
}

const TEXT_ID: usize = 0;
const TEXT_TENANT: usize = 1;
const TEXT_ACTOR: usize = 3;
/// Text columns (indexes into `texts`) an event always has: id, tenant_id, action, actor_id,
/// outcome.
const REQUIRED_TEXTS: [(usize, &str); 5] = [(0, "id"), (1, "tenant_id"), (2, "action"), (3, "actor_id"), (9, "outcome")];

impl<'a> EventColumns<'a> {
    pub fn new(batch: &'a RecordBatch) -> Result<Self> {
        let names: Vec<&str> = batch.schema_ref().fields().iter().map(|field| field.name().as_str()).collect();
        if names != COLUMN_NAMES {
            return Err(Error::Schema(format!("columns are {names:?}")));
        }
        let texts = COLUMN_NAMES
            .iter()
            .filter(|name| !matches!(**name, "seq" | "occurred_at" | "received_at" | "leaf_hash"))
            .map(|name| column::<StringArray>(batch, name))
            .collect::<Result<Vec<_>>>()?;
        let arrays = EventColumns {
            seq: column(batch, "seq")?,
            occurred_at: column(batch, "occurred_at")?,
            received_at: column(batch, "received_at")?,
            leaf_hash: column(batch, "leaf_hash")?,
            texts,
            rows: batch.num_rows(),
        };
        if arrays.seq.null_count() + arrays.occurred_at.null_count() + arrays.received_at.null_count() + arrays.leaf_hash.null_count() > 0 {
            return Err(Error::Schema("a required column holds nulls".into()));
        }
        Ok(arrays)
    }

    /// Like [`EventColumns::new`], and every row is a complete event: no required text column
    /// holds a null (what [`EventColumns::record`] checks row by row), so [`EventColumns::values`]
    /// gives exactly the event's columns.
    pub fn complete(batch: &'a RecordBatch) -> Result<Self> {
        let arrays = EventColumns::new(batch)?;
        for (index, name) in REQUIRED_TEXTS {
            if arrays.texts[index].null_count() > 0 {
                return Err(Error::Schema(format!("required column {name} holds nulls")));
            }
        }
        Ok(arrays)
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn stored_leaf(&self, row: usize) -> Result<LeafHash> {
        self.leaf_hash.value(row).try_into().map_err(|_| Error::Schema(format!("row {row}: leaf_hash is not 32 bytes")))
    }

    /// (occurred_at, seq): the order of reads within one tenant.
    pub fn key(&self, row: usize) -> (i64, u64) {
        (self.occurred_at.value(row), self.seq.value(row))
    }

    /// (tenant_id, occurred_at, seq) of a row, without copying.
    pub(crate) fn sort_key(&self, row: usize) -> (&'a str, i64, u64) {
        (self.texts[TEXT_TENANT].value(row), self.occurred_at.value(row), self.seq.value(row))
    }

    pub(crate) fn actor_id(&self, row: usize) -> &'a str {
        self.texts[TEXT_ACTOR].value(row)
    }

    /// The row's 24 hashed columns in §2.2 order, as [`EventRecord::column_values`] gives them.
    pub fn values(&self, row: usize) -> [ColumnBytes<'a>; HASHED_COLUMNS] {
        let text = |index: usize| {
            let array = self.texts[index];
            if array.is_null(row) { ColumnBytes::Null } else { ColumnBytes::Text(array.value(row)) }
        };
        [
            ColumnBytes::Integer(self.seq.value(row).to_be_bytes()),
            text(0),
            text(1),
            ColumnBytes::Integer(self.occurred_at.value(row).to_be_bytes()),
            ColumnBytes::Integer(self.received_at.value(row).to_be_bytes()),
            text(2),
            text(3),
            text(4),
            text(5),
            text(6),
            text(7),
            text(8),
            text(9),
            text(10),
            text(11),
            text(12),
            text(13),
            text(14),
            text(15),
            text(16),
            text(17),
            text(18),
            text(19),
            text(20),
        ]
    }

    /// Appends the row's 24 columns in the §2.3 encoding, straight from the arrays.
    pub(crate) fn encode_row(&self, row: usize, buf: &mut Vec<u8>) {
        for value in self.values(row) {
            match value {
                ColumnBytes::Null => buf.push(0xFF),
                ColumnBytes::Integer(bytes) => {
                    buf.push(0x01);
                    buf.extend_from_slice(&8u32.to_be_bytes());
                    buf.extend_from_slice(&bytes);
                }
                ColumnBytes::Text(text) => {
                    buf.push(0x01);
                    buf.extend_from_slice(&(text.len() as u32).to_be_bytes());
                    buf.extend_from_slice(text.as_bytes());
                }
            }
        }
    }

    pub fn record(&self, row: usize) -> Result<EventRecord> {
        let t = &self.texts;
        Ok(EventRecord {
            seq: Seq(self.seq.value(row)),
            id: required_text_at(t[TEXT_ID], row, "id")?,
            tenant_id: required_text_at(t[TEXT_TENANT], row, "tenant_id")?,
            occurred_at: self.occurred_at.value(row),
            received_at: self.received_at.value(row),
            action: required_text_at(t[2], row, "action")?,
            actor_id: required_text_at(t[3], row, "actor_id")?,
            actor_type: text_at(t[4], row),
            actor_name: text_at(t[5], row),
            target_type: text_at(t[6], row),
            target_id: text_at(t[7], row),
            target_name: text_at(t[8], row),
            outcome: required_text_at(t[9], row, "outcome")?,
            error_code: text_at(t[10], row),
            reason: text_at(t[11], row),
            request_id: text_at(t[12], row),
            correlation_id: text_at(t[13], row),
            session_id: text_at(t[14], row),
            source_ip: text_at(t[15], row),
            user_agent: text_at(t[16], row),
            service: text_at(t[17], row),
            before: text_at(t[18], row),
            after: text_at(t[19], row),
            metadata: text_at(t[20], row),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_records_columns_and_encode_as_the_leaf_does() {
        let full = EventRecord {
            seq: Seq(3),
            id: "e1".into(),
            tenant_id: "acme".into(),
            occurred_at: -5,
            received_at: 9,
            action: "user.login".into(),
            actor_id: "ann".into(),
            actor_type: Some("user".into()),
            outcome: "success".into(),
            metadata: Some("{\"a\":1}".into()),
            ..Default::default()
        };
        let sparse = EventRecord { seq: Seq(4), id: "e2".into(), ..full.clone() };
        let records = [full, EventRecord { actor_type: None, metadata: None, ..sparse }];
        let rows: Vec<_> = records.iter().map(|record| (record, record.leaf_hash())).collect();
        let batch = crate::record_batch(&rows).unwrap();
        let columns = EventColumns::complete(&batch).unwrap();
        assert_eq!(columns.len(), 2);
        for (row, record) in records.iter().enumerate() {
            assert_eq!(columns.values(row), record.column_values());
            assert_eq!(columns.record(row).unwrap(), *record);
            assert_eq!(columns.key(row), (record.occurred_at, record.seq.0));
            let mut encoded = Vec::new();
            columns.encode_row(row, &mut encoded);
            assert_eq!(auditum_format::event::leaf_hash_of_encoded_columns(&encoded), record.leaf_hash());
        }
    }
}
