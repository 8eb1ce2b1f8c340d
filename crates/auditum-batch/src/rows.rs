//! A batch's Arrow columns built a row at a time. Building them a column at a time went over
//! every record once per column: 21 passes over records scattered in the heap, each reading the
//! record and then its string, long out of cache by the next pass (a quarter of a seal's CPU,
//! most of it waiting for memory). Row by row, a record and its strings are read once, while the
//! seal hashes them for its leaf and its actor key.

use crate::{Result, schema};
use arrow::array::{ArrayRef, FixedSizeBinaryBuilder, RecordBatch, StringBuilder, TimestampMicrosecondArray, UInt64Array};
use auditum_format::event::{COLUMN_NAMES, ColumnBytes, HASHED_COLUMNS, LeafHash};
use std::sync::Arc;

/// How many text columns a batch has: all but seq, the two timestamps and the leaf hash.
const TEXT_COLUMNS: usize = 21;
const _: () = assert!(TEXT_COLUMNS + 4 == auditum_format::event::COLUMN_NAMES.len());

/// The text columns of a row, in the schema's order: its canonical columns (the order the schema
/// is built in) without the three integers.
fn texts<'a>(values: &[ColumnBytes<'a>; HASHED_COLUMNS]) -> impl Iterator<Item = Option<&'a str>> {
    values.iter().filter_map(|value| match *value {
        ColumnBytes::Text(text) => Some(Some(text)),
        ColumnBytes::Null => Some(None),
        ColumnBytes::Integer(_) => None,
    })
}

/// The integer at `index` of a row's canonical columns (seq, occurred_at, received_at).
fn integer(values: &[ColumnBytes<'_>; HASHED_COLUMNS], index: usize) -> Result<[u8; 8]> {
    match values[index] {
        ColumnBytes::Integer(bytes) => Ok(bytes),
        _ => Err(crate::Error::Schema(format!("column {} is not an integer", COLUMN_NAMES[index]))),
    }
}

/// Bytes per row a text column starts with when nothing better is known.
const DEFAULT_TEXT_BYTES_PER_ROW: usize = 16;

/// One record batch's columns being filled.
pub(crate) struct RowColumns {
    seq: Vec<u64>,
    occurred_at: Vec<i64>,
    received_at: Vec<i64>,
    texts: Vec<StringBuilder>,
    leaf_hashes: FixedSizeBinaryBuilder,
}

/// Bytes each text column held per row in the batch finished last: the next one of the same
/// stream reserves that much at once instead of growing (and copying) its buffers as it fills.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextSizes([usize; TEXT_COLUMNS]);

impl Default for TextSizes {
    fn default() -> Self {
        TextSizes([DEFAULT_TEXT_BYTES_PER_ROW; TEXT_COLUMNS])
    }
}

impl RowColumns {
    pub(crate) fn with_capacity(rows: usize, sizes: TextSizes) -> RowColumns {
        RowColumns {
            seq: Vec::with_capacity(rows),
            occurred_at: Vec::with_capacity(rows),
            received_at: Vec::with_capacity(rows),
            // A little over last time's size, so a chunk slightly wider than the last never regrows.
            texts: sizes.0.iter().map(|per_row| StringBuilder::with_capacity(rows, rows * per_row + rows * per_row / 8 + 64)).collect(),
            leaf_hashes: FixedSizeBinaryBuilder::with_capacity(rows, 32),
        }
    }

    /// Appends one row: its 24 canonical columns (`EventRecord::column_values`) and leaf hash.
    pub(crate) fn push(&mut self, values: &[ColumnBytes<'_>; HASHED_COLUMNS], leaf_hash: &LeafHash) -> Result<()> {
        self.seq.push(u64::from_be_bytes(integer(values, 0)?));
        self.occurred_at.push(i64::from_be_bytes(integer(values, 3)?));
        self.received_at.push(i64::from_be_bytes(integer(values, 4)?));
        for (builder, value) in self.texts.iter_mut().zip(texts(values)) {
            builder.append_option(value);
        }
        self.leaf_hashes.append_value(leaf_hash)?;
        Ok(())
    }

    /// The record batch, and the bytes per row each text column held (for the next batch).
    pub(crate) fn finish(mut self) -> Result<(RecordBatch, TextSizes)> {
        let rows = self.seq.len().max(1);
        let mut sizes = TextSizes::default();
        for (size, builder) in sizes.0.iter_mut().zip(&self.texts) {
            *size = builder.values_slice().len().div_ceil(rows);
        }
        let timestamps = |values: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")) };
        let mut texts = self.texts.iter_mut().map(|builder| Arc::new(builder.finish()) as ArrayRef);
        let mut text = || texts.next().ok_or_else(|| crate::Error::Schema("text column missing".into()));
        // The schema's order: seq, id, tenant_id, occurred_at, received_at, action, …, leaf_hash.
        let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(self.seq)), text()?, text()?];
        columns.push(timestamps(self.occurred_at));
        columns.push(timestamps(self.received_at));
        for _ in 2..TEXT_COLUMNS {
            columns.push(text()?);
        }
        columns.push(Arc::new(self.leaf_hashes.finish()));
        Ok((RecordBatch::try_new(schema(), columns)?, sizes))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{FixedSizeBinaryArray, StringArray};
    use auditum_format::event::{EventRecord, Seq};
    use rand::{Rng, SeedableRng};

    /// Records whose optional fields are absent, empty or of any length (multi-byte too).
    pub(crate) fn random_records(count: usize, seed: u64) -> Vec<EventRecord> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let text = |rng: &mut rand::rngs::StdRng| -> String {
            let length = if rng.gen_bool(0.1) { rng.gen_range(200..2_000) } else { rng.gen_range(0..40) };
            (0..length).map(|_| if rng.gen_bool(0.05) { 'é' } else { rng.gen_range('a'..='z') }).collect()
        };
        let optional = |rng: &mut rand::rngs::StdRng| -> Option<String> { rng.gen_bool(0.7).then(|| text(rng)) };
        (0..count)
            .map(|n| EventRecord {
                seq: Seq(n as u64 * 3),
                id: format!("e-{n}"),
                tenant_id: format!("t{}", rng.gen_range(0..4)),
                occurred_at: rng.gen_range(-1_000..1_000),
                received_at: rng.gen_range(0..1_000),
                action: text(&mut rng),
                actor_id: text(&mut rng),
                actor_type: optional(&mut rng),
                actor_name: optional(&mut rng),
                target_type: optional(&mut rng),
                target_id: optional(&mut rng),
                target_name: optional(&mut rng),
                outcome: text(&mut rng),
                error_code: optional(&mut rng),
                reason: optional(&mut rng),
                request_id: optional(&mut rng),
                correlation_id: optional(&mut rng),
                session_id: optional(&mut rng),
                source_ip: optional(&mut rng),
                user_agent: optional(&mut rng),
                service: optional(&mut rng),
                before: optional(&mut rng),
                after: optional(&mut rng),
                metadata: optional(&mut rng),
            })
            .collect()
    }

    /// The columns built row by row are the arrays built a column at a time from the records.
    #[test]
    fn rows_build_the_arrays_a_column_at_a_time_builds() {
        let records = random_records(3_000, 11);
        let rows: Vec<(&EventRecord, LeafHash)> = records.iter().map(|record| (record, record.leaf_hash())).collect();
        // Sizes far too small and far too large: capacity never changes what is built.
        for sizes in [TextSizes([0; TEXT_COLUMNS]), TextSizes::default(), TextSizes([500; TEXT_COLUMNS])] {
            let mut columns = RowColumns::with_capacity(rows.len(), sizes);
            for (record, leaf) in &rows {
                columns.push(&record.column_values(), leaf).unwrap();
            }
            let (built, _) = columns.finish().unwrap();
            // The reference: each column from the records' canonical column values, by name.
            let values: Vec<_> = records.iter().map(|record| record.column_values()).collect();
            let expected: Vec<ArrayRef> = COLUMN_NAMES
                .iter()
                .enumerate()
                .map(|(column, name)| -> ArrayRef {
                    let integers = || {
                        values.iter().map(|row| match row[column] {
                            ColumnBytes::Integer(bytes) => i64::from_be_bytes(bytes),
                            _ => panic!("{name} is an integer column"),
                        })
                    };
                    match *name {
                        "seq" => Arc::new(UInt64Array::from(integers().map(|value| value as u64).collect::<Vec<_>>())),
                        "occurred_at" | "received_at" => {
                            Arc::new(TimestampMicrosecondArray::from(integers().collect::<Vec<_>>()).with_timezone("UTC"))
                        }
                        "leaf_hash" => Arc::new(FixedSizeBinaryArray::try_from_iter(rows.iter().map(|(_, leaf)| leaf.as_slice())).unwrap()),
                        _ => Arc::new(StringArray::from(
                            values
                                .iter()
                                .map(|row| match row[column] {
                                    ColumnBytes::Text(text) => Some(text),
                                    ColumnBytes::Null => None,
                                    ColumnBytes::Integer(_) => panic!("{name} is a text column"),
                                })
                                .collect::<Vec<_>>(),
                        )),
                    }
                })
                .collect();
            let expected = RecordBatch::try_new(schema(), expected).unwrap();
            assert_eq!(built, expected);
        }
    }
}
