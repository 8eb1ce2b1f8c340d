//! The spool (outbox): every event is written here before `log()` returns and stays until the
//! server acknowledged it. The bytes are sdk/SPOOL.md's, shared with the Python and TypeScript SDKs.

mod lock;
mod replay;
pub mod segment;

pub use lock::SpoolLock;
pub use replay::Replayed;

use crate::options::SpoolFsync;
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
    size: u64,
    events: u32,
    acked: u32,
}

impl Segment {
    fn create(dir: &Path, number: u64, sync: bool) -> std::io::Result<Segment> {
        let path = dir.join(segment::segment_name(number));
        let mut file = std::fs::OpenOptions::new().create_new(true).append(true).open(&path)?;
        file.write_all(segment::MAGIC)?;
        if sync {
            file.sync_data()?;
            File::open(dir)?.sync_all()?;
        }
        Ok(Segment { path, file: Arc::new(file), size: segment::MAGIC.len() as u64, events: 0, acked: 0 })
    }
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

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether a record of an event of `event_len` bytes fits (SPOOL.md: `size + record + 16`).
    pub fn has_room(&self, event_len: usize) -> bool {
        self.size + segment::event_record_len(event_len) + segment::MAGIC.len() as u64 <= self.max_bytes
    }

    /// Writes one event record with a single `write()`; fsyncs it under `SpoolFsync::Always`.
    pub fn append(&mut self, event: &[u8]) -> std::io::Result<Location> {
        if self.current.size >= self.segment_limit {
            self.rotate()?;
        }
        self.record.clear();
        segment::event_record(event, &mut self.record);
        (&*self.current.file).write_all(&self.record)?;
        self.current.size += self.record.len() as u64;
        self.size += self.record.len() as u64;
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
        let next = Segment::create(&self.dir, self.current_number + 1, self.fsync != SpoolFsync::Never)?;
        self.size += next.size;
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
            Ok(()) => self.size -= segment.size,
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
            (&*segment.file).write_all(&record)?;
            segment.size += record.len() as u64;
            self.size += record.len() as u64;
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
            self.size -= self.current.size;
        } else {
            self.current.file.sync_all()?;
        }
        Ok(())
    }
}
