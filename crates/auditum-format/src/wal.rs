//! Write-ahead log framing: the bytes of a segment header and of one record.
//!
//! Segment = header (magic, version, first seq, header crc) then records
//! `u32 len | u32 crc32c(payload) | payload`, payload = record type byte + event columns
//! (`EventRecord::encode_columns`). Seqs inside the WAL are dense. The files themselves (segments,
//! replay, group commit) belong to the engine; this module only knows bytes.

use crate::event::{EventRecord, Seq};

const MAGIC: &[u8; 8] = b"AUDITWAL";
const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 8;
const RECORD_TYPE_EVENT: u8 = 0x01;
/// No valid record is larger: an event is ≤ 64 KiB on the wire and JSON escaping grows it ≤ 6×.
pub const MAX_RECORD_LEN: usize = 4 * 1024 * 1024;

pub fn encode_header(first_seq: Seq) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    header[12..20].copy_from_slice(&first_seq.0.to_be_bytes());
    let crc = crc32c::crc32c(&header[..20]);
    header[20..].copy_from_slice(&crc.to_be_bytes());
    header
}

pub fn decode_header(bytes: &[u8]) -> Result<Seq, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("header truncated at {} bytes", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic: not an auditum wal segment".into());
    }
    let crc = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32c::crc32c(&bytes[..20]) != crc {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(format!("unsupported wal format version {version}"));
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[12..20]);
    Ok(Seq(u64::from_be_bytes(first)))
}

/// Appends one framed record for `record` to `buf`.
pub fn encode_record(record: &EventRecord, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    buf.push(RECORD_TYPE_EVENT);
    record.encode_columns(buf);
    let payload_len = buf.len() - start - RECORD_HEADER_LEN;
    let crc = crc32c::crc32c(&buf[start + RECORD_HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&(payload_len as u32).to_be_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Outcome of reading one record at an offset.
// Short-lived, returned by value once per record: boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum ReadRecord {
    Record {
        record: EventRecord,
        len: usize,
    },
    /// Not enough bytes left for what the frame announces: a torn write.
    Short,
    /// The frame is complete but wrong.
    Invalid(String),
}

fn read_record(bytes: &[u8]) -> ReadRecord {
    if bytes.len() < RECORD_HEADER_LEN {
        return ReadRecord::Short;
    }
    let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len == 0 || len > MAX_RECORD_LEN {
        return ReadRecord::Invalid(format!("record length {len} is out of range"));
    }
    if bytes.len() < RECORD_HEADER_LEN + len {
        return ReadRecord::Short;
    }
    let crc = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let payload = &bytes[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
    if crc32c::crc32c(payload) != crc {
        return ReadRecord::Invalid("record checksum mismatch".into());
    }
    if payload[0] != RECORD_TYPE_EVENT {
        return ReadRecord::Invalid(format!("unknown record type {:#04x}", payload[0]));
    }
    match EventRecord::decode_columns(&payload[1..]) {
        Ok(record) => ReadRecord::Record { record, len: RECORD_HEADER_LEN + len },
        Err(error) => ReadRecord::Invalid(format!("record does not decode: {error}")),
    }
}

/// Decodes the framed record at the start of `bytes`: the record and its framed length, None when
/// `bytes` ends before the frame does (a torn write), or why the frame is invalid.
pub fn decode_record(bytes: &[u8]) -> std::result::Result<Option<(EventRecord, usize)>, String> {
    match read_record(bytes) {
        ReadRecord::Record { record, len } => Ok(Some((record, len))),
        ReadRecord::Short => Ok(None),
        ReadRecord::Invalid(reason) => Err(reason),
    }
}

/// Whether any complete, valid record with a seq above `after` starts anywhere in `bytes`:
/// if one does, the damage before it is corruption of acknowledged data, not a torn tail.
pub fn valid_record_follows(bytes: &[u8], after: Seq) -> bool {
    (0..bytes.len()).any(|offset| matches!(read_record(&bytes[offset..]), ReadRecord::Record { record, .. } if record.seq > after))
}
