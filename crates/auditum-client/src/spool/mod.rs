//! The spool (outbox): every event is written here before `log()` returns and stays until the
//! server acknowledged it. The bytes are sdk/SPOOL.md's, shared with the Python and TypeScript SDKs.

mod lock;
mod mapped;
mod replay;
pub mod segment;

pub use lock::SpoolLock;
pub use replay::Replayed;

use crate::options::SpoolFsync;
use mapped::MappedSegment;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What opening or writing a spool failed at.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {} is in use by {owner}", dir.display())]
    InUse { dir: PathBuf, owner: String },
    #[error("spool {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Where an event's record is: its segment and its ordinal among that segment's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub ordinal: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// The bytes of its records (with the magic): where the next record goes.
    size: u64,
    /// The file's length: longer than `size` while it is the current segment, preallocated
    /// (zeros after the records). What `spool_max_bytes` bounds.
    file_len: u64,
    events: u32,
    acked: u32,
    /// The current segment's preallocated file, mapped (None for older segments, or where it
    /// could not be preallocated).
    mapped: Option<MappedSegment>,
}

impl Segment {
    /// A new current segment, preallocated to `capacity` bytes and mapped where possible.
    fn create(dir: &Path, number: u64, sync: bool, capacity: u64) -> std::io::Result<Segment> {
        let path = dir.join(segment::segment_name(number));
        let file = std::fs::OpenOptions::new().create_new(true).read(true).write(true).open(&path)?;
        let created = Segment::prepare(file, &path, dir, sync, capacity);
        if created.is_err() {
            // Left behind, it would make every later attempt at this number fail (create_new).
            let _ = std::fs::remove_file(&path);
        }
        let (file, file_len, mapped) = created?;
        Ok(Segment { path, file: Arc::new(file), size: segment::MAGIC.len() as u64, file_len, events: 0, acked: 0, mapped })
    }

    fn prepare(mut file: File, path: &Path, dir: &Path, sync: bool, capacity: u64) -> std::io::Result<(File, u64, Option<MappedSegment>)> {
        file.write_all(segment::MAGIC)?;
        let magic = segment::MAGIC.len() as u64;
        let preallocated = capacity > magic && mapped::preallocate(&file, capacity);
        let mapped = if preallocated { MappedSegment::new(&file, capacity) } else { None };
        if sync {
            file.sync_data()?;
            File::open(dir)?.sync_all()?;
        }
        tracing::trace!(path = %path.display(), preallocated, mapped = mapped.is_some(), "spool segment created");
        Ok((file, if preallocated { capacity } else { magic }, mapped))
    }

    /// Writes a whole record at the end of the segment's records; returns how much longer the
    /// file got (nothing while it fits the preallocated zeros).
    fn write_record(&mut self, record: &[u8]) -> std::io::Result<u64> {
        let copied = match self.mapped.as_mut() {
            Some(mapped) => mapped.write(self.size, record),
            None => false,
        };
        if !copied && let Err(error) = write_at(&self.file, record, self.size) {
            // Whatever part was written lies after the records, where the next one goes (or a
            // torn tail to the next open); the file is not left longer than counted.
            let _ = self.file.set_len(self.file_len.max(self.size));
            return Err(error);
        }
        self.size += record.len() as u64;
        let grown = self.size.saturating_sub(self.file_len);
        self.file_len += grown;
        Ok(grown)
    }

    /// Unmaps it and cuts the preallocated zeros after its records, as it stops being current;
    /// returns the bytes freed.
    fn seal(&mut self) -> u64 {
        self.mapped = None;
        if self.file_len == self.size {
            return 0;
        }
        // Left in place, the zeros are only free space to the next open (sdk/SPOOL.md).
        if let Err(error) = self.file.set_len(self.size) {
            tracing::warn!(path = %self.path.display(), %error, "could not cut a spool segment's preallocated tail");
            return 0;
        }
        std::mem::replace(&mut self.file_len, self.size) - self.size
    }
}

/// See [`Spool::next_capacity`].
fn capacity(segment_limit: u64, max_bytes: u64, size: u64) -> u64 {
    segment_limit.min(max_bytes.saturating_sub(size + segment::MAGIC.len() as u64))
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// An open spool: the current segment new events go to, and older ones still holding events.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    fsync: SpoolFsync,
    max_bytes: u64,
    segment_limit: u64,
    current_number: u64,
    current: Segment,
    older: BTreeMap<u64, Segment>,
    size: u64,
    /// Whether the current segment has writes the worker has not fsynced yet.
    dirty: bool,
    record: Vec<u8>,
    _lock: SpoolLock,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`: takes its lock and replays it (see `replay`).
    pub fn open(dir: &Path, fsync: SpoolFsync, max_bytes: u64) -> Result<(Spool, replay::Opened), SpoolError> {
        replay::open(dir, fsync, max_bytes)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its files' bytes on disk, the current segment's preallocation included: what
    /// `spool_max_bytes` bounds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes of its records (the `spool_bytes` counter): [`Spool::size`] less the current
    /// segment's unused preallocation, the only one (others are cut when they stop being current).
    pub fn data_size(&self) -> u64 {
        self.size - self.current.file_len.saturating_sub(self.current.size)
    }

    /// Whether a record of an event of `event_len` bytes fits (SPOOL.md: `size + growth + 16`,
    /// where a record inside the current segment's preallocated zeros grows nothing).
    pub fn has_room(&self, event_len: usize) -> bool {
        let growth = (self.current.size + segment::event_record_len(event_len)).saturating_sub(self.current.file_len);
        self.size + growth + segment::MAGIC.len() as u64 <= self.max_bytes
    }

    /// The current segment's preallocation: a whole segment, or what is left of `spool_max_bytes`
    /// less a next segment's magic (which `has_room` keeps free).
    fn next_capacity(&self) -> u64 {
        capacity(self.segment_limit, self.max_bytes, self.size)
    }

    /// Writes one event record whole (one copy into the mapped segment, or one `pwrite`); fsyncs
    /// it under `SpoolFsync::Always`.
    pub fn append(&mut self, event: &[u8]) -> std::io::Result<Location> {
        if self.current.size >= self.segment_limit {
            self.rotate()?;
        }
        self.record.clear();
        segment::event_record(event, &mut self.record);
        self.size += self.current.write_record(&self.record)?;
        let location = Location { segment: self.current_number, ordinal: self.current.events };
        self.current.events += 1;
        match self.fsync {
            SpoolFsync::Always => self.current.file.sync_data()?,
            SpoolFsync::Batch => self.dirty = true,
            SpoolFsync::Never => {}
        }
        Ok(location)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.fsync != SpoolFsync::Never && self.dirty {
            // The worker would fsync it before sending; it no longer knows this file, so now.
            self.current.file.sync_data()?;
        }
        self.dirty = false;
        self.size -= self.current.seal();
        let next = Segment::create(&self.dir, self.current_number + 1, self.fsync != SpoolFsync::Never, self.next_capacity())?;
        self.size += next.file_len;
        let old = std::mem::replace(&mut self.current, next);
        let old_number = self.current_number;
        self.current_number += 1;
        if old.acked == old.events {
            self.delete(old);
        } else {
            self.older.insert(old_number, old);
        }
        Ok(())
    }

    fn delete(&mut self, segment: Segment) {
        match std::fs::remove_file(&segment.path) {
            Ok(()) => self.size -= segment.file_len,
            // Left in place it is replayed (and deduplicated by the server) next time: nothing lost.
            Err(error) => tracing::warn!(path = %segment.path.display(), %error, "could not delete an acknowledged spool segment"),
        }
    }

    /// The current segment's file if it has unsynced writes (`SpoolFsync::Batch`): the worker
    /// fsyncs it, off the lock, before sending what was written.
    pub fn take_unsynced(&mut self) -> Option<Arc<File>> {
        std::mem::take(&mut self.dirty).then(|| self.current.file.clone())
    }

    /// Records that the server acknowledged these events (or that they were dead-lettered);
    /// deletes segments left with nothing to deliver. Returns whether space was freed.
    pub fn ack(&mut self, locations: &[Location]) -> std::io::Result<bool> {
        let mut by_segment: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for location in locations {
            by_segment.entry(location.segment).or_default().push(location.ordinal);
        }
        let mut freed = false;
        for (number, ordinals) in by_segment {
            let record = segment::ack_record(&ordinals);
            let segment = if number == self.current_number { Some(&mut self.current) } else { self.older.get_mut(&number) };
            let Some(segment) = segment else { continue };
            // Acks are not fsynced: a lost ack only means a resend the server deduplicates.
            self.size += segment.write_record(&record)?;
            segment.acked += ordinals.len() as u32;
            if number != self.current_number && segment.acked >= segment.events {
                if let Some(done) = self.older.remove(&number) {
                    self.delete(done);
                    freed = true;
                }
            } else if number == self.current_number && self.current.acked >= self.current.events && self.current.size >= self.segment_limit
            {
                // A full, fully delivered current segment: start the next one to free it.
                self.rotate()?;
                freed = true;
            }
        }
        Ok(freed)
    }

    /// Fsyncs what was written (acks included); deletes the current segment if it has nothing
    /// left to deliver. The lock is released when the spool is dropped.
    pub fn close(mut self) -> std::io::Result<()> {
        for segment in self.older.values() {
            segment.file.sync_all()?;
        }
        if self.current.acked >= self.current.events {
            std::fs::remove_file(&self.current.path)?;
            self.size -= self.current.file_len;
        } else {
            self.size -= self.current.seal();
            self.current.file.sync_all()?;
        }
        Ok(())
    }
}
