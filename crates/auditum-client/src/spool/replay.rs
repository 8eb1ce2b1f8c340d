//! Opening a spool (sdk/SPOOL.md, "Opening a spool"): every segment is read; events without an ack
//! are handed back to be resent, a torn tail is truncated, a damaged segment is kept aside in
//! `damaged/` after its readable events were re-spooled.

use super::segment::{self, MAGIC};
use super::{Location, Segment, Spool, SpoolError, SpoolLock};
use crate::options::SpoolFsync;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An event found in the spool without an acknowledgement: to be resent with its id.
#[derive(Debug)]
pub struct Replayed {
    pub event: Vec<u8>,
    pub location: Location,
}

/// What opening found.
#[derive(Debug, Default)]
pub struct Opened {
    /// Unacknowledged events, in order (segment number, then ordinal).
    pub replayed: Vec<Replayed>,
    /// Segments moved to `damaged/`: where to, and what was wrong.
    pub damaged: Vec<(PathBuf, String)>,
    /// Segments whose torn tail was cut: the file and the offset.
    pub truncated: Vec<(PathBuf, u64)>,
}

const MAX_SEGMENT_BYTES: u64 = 16 << 20;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if let Some(number) = entry.file_name().to_str().and_then(segment::parse_segment_name) {
            found.push((number, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Moves a damaged segment into `damaged/` (never over an earlier one of the same name).
fn keep_aside(dir: &Path, path: &Path) -> Result<PathBuf, SpoolError> {
    let damaged = dir.join("damaged");
    std::fs::create_dir_all(&damaged).map_err(io(&damaged))?;
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("segment");
    let mut target = damaged.join(name);
    let mut suffix = 1;
    while target.exists() {
        target = damaged.join(format!("{name}.{suffix}"));
        suffix += 1;
    }
    std::fs::rename(path, &target).map_err(io(path))?;
    std::fs::File::open(dir).and_then(|dir| dir.sync_all()).map_err(io(dir))?;
    Ok(target)
}

pub fn open(dir: &Path, fsync: SpoolFsync, max_bytes: u64) -> Result<(Spool, Opened), SpoolError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock = SpoolLock::acquire(dir)?;
    let dir = lock.dir().to_path_buf();
    let mut opened = Opened::default();
    let mut older = BTreeMap::new();
    let mut size = 0;
    let mut highest = 0;
    let mut respool = Vec::new();
    let mut damaged = Vec::new();
    for (number, path) in segments(&dir)? {
        highest = highest.max(number);
        let data = std::fs::read(&path).map_err(io(&path))?;
        // Without its trailing zeros: a crash right after a segment was preallocated can leave its
        // length on disk but not its magic (SPOOL.md).
        let written = segment::without_zero_tail(&data);
        if written <= MAGIC.len() && MAGIC.starts_with(&data[..written]) {
            // A crash while the segment was being created: nothing in it.
            std::fs::remove_file(&path).map_err(io(&path))?;
            continue;
        }
        if !data.starts_with(MAGIC) {
            damaged.push((path, "does not start with the spool magic".to_string()));
            continue;
        }
        let scan = segment::scan(&data);
        if !scan.damage.is_empty() {
            let detail = format!("invalid records at offsets {:?} of {} bytes", scan.damage, data.len());
            respool.extend(scan.unacked().into_iter().map(|(_, event)| event));
            damaged.push((path, detail));
            continue;
        }
        let mut length = data.len() as u64;
        if let Some(torn_at) = scan.torn_at {
            let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
            file.set_len(torn_at as u64).and_then(|()| file.sync_all()).map_err(io(&path))?;
            // Zeros are the free space of a preallocated segment (a client stopped without
            // closing): nothing was torn.
            if !scan.zero_tail {
                tracing::info!(path = %path.display(), offset = torn_at, "truncated a torn spool tail");
                opened.truncated.push((path.clone(), torn_at as u64));
            }
            length = torn_at as u64;
        }
        let events = scan.events.len() as u32;
        let unacked = scan.unacked();
        if unacked.is_empty() {
            std::fs::remove_file(&path).map_err(io(&path))?;
            continue;
        }
        // Not O_APPEND: records go at `size` with pwrite, which O_APPEND would ignore.
        let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
        let acked = events - unacked.len() as u32;
        older.insert(number, Segment { path, file: Arc::new(file), size: length, file_len: length, events, acked, mapped: None });
        size += length;
        opened
            .replayed
            .extend(unacked.into_iter().map(|(ordinal, event)| Replayed { event, location: Location { segment: number, ordinal } }));
    }
    // Never append to an old segment: a new one, numbered after the highest.
    let segment_limit = MAX_SEGMENT_BYTES.min((max_bytes / 4).max(4096));
    let current = Segment::create(&dir, highest + 1, fsync != SpoolFsync::Never, super::capacity(segment_limit, max_bytes, size))
        .map_err(io(&dir))?;
    size += current.file_len;
    let mut spool = Spool {
        dir: dir.clone(),
        fsync,
        max_bytes,
        segment_limit,
        current_number: highest + 1,
        current,
        older,
        size,
        dirty: false,
        record: Vec::new(),
        _lock: lock,
    };
    // The readable events of damaged segments are safe in a new segment before the old one moves.
    for event in respool {
        let location = spool.append(&event).map_err(io(&dir))?;
        opened.replayed.push(Replayed { event, location });
    }
    spool.current.file.sync_data().map_err(io(&dir))?;
    spool.dirty = false;
    for (path, detail) in damaged {
        let target = keep_aside(&dir, &path)?;
        opened.damaged.push((target, detail));
    }
    Ok((spool, opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_segment(dir: &Path, number: u64, events: &[&[u8]], acks: &[u32]) -> PathBuf {
        let mut data = MAGIC.to_vec();
        for event in events {
            segment::event_record(event, &mut data);
        }
        if !acks.is_empty() {
            data.extend(segment::ack_record(acks));
        }
        let path = dir.join(segment::segment_name(number));
        std::fs::write(&path, data).unwrap();
        path
    }

    fn events(opened: &Opened) -> Vec<&[u8]> {
        opened.replayed.iter().map(|replayed| replayed.event.as_slice()).collect()
    }

    #[test]
    fn unacked_events_come_back_in_order_and_delivered_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 1, &[b"a", b"b"], &[0, 1]);
        write_segment(dir.path(), 2, &[b"c", b"d", b"e"], &[1]);
        write_segment(dir.path(), 3, &[b"f"], &[]);
        let (mut spool, opened) = Spool::open(dir.path(), SpoolFsync::Batch, 1 << 30).unwrap();
        assert_eq!(events(&opened), [&b"c"[..], b"e", b"f"]);
        assert!(!dir.path().join(segment::segment_name(1)).exists());
        assert!(dir.path().join(segment::segment_name(4)).exists(), "a new current segment");
        let locations: Vec<Location> = opened.replayed.iter().map(|replayed| replayed.location).collect();
        spool.ack(&locations).unwrap();
        assert!(!dir.path().join(segment::segment_name(2)).exists() && !dir.path().join(segment::segment_name(3)).exists());
        spool.close().unwrap();
        let (_spool, opened) = Spool::open(dir.path(), SpoolFsync::Batch, 1 << 30).unwrap();
        assert!(opened.replayed.is_empty());
    }

    #[test]
    fn the_current_segment_is_preallocated_and_a_spool_left_unclosed_replays_whole_without_a_tear() {
        let dir = tempfile::tempdir().unwrap();
        // 64 KiB: segments of 16 KiB; records of 1,009 bytes, so the 17th of a segment crosses
        // the preallocated end and is written with pwrite.
        let (mut spool, _) = Spool::open(dir.path(), SpoolFsync::Batch, 64 << 10).unwrap();
        let logged: Vec<Vec<u8>> = (0..40u8).map(|index| vec![index; 1000]).collect();
        let locations: Vec<Location> = logged.iter().map(|event| spool.append(event).unwrap()).collect();
        assert_eq!(locations.iter().map(|location| location.segment).collect::<std::collections::BTreeSet<_>>().len(), 3);
        spool.ack(&locations[..5]).unwrap();
        let length = |number: u64| std::fs::metadata(dir.path().join(segment::segment_name(number))).unwrap().len();
        let (current, older) = (spool.current_number, spool.older.keys().copied().collect::<Vec<_>>());
        assert_eq!(older, [1, 2]);
        for number in older {
            // Cut to its records when it stopped being current (acks appended after them).
            assert_eq!(length(number), spool.older[&number].size);
        }
        if cfg!(target_os = "linux") {
            assert!(spool.current.mapped.is_some());
            assert_eq!(length(current), 16 << 10, "preallocated");
        }
        // The size spool_max_bytes bounds is the files' (the preallocated zeros count).
        assert_eq!(spool.size(), [1, 2, current].map(length).iter().sum::<u64>());
        assert!(spool.size() <= 64 << 10);
        // Left without close(), as by a kill -9: the zeros after the records are not a tear.
        drop(spool);
        let (spool, opened) = Spool::open(dir.path(), SpoolFsync::Batch, 64 << 10).unwrap();
        assert_eq!(events(&opened), logged[5..].iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(opened.truncated.is_empty() && opened.damaged.is_empty(), "{opened:?}");
        assert_eq!(length(current), spool.older[&current].size, "the free space was cut");
    }

    #[test]
    fn a_spool_fills_to_its_bound_including_the_smallest_one() {
        for max_bytes in [4096, 4100, 64 << 10] {
            let dir = tempfile::tempdir().unwrap();
            let (mut spool, _) = Spool::open(dir.path(), SpoolFsync::Batch, max_bytes).unwrap();
            let event = [7u8; 91]; // records of 100 bytes
            let mut accepted = 0;
            while spool.has_room(event.len()) {
                spool.append(&event).unwrap();
                accepted += 1;
            }
            let files: u64 = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|entry| entry.ok().filter(|entry| entry.path().extension().is_some_and(|ext| ext == "spool")))
                .map(|entry| entry.metadata().unwrap().len())
                .sum();
            assert_eq!(spool.size(), files, "{max_bytes}");
            assert!(files <= max_bytes, "{max_bytes}: {files} bytes on disk");
            // Full means full: less than a record and a next magic is left, preallocated or not.
            assert!(max_bytes - files < 100 + 16 + 100, "{max_bytes}: {accepted} events, {files} bytes");
            assert!(spool.current.file_len - spool.current.size < 100, "{max_bytes}: unused preallocation");
            // The counter says what is spooled, not what is preallocated.
            assert_eq!(spool.data_size(), spool.older.values().map(|segment| segment.size).sum::<u64>() + spool.current.size);
        }
    }

    #[test]
    fn zeros_where_a_magic_should_be_are_a_segment_created_just_before_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(segment::segment_name(1)), vec![0; 1 << 20]).unwrap();
        let mut magic_then_zeros = MAGIC[..9].to_vec();
        magic_then_zeros.resize(4096, 0);
        std::fs::write(dir.path().join(segment::segment_name(2)), magic_then_zeros).unwrap();
        let (_spool, opened) = Spool::open(dir.path(), SpoolFsync::Batch, 1 << 30).unwrap();
        assert!(opened.replayed.is_empty() && opened.damaged.is_empty() && opened.truncated.is_empty(), "{opened:?}");
        assert!(!dir.path().join(segment::segment_name(1)).exists() && !dir.path().join(segment::segment_name(2)).exists());
        assert!(!dir.path().join("damaged").exists());
    }

    #[test]
    fn a_torn_tail_is_cut_and_a_damaged_segment_kept_aside_with_its_events_respooled() {
        let dir = tempfile::tempdir().unwrap();
        let torn = write_segment(dir.path(), 1, &[b"one", b"two"], &[]);
        let length = std::fs::metadata(&torn).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&torn).unwrap().set_len(length - 2).unwrap();
        let damaged = write_segment(dir.path(), 2, &[b"three", b"four", b"five"], &[]);
        let mut bytes = std::fs::read(&damaged).unwrap();
        bytes[MAGIC.len() + 14 + 9] ^= 0xff;
        std::fs::write(&damaged, bytes).unwrap();
        let (_spool, opened) = Spool::open(dir.path(), SpoolFsync::Batch, 1 << 30).unwrap();
        assert_eq!(events(&opened), [&b"one"[..], b"three", b"five"]);
        assert_eq!(opened.truncated, vec![(torn.canonicalize().unwrap(), (MAGIC.len() + 12) as u64)]);
        assert_eq!(std::fs::metadata(&torn).unwrap().len(), (MAGIC.len() + 12) as u64);
        assert_eq!(opened.damaged.len(), 1);
        assert!(opened.damaged[0].0.ends_with("damaged/segment-00000000000000000002.spool") && opened.damaged[0].0.exists());
        assert!(!damaged.exists());
    }
}
