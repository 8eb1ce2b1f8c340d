//! Export formats (docs/API.md): JSONL, CSV and Parquet, produced row by row from a scan and cut
//! into chunks, so memory stays bounded whatever the range.
//!
//! - JSONL: one §7 `event` object per line (the 24 hashed columns; `seq` and timestamps as
//!   integer microseconds), so any line can be checked against a proof.
//! - CSV (RFC 4180): a header row with the same 24 column names, CRLF line ends, timestamps as
//!   RFC 3339 UTC with microseconds; an empty field is a null (empty strings are never stored).
//! - Parquet: the batch schema of docs/FORMAT.md, Stored columns, `leaf_hash` included.

use crate::read::ScanRow;
use auditum_batch as batch;
use auditum_format::event::{COLUMN_NAMES, ColumnBytes, HASHED_COLUMNS};
use auditum_format::json;
use auditum_format::time::rfc3339_micros;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Chunks are cut at about this size (well under gRPC's 4 MiB default message limit).
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Rows handed to the Parquet writer at a time.
const PARQUET_ROWS: usize = 8192;

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

/// A `Write` whose bytes the exporter drains between writes.
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

/// Turns rows into output chunks and keeps the summary: row count and SHA-256 of every byte.
pub struct Exporter {
    format: Format,
    out: Vec<u8>,
    parquet: Option<(parquet::arrow::ArrowWriter<SharedBuffer>, SharedBuffer)>,
    pending_rows: Vec<ScanRow>,
    hasher: Sha256,
    pub rows: u64,
    pub unsealed_rows: u64,
    pub bytes: u64,
}

impl Exporter {
    pub fn new(format: Format) -> Result<Exporter, Error> {
        let mut exporter = Exporter {
            format,
            out: Vec::with_capacity(CHUNK_BYTES + 64 * 1024),
            parquet: None,
            pending_rows: Vec::new(),
            hasher: Sha256::new(),
            rows: 0,
            unsealed_rows: 0,
            bytes: 0,
        };
        match format {
            Format::Csv => {
                exporter.out.extend_from_slice(COLUMN_NAMES[..HASHED_COLUMNS].join(",").as_bytes());
                exporter.out.extend_from_slice(b"\r\n");
            }
            Format::Parquet => {
                let buffer = SharedBuffer::default();
                let properties = batch::writer_properties(PARQUET_ROWS, batch::BatchLayout::default())
                    .map_err(|error| Error::Encode(error.to_string()))?;
                let writer = parquet::arrow::ArrowWriter::try_new(buffer.clone(), batch::schema(), Some(properties))
                    .map_err(|error| Error::Encode(error.to_string()))?;
                exporter.parquet = Some((writer, buffer));
            }
            Format::Jsonl => {}
        }
        Ok(exporter)
    }

    pub fn push(&mut self, row: ScanRow) -> Result<(), Error> {
        self.rows += 1;
        if row.batch_index.is_none() {
            self.unsealed_rows += 1;
        }
        match self.format {
            Format::Jsonl => write_json_row(&mut self.out, &row),
            Format::Csv => write_csv_row(&mut self.out, &row),
            Format::Parquet => {
                self.pending_rows.push(row);
                if self.pending_rows.len() >= PARQUET_ROWS {
                    self.flush_parquet_rows()?;
                }
            }
        }
        Ok(())
    }

    fn flush_parquet_rows(&mut self) -> Result<(), Error> {
        let Some((writer, buffer)) = self.parquet.as_mut() else { return Ok(()) };
        if !self.pending_rows.is_empty() {
            let rows: Vec<_> = self.pending_rows.iter().map(|row| (&row.record, row.leaf_hash)).collect();
            let record_batch = batch::record_batch(&rows).map_err(|error| Error::Encode(error.to_string()))?;
            writer.write(&record_batch).map_err(|error| Error::Encode(error.to_string()))?;
            self.pending_rows.clear();
        }
        self.out.extend_from_slice(&buffer.take());
        Ok(())
    }

    fn cut(&mut self) -> Bytes {
        let chunk = Bytes::from(std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK_BYTES + 64 * 1024)));
        self.hasher.update(&chunk);
        self.bytes += chunk.len() as u64;
        chunk
    }

    /// A chunk once enough output is buffered.
    pub fn take_chunk(&mut self) -> Option<Bytes> {
        (self.out.len() >= CHUNK_BYTES).then(|| self.cut())
    }

    /// The last chunk (possibly empty) and the lowercase hex SHA-256 of all chunks.
    pub fn finish(mut self) -> Result<(Bytes, String, Exporter), Error> {
        if self.format == Format::Parquet {
            self.flush_parquet_rows()?;
            if let Some((writer, buffer)) = self.parquet.take() {
                writer.close().map_err(|error| Error::Encode(error.to_string()))?;
                self.out.extend_from_slice(&buffer.take());
            }
        }
        let last = self.cut();
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        Ok((last, digest, self))
    }
}

/// One JSONL line: the §7 `event` object, columns in §2.2 order (as in proofs), written
/// directly rather than through a `serde_json::Value` (the export's hot path).
fn write_json_row(out: &mut Vec<u8>, row: &ScanRow) {
    for (index, (name, value)) in COLUMN_NAMES.iter().zip(row.record.column_values()).enumerate() {
        out.extend_from_slice(if index == 0 { b"{\"" } else { b",\"" });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        json::write_column(out, name, &value);
    }
    out.extend_from_slice(b"}\n");
}

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

fn write_csv_row(out: &mut Vec<u8>, row: &ScanRow) {
    for (index, (name, value)) in COLUMN_NAMES.iter().zip(row.record.column_values()).enumerate() {
        if index > 0 {
            out.push(b',');
        }
        match value {
            // A null is an empty field: auditum never stores empty strings.
            ColumnBytes::Null => {}
            ColumnBytes::Text(text) => csv_field(out, text),
            ColumnBytes::Integer(bytes) if *name == "seq" => out.extend_from_slice(u64::from_be_bytes(bytes).to_string().as_bytes()),
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
        let row = ScanRow { leaf_hash: record.leaf_hash(), record: record.clone(), batch_index: None };
        let mut out = Vec::new();
        write_json_row(&mut out, &row);
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
