//! Write-ahead log files: segments of framed records (`auditum_format::wal`), one record per
//! event, named `{first_seq:020}.wal`.
//!
//! Group commit (one write and one fdatasync for many appends) is driven by the log's writer
//! thread (`super::writer`); this module only knows files.

use auditum_format::event::{EventRecord, Seq};
use auditum_format::wal::{HEADER_LEN, decode_header, decode_record, encode_header, valid_record_follows};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
            let damage = match decode_record(&bytes[offset..]) {
                Ok(Some((record, len))) => {
                    if record.seq != expected {
                        return Err(corrupt(offset as u64, format!("record has seq {} where {expected} was expected", record.seq)));
                    }
                    expected = expected.next();
                    offset += len;
                    replay.records.push(record);
                    continue;
                }
                Ok(None) => "record cut short".to_string(),
                Err(reason) => reason,
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
    /// On error nothing was acknowledged and the active segment may hold a partial write:
    /// [`WalFiles::recover`] cuts it off before the next append.
    pub fn append_synced(&mut self, framed: &[u8], count: u64) -> Result<()> {
        // A full segment is rotated before the write, so that a failure to start the next one
        // fails this append cleanly instead of following a write that succeeded.
        if self.segments.last().is_some_and(|active| active.bytes >= self.segment_max_bytes) {
            self.rotate()?;
        }
        let path = self.active_path();
        self.active.write_all(framed).map_err(io_error(&path))?;
        self.active.sync_data().map_err(io_error(&path))?;
        self.next_seq = Seq(self.next_seq.0 + count);
        if let Some(active) = self.segments.last_mut() {
            active.bytes += framed.len() as u64;
        }
        Ok(())
    }

    /// After a failed write or sync: cuts the active segment back to what was last synced,
    /// syncs that, reopens it, and reads it back to check it ends with the last acknowledged
    /// record. Only then may appends resume; on error the log stays failed.
    pub fn recover(&mut self) -> Result<()> {
        // Writes must work again before anything is promised: a probe file the size of a few
        // appends is written, synced and removed (a full disk fails here, and stays failed).
        let probe = self.dir.join(".write-probe");
        let probed = File::create(&probe).and_then(|mut file| {
            file.write_all(&[0u8; 256 * 1024])?;
            file.sync_all()
        });
        let _ = fs::remove_file(&probe);
        probed.map_err(io_error(&probe))?;
        let Some(active) = self.segments.last().cloned() else { return Ok(()) };
        let path = active.path.clone();
        let file = OpenOptions::new().write(true).open(&path).map_err(io_error(&path))?;
        file.set_len(active.bytes).map_err(io_error(&path))?;
        file.sync_all().map_err(io_error(&path))?;
        drop(file);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let corrupt = |offset: usize, reason: String| Error::Corrupt { path: path.clone(), offset: offset as u64, reason };
        let first = decode_header(&bytes).map_err(|reason| corrupt(0, reason))?;
        let mut expected = first;
        let mut offset = HEADER_LEN;
        while offset < bytes.len() {
            match decode_record(&bytes[offset..]) {
                Ok(Some((record, len))) if record.seq == expected => {
                    expected = expected.next();
                    offset += len;
                }
                Ok(Some((record, _))) => {
                    return Err(corrupt(offset, format!("record has seq {} where {expected} was expected", record.seq)));
                }
                Ok(None) => return Err(corrupt(offset, "record cut short".into())),
                Err(reason) => return Err(corrupt(offset, reason)),
            }
        }
        if expected != self.next_seq {
            return Err(corrupt(offset, format!("the segment ends before seq {}, the next to assign", self.next_seq)));
        }
        self.active = OpenOptions::new().append(true).open(&path).map_err(io_error(&path))?;
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
