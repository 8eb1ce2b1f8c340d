//! Export formats (docs/API.md): JSONL, CSV and Parquet. Text rows are written from column values
//! (straight from the decoded Arrow arrays on the hot path), Parquet batch by batch.
//!
//! - JSONL: one §7 `event` object per line (the 24 hashed columns; `seq` and timestamps as
//!   integer microseconds), so any line can be checked against a proof.
//! - CSV (RFC 4180): a header row with the same 24 column names, CRLF line ends, timestamps as
//!   RFC 3339 UTC with microseconds; an empty field is a null (empty strings are never stored).
//! - Parquet: the batch schema of docs/FORMAT.md, Stored columns, `leaf_hash` included.

use arrow::array::RecordBatch;
use auditum_batch as batch;
use auditum_format::event::{COLUMN_NAMES, ColumnBytes, HASHED_COLUMNS};
use auditum_format::json;
use auditum_format::time::rfc3339_micros;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

/// Chunks are cut at about this size (well under gRPC's 4 MiB default message limit).
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Rows handed to the Parquet writer at a time.
pub const PARQUET_ROWS: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("export encoding failed: {0}")]
    Encode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// A `Write` whose bytes the Parquet writer's owner drains between writes.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The CSV header row.
pub fn csv_header(out: &mut Vec<u8>) {
    out.extend_from_slice(COLUMN_NAMES[..HASHED_COLUMNS].join(",").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A Parquet export file written batch by batch, its bytes handed out as they are produced.
pub struct ParquetOutput {
    writer: parquet::arrow::ArrowWriter<SharedBuffer>,
    buffer: SharedBuffer,
}

impl ParquetOutput {
    pub fn new() -> Result<ParquetOutput, Error> {
        let buffer = SharedBuffer::default();
        let properties =
            batch::writer_properties(PARQUET_ROWS, batch::BatchLayout::default()).map_err(|error| Error::Encode(error.to_string()))?;
        let writer = parquet::arrow::ArrowWriter::try_new(buffer.clone(), batch::schema(), Some(properties))
            .map_err(|error| Error::Encode(error.to_string()))?;
        Ok(ParquetOutput { writer, buffer })
    }

    /// Writes rows (the batch schema) and appends the bytes produced so far to `out`.
    pub fn write(&mut self, rows: &RecordBatch, out: &mut Vec<u8>) -> Result<(), Error> {
        self.writer.write(rows).map_err(|error| Error::Encode(error.to_string()))?;
        out.extend_from_slice(&self.buffer.take());
        Ok(())
    }

    /// Closes the file, appending its last bytes (the footer) to `out`.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.writer.close().map_err(|error| Error::Encode(error.to_string()))?;
        out.extend_from_slice(&self.buffer.take());
        Ok(())
    }
}

/// One JSONL line: the §7 `event` object, columns in §2.2 order (as in proofs), written
/// directly from the column values (of a record or straight from Arrow arrays) rather than
/// through a `serde_json::Value`: the export's hot path.
pub fn write_json_row(out: &mut Vec<u8>, values: [ColumnBytes<'_>; HASHED_COLUMNS]) {
    for ((name, key), value) in COLUMN_NAMES.iter().zip(JSON_KEYS.iter()).zip(values) {
        out.extend_from_slice(key);
        json::write_column(out, name, &value);
    }
    out.extend_from_slice(b"}\n");
}

/// What precedes each column's value in a JSONL line: `{"seq":`, then `,"id":` and so on.
static JSON_KEYS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    COLUMN_NAMES[..HASHED_COLUMNS]
        .iter()
        .enumerate()
        .map(|(index, name)| format!("{}\"{name}\":", if index == 0 { "{" } else { "," }).into_bytes())
        .collect()
});

/// RFC 3339 UTC with microseconds, as exports and the CLI print times.
fn csv_field(out: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|byte| matches!(byte, b',' | b'"' | b'\r' | b'\n')) {
        out.push(b'"');
        for byte in value.bytes() {
            if byte == b'"' {
                out.push(b'"');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

/// One CSV record (CRLF-terminated) of the column values.
pub fn write_csv_row(out: &mut Vec<u8>, values: [ColumnBytes<'_>; HASHED_COLUMNS]) {
    for (index, (name, value)) in COLUMN_NAMES.iter().zip(values).enumerate() {
        if index > 0 {
            out.push(b',');
        }
        match value {
            // A null is an empty field: auditum never stores empty strings.
            ColumnBytes::Null => {}
            ColumnBytes::Text(text) => csv_field(out, text),
            ColumnBytes::Integer(bytes) if *name == "seq" => {
                out.extend_from_slice(itoa::Buffer::new().format(u64::from_be_bytes(bytes)).as_bytes())
            }
            ColumnBytes::Integer(bytes) => out.extend_from_slice(rfc3339_micros(i64::from_be_bytes(bytes)).as_bytes()),
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_the_proof_event_object_in_column_order() {
        let record = auditum_format::event::EventRecord {
            seq: auditum_format::event::Seq(7),
            id: "e\"1".into(),
            tenant_id: "acme".into(),
            occurred_at: -5,
            received_at: 9,
            action: "user.login".into(),
            actor_id: "ann".into(),
            outcome: "success".into(),
            metadata: Some("{\"a\":\"\\n\"}".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        write_json_row(&mut out, record.column_values());
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value, record.to_json());
        assert_eq!(auditum_format::event::EventRecord::from_json(&value).unwrap(), record);
        let keys: Vec<&str> = line
            .trim_end()
            .trim_matches(|c| c == '{' || c == '}')
            .split(",\"")
            .map(|part| part.trim_start_matches('"').split('"').next().unwrap())
            .collect();
        assert_eq!(keys, COLUMN_NAMES[..HASHED_COLUMNS].to_vec());
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let mut out = Vec::new();
        csv_field(&mut out, "plain");
        out.push(b'|');
        csv_field(&mut out, "a,\"b\"\r\nc");
        assert_eq!(String::from_utf8(out).unwrap(), "plain|\"a,\"\"b\"\"\r\nc\"");
        assert_eq!(rfc3339_micros(1_700_000_000_000_001), "2023-11-14T22:13:20.000001Z");
    }
}
