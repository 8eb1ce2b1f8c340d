//! The current segment's records are copied into a shared mapping of its preallocated file, so
//! `log()` makes no system call: a `write(2)` that extends a file costs ~1 µs at the median and 4–5 µs
//! at its 99th percentile here (a new page-cache page, the inode's size and time), and it was most
//! of `log()`'s 99th percentile (sdk/SPOOL.md, "Preallocated segments").
//!
//! A store into a `MAP_SHARED` mapping is in the page cache as soon as it is made, exactly like a
//! `write(2)`: it survives a `kill -9`, and the worker's `fdatasync` of the file covers it. Pages are
//! prefaulted writable a window ahead of the writer, so the copy seldom takes a page fault.
//!
//! A store to a mapped page the file system cannot back kills the process with `SIGBUS`, which
//! an SDK must never do to its host. So a segment is mapped only on file systems where
//! `posix_fallocate` reserves real blocks that later writes overwrite in place (ext4, XFS, tmpfs;
//! not copy-on-write ones such as btrfs or ZFS, which need new blocks at write time), and only
//! after the preallocation succeeded (on a full disk it fails, and records go with `pwrite`).

use std::fs::File;

/// Bytes prefaulted ahead of the last record: one `madvise` every ~300 events of ~200 bytes.
const PREFAULT_AHEAD: usize = 64 << 10;
const PAGE: usize = 4096;

/// The mapped, preallocated current segment.
#[derive(Debug)]
pub struct MappedSegment {
    map: memmap2::MmapMut,
    /// Pages below this offset were prefaulted writable.
    prefaulted_to: usize,
}

/// Extends `file` to `capacity` bytes of allocated zeros, for mapping; false where that is not
/// possible or not safe (see above; a platform other than Linux): records are then written with
/// `pwrite` at the end of the records, which is correct, only slower.
#[cfg(target_os = "linux")]
pub fn preallocate(file: &File, capacity: u64) -> bool {
    use std::os::fd::AsRawFd;
    if !overwrites_in_place(file) {
        return false;
    }
    let Ok(length) = libc::off_t::try_from(capacity) else { return false };
    // SAFETY: a plain system call on an open descriptor.
    let outcome = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, length) };
    if outcome != 0 {
        tracing::debug!(error = %std::io::Error::from_raw_os_error(outcome), "spool segment not preallocated; writing with pwrite");
        // A failed posix_fallocate may leave the file longer; the caller counts only the magic.
        if let Err(error) = file.set_len(super::segment::MAGIC.len() as u64) {
            tracing::warn!(%error, "could not cut a spool segment back after a failed preallocation");
        }
        return false;
    }
    true
}

/// Whether the file's file system is one where preallocated blocks are written in place.
#[cfg(target_os = "linux")]
fn overwrites_in_place(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: statfs is plain old data, filled by the call on an open descriptor.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stats) } != 0 {
        return false;
    }
    // f_type and the constants have integer types that differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    let in_place = [libc::EXT4_SUPER_MAGIC as i64, libc::XFS_SUPER_MAGIC as i64, libc::TMPFS_MAGIC as i64];
    #[allow(clippy::unnecessary_cast)]
    let kind = stats.f_type as i64;
    in_place.contains(&kind)
}

#[cfg(not(target_os = "linux"))]
pub fn preallocate(_file: &File, _capacity: u64) -> bool {
    false
}

impl MappedSegment {
    /// Maps the first `capacity` bytes of a file [`preallocate`]d to at least that.
    #[cfg(target_os = "linux")]
    pub fn new(file: &File, capacity: u64) -> Option<MappedSegment> {
        // SAFETY: the file is a segment of a spool this process holds the lock of (spool/lock.rs),
        // so no other client of a process on this host truncates or writes it while it is mapped
        // (SPOOL.md's lock cannot see processes of another pid namespace with the same host name);
        // this client never shortens it while mapped (`Segment::seal` drops the map first).
        let map = unsafe { memmap2::MmapOptions::new().len(usize::try_from(capacity).ok()?).map_mut(file) };
        match map {
            Ok(map) => Some(MappedSegment { map, prefaulted_to: 0 }),
            Err(error) => {
                tracing::debug!(%error, "spool segment not mapped; writing with pwrite");
                None
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new(_file: &File, _capacity: u64) -> Option<MappedSegment> {
        None
    }

    /// Copies `bytes` to `offset`; false if they do not fit in the mapping (the caller writes them
    /// with `pwrite`, which extends the file).
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> bool {
        let Ok(start) = usize::try_from(offset) else { return false };
        let end = start + bytes.len();
        if end > self.map.len() {
            return false;
        }
        if end > self.prefaulted_to {
            self.prefault(end);
        }
        self.map[start..end].copy_from_slice(bytes);
        true
    }

    fn prefault(&mut self, end: usize) {
        let from = self.prefaulted_to;
        let to = (end + PREFAULT_AHEAD).div_ceil(PAGE).saturating_mul(PAGE).min(self.map.len());
        #[cfg(target_os = "linux")]
        if let Err(error) = self.map.advise_range(memmap2::Advice::PopulateWrite, from, to - from) {
            // Before Linux 5.14: the copy takes the page faults instead.
            tracing::trace!(%error, "could not prefault spool pages");
        }
        self.prefaulted_to = to;
    }
}
