//! Write-ahead log files: segments of CRC32C-framed records, one record per event.
//!
//! Segment: `{first_seq:020}.wal` = header (magic, version, first seq, header crc) then records
//! `u32 len | u32 crc32c(payload) | payload`, payload = record type byte + event columns
//! (`EventRecord::encode_columns`). Seqs inside the WAL are dense.
//!
//! Group commit (one write and one fdatasync for many appends) is driven by the log's writer
//! thread (`crate::log`); this module only knows files.

use crate::event::{EventRecord, Seq};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

const MAGIC: &[u8; 8] = b"AUDITWAL";
const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 8;
const RECORD_TYPE_EVENT: u8 = 0x01;
/// No valid record is larger: an event is ≤ 64 KiB on the wire and JSON escaping grows it ≤ 6×.
const MAX_RECORD_LEN: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wal i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("wal segment {path} is corrupt at byte {offset}: {reason}; acknowledged events would be lost, refusing to continue")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("wal starts at seq {wal_start} but the ledger expects seq {ledger_next}: acknowledged events are missing")]
    Gap { wal_start: Seq, ledger_next: Seq },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

pub fn segment_path(dir: &Path, first_seq: Seq) -> PathBuf {
    dir.join(format!("{:020}.wal", first_seq.0))
}

fn encode_header(first_seq: Seq) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    header[12..20].copy_from_slice(&first_seq.0.to_be_bytes());
    let crc = crc32c::crc32c(&header[..20]);
    header[20..].copy_from_slice(&crc.to_be_bytes());
    header
}

fn decode_header(bytes: &[u8]) -> Result<Seq, String> {
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
fn valid_record_follows(bytes: &[u8], after: Seq) -> bool {
    (0..bytes.len()).any(|offset| matches!(read_record(&bytes[offset..]), ReadRecord::Record { record, .. } if record.seq > after))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub first_seq: Seq,
    pub bytes: u64,
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every record in the WAL, in seq order (committed ones too: they feed idempotency).
    pub records: Vec<EventRecord>,
    pub segments: Vec<SegmentInfo>,
    /// Seq after the last record; None for an empty WAL.
    pub end_seq: Option<Seq>,
    /// Bytes dropped from a torn tail.
    pub truncated_bytes: u64,
}

fn list_segments(dir: &Path) -> Result<Vec<(Seq, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".wal") else { continue };
        let Ok(first) = stem.parse::<u64>() else { continue };
        segments.push((Seq(first), entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Reads every segment under `dir`. A damaged tail of the last segment (a write cut short by a
/// crash: never acknowledged, because acknowledgement follows fsync) is truncated with a
/// warning; damage anywhere else is an error.
pub fn replay(dir: &Path) -> Result<Replay> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let listed = list_segments(dir)?;
    let mut replay = Replay::default();
    let segment_count = listed.len();
    for (position, (named_first, path)) in listed.into_iter().enumerate() {
        let is_last = position + 1 == segment_count;
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let corrupt = |offset: u64, reason: String| Error::Corrupt { path: path.clone(), offset, reason };
        let first_seq = match decode_header(&bytes) {
            Ok(first) if first == named_first => first,
            Ok(first) => return Err(corrupt(12, format!("header says first seq {first}, file name says {named_first}"))),
            Err(_) if is_last && bytes.len() < HEADER_LEN => {
                // Created but its header never reached the disk: it held no acknowledged record.
                tracing::warn!(path = %path.display(), bytes = bytes.len(), "removing wal segment with a torn header");
                fs::remove_file(&path).map_err(io_error(&path))?;
                replay.truncated_bytes += bytes.len() as u64;
                continue;
            }
            Err(reason) => return Err(corrupt(0, reason)),
        };
        if let Some(end) = replay.end_seq
            && first_seq != end
        {
            return Err(corrupt(12, format!("segment starts at seq {first_seq} but the previous one ends at {end}")));
        }
        let mut expected = first_seq;
        let mut offset = HEADER_LEN;
        while offset < bytes.len() {
            let damage = match read_record(&bytes[offset..]) {
                ReadRecord::Record { record, len } => {
                    if record.seq != expected {
                        return Err(corrupt(offset as u64, format!("record has seq {} where {expected} was expected", record.seq)));
                    }
                    expected = expected.next();
                    offset += len;
                    replay.records.push(record);
                    continue;
                }
                ReadRecord::Short => "record cut short".to_string(),
                ReadRecord::Invalid(reason) => reason,
            };
            if !is_last || valid_record_follows(&bytes[offset + 1..], expected) {
                return Err(corrupt(offset as u64, damage));
            }
            let dropped = (bytes.len() - offset) as u64;
            tracing::warn!(path = %path.display(), offset, dropped_bytes = dropped, reason = %damage, "truncating torn wal tail");
            let file = OpenOptions::new().write(true).open(&path).map_err(io_error(&path))?;
            file.set_len(offset as u64).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
            replay.truncated_bytes += dropped;
            break;
        }
        replay.segments.push(SegmentInfo { path: path.clone(), first_seq, bytes: offset.min(bytes.len()) as u64 });
        replay.end_seq = Some(expected);
    }
    Ok(replay)
}

/// The append side: owns the active segment file.
#[derive(Debug)]
pub struct WalFiles {
    dir: PathBuf,
    active: File,
    /// Every segment on disk, oldest first; the last is the active one.
    segments: Vec<SegmentInfo>,
    next_seq: Seq,
    segment_max_bytes: u64,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|file| file.sync_all()).map_err(io_error(dir))
}

impl WalFiles {
    /// Opens the WAL for appending after `replay`. `ledger_next` is the first seq not yet
    /// committed; the WAL must hold every seq from there on.
    pub fn open(dir: &Path, replay: &Replay, ledger_next: Seq, segment_max_bytes: u64) -> Result<WalFiles> {
        let mut segments = replay.segments.clone();
        let wal_end = replay.end_seq;
        let wal_start = replay.records.first().map(|record| record.seq).or(wal_end);
        // Segments are deleted only once committed, so a WAL starting past the ledger lost records.
        if let Some(start) = wal_start
            && start > ledger_next
        {
            return Err(Error::Gap { wal_start: start, ledger_next });
        }
        let next_seq = match wal_end {
            Some(end) if end >= ledger_next => end,
            _ => ledger_next,
        };
        let reuse_last = matches!(segments.last(), Some(last) if wal_end == Some(next_seq) && last.bytes < segment_max_bytes);
        let active = if reuse_last {
            let last = segments.last().map(|segment| segment.path.clone()).unwrap_or_default();
            OpenOptions::new().append(true).open(&last).map_err(io_error(&last))?
        } else {
            let (file, info) = create_segment(dir, next_seq)?;
            segments.push(info);
            file
        };
        Ok(WalFiles { dir: dir.to_path_buf(), active, segments, next_seq, segment_max_bytes })
    }

    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// Total bytes of every segment on disk.
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Writes framed records (`encode_record` output) holding seqs `[next_seq, next_seq+count)`,
    /// then fdatasyncs. Only after this returns may those events be acknowledged.
    pub fn append_synced(&mut self, framed: &[u8], count: u64) -> Result<()> {
        let path = self.active_path();
        self.active.write_all(framed).map_err(io_error(&path))?;
        self.active.sync_data().map_err(io_error(&path))?;
        self.next_seq = Seq(self.next_seq.0 + count);
        if let Some(active) = self.segments.last_mut() {
            active.bytes += framed.len() as u64;
            if active.bytes >= self.segment_max_bytes {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn active_path(&self) -> PathBuf {
        self.segments.last().map(|segment| segment.path.clone()).unwrap_or_else(|| self.dir.clone())
    }

    /// Starts a new segment at the next seq.
    pub fn rotate(&mut self) -> Result<()> {
        let (file, info) = create_segment(&self.dir, self.next_seq)?;
        self.active = file;
        self.segments.push(info);
        Ok(())
    }

    /// Deletes segments whose every seq is below `committed_next`. The active segment is first
    /// rotated away when it is fully committed and holds at least `rotate_min_bytes` of records.
    pub fn delete_committed(&mut self, committed_next: Seq, rotate_min_bytes: u64) -> Result<usize> {
        let active_committed = self.next_seq <= committed_next;
        let active_has_data = self.segments.last().is_some_and(|active| active.bytes >= HEADER_LEN as u64 + rotate_min_bytes.max(1));
        if active_committed && active_has_data {
            self.rotate()?;
        }
        let mut deleted = 0;
        // Segment i holds seqs [first_i, first_{i+1}): deletable when first_{i+1} <= committed_next.
        while self.segments.len() >= 2 && self.segments[1].first_seq <= committed_next {
            let oldest = self.segments.remove(0);
            fs::remove_file(&oldest.path).map_err(io_error(&oldest.path))?;
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(deleted)
    }
}

fn create_segment(dir: &Path, first_seq: Seq) -> Result<(File, SegmentInfo)> {
    let path = segment_path(dir, first_seq);
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(io_error(&path))?;
    file.write_all(&encode_header(first_seq)).map_err(io_error(&path))?;
    file.sync_all().map_err(io_error(&path))?;
    sync_dir(dir)?;
    let file = OpenOptions::new().append(true).open(&path).map_err(io_error(&path))?;
    Ok((file, SegmentInfo { path, first_seq, bytes: HEADER_LEN as u64 }))
}
