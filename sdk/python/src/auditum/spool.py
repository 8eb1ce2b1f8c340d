"""Where events wait until the server acknowledges them: segment files in spool_dir, or memory.

Thread-safety: every method except read_run(), frames() and sync() must be called with `lock` held;
those do I/O on events already taken (their segments cannot be deleted before those events are acked).
"""

from __future__ import annotations

import logging
import mmap
import os
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from . import spool_format as fmt
from .errors import AuditError, SpoolDamageError
from .lock import SpoolLock
from .transport import request_frame, request_header

log = logging.getLogger("auditum")
SEGMENT_BYTES = 16 * 1024 * 1024
# The current segment is preallocated and mapped (SPOOL.md, "Preallocated segments"): log() copies
# its record into the mapping instead of calling os.write, which releases the GIL, and a delivery
# thread then holds it while log() waits to get it back. Pages are prefaulted this far ahead.
PREFAULT_AHEAD = 64 * 1024
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux 5.14; the constant is Python 3.13's


class Run(NamedTuple):
    """Consecutive event ordinals [start, end) of one segment: the unit the worker sends and acks."""

    segment: "Segment"
    start: int
    end: int


class Segment:
    __slots__ = ("number", "path", "fd", "size", "offsets", "lengths", "acked", "n_acked", "low",
                 "first_serial", "sent_upto", "synced", "dir_synced", "payloads", "frames", "frames_from",
                 "map", "prefaulted", "file_len")

    def __init__(self, number: int, path: str | None, fd: int | None, size: int, first_serial: int) -> None:
        self.number, self.path, self.fd, self.size = number, path, fd, size
        # The file's length, what spool_max_bytes bounds: longer than `size` while the current
        # segment is preallocated (zeros after the records, which go at `size`).
        self.file_len = size
        self.map: mmap.mmap | None = None
        self.prefaulted = 0
        self.offsets = array("Q")    # record offset of each event ordinal (file segments)
        self.lengths = array("I")    # record payload length (kind byte + event) of each ordinal
        self.acked = bytearray()
        self.n_acked = 0
        self.low = 0                 # every ordinal below is acked
        self.first_serial = first_serial
        self.sent_upto = 0           # ordinals below were taken for sending
        self.synced = size
        self.dir_synced = True
        self.payloads: list[bytes | None] | None = None if path else []
        # Request frames (see Store.take) of the unsent ordinals frames_from, frames_from + 1, ...
        self.frames: list[bytes] = []
        self.frames_from = 0

    @property
    def count(self) -> int:
        return len(self.lengths)

    def advance(self, written: int) -> int:
        """Counts `written` bytes of records at `size`; returns how much longer the file got."""
        self.size += written
        grown = max(0, self.size - self.file_len)
        self.file_len += grown
        return grown

    def write_record(self, record: bytes) -> None:
        """Writes a whole record at `size` (the caller then advances): a copy into the mapping, or
        one pwrite."""
        start, end = self.size, self.size + len(record)
        mapped = self.map
        if mapped is not None and end <= len(mapped):
            if end > self.prefaulted:
                ahead = min(len(mapped), -(-(end + PREFAULT_AHEAD) // mmap.PAGESIZE) * mmap.PAGESIZE)
                try:
                    mapped.madvise(MADV_POPULATE_WRITE, self.prefaulted, ahead - self.prefaulted)
                except OSError:
                    pass  # an older kernel: the copy takes the page faults instead
                self.prefaulted = ahead
            mapped[start:end] = record
            return
        assert self.fd is not None
        written = 0
        try:
            written = os.pwrite(self.fd, record, start)
            if written != len(record):
                raise OSError(f"short write to {self.path} ({written} of {len(record)} bytes)")
        except OSError:
            if written:
                # Never leave the file longer than counted (nor cut it under its mapping, or below
                # what is counted): what was written lies after the records, where the next goes.
                os.ftruncate(self.fd, max(start, self.file_len))
            raise

    def unmap(self) -> int:
        """Closes the mapping and cuts the preallocated zeros after the records, as the segment stops
        being current; returns the bytes freed."""
        if self.map is not None:
            self.map.close()
            self.map = None
        if self.fd is None or self.file_len == self.size:
            return 0
        try:
            os.ftruncate(self.fd, self.size)
        except OSError as error:  # left in place, the zeros are free space to the next open
            log.warning("auditum spool: could not cut the preallocated tail of %s: %s", self.path, error)
            return 0
        freed, self.file_len = self.file_len - self.size, self.size
        return freed


# File systems whose preallocated blocks later writes overwrite in place (ext4, XFS, tmpfs). On
# copy-on-write ones (btrfs, ZFS) a write may need a new block, and a store to a mapped page the
# file system cannot back kills the process with SIGBUS, which an SDK must never do to its host.
_IN_PLACE_FILE_SYSTEMS = {0xEF53, 0x58465342, 0x01021994}


def _overwrites_in_place(fd: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        stats = ctypes.create_string_buffer(512)  # struct statfs; f_type (a C long) comes first
        if libc.fstatfs(fd, stats) != 0:
            return False
        return ctypes.c_long.from_buffer(stats).value in _IN_PLACE_FILE_SYSTEMS
    except (OSError, AttributeError, ImportError):
        return False


def _preallocate(segment: Segment, capacity: int) -> None:
    """Preallocates the new segment to `capacity` bytes of zeros and maps it, where that is safe:
    writing a mapped page then never needs a new disk block (a full disk makes the preallocation
    fail, and records go with pwrite)."""
    if not sys.platform.startswith("linux") or capacity <= segment.size or segment.fd is None:
        return
    if not _overwrites_in_place(segment.fd):
        return
    try:
        os.posix_fallocate(segment.fd, 0, capacity)
    except OSError as error:
        log.debug("auditum spool: segment not preallocated (%s); writing with pwrite", error)
        os.ftruncate(segment.fd, segment.size)  # a failed fallocate may leave it longer
        return
    segment.file_len = capacity
    try:
        segment.map = mmap.mmap(segment.fd, capacity, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError) as error:
        log.debug("auditum spool: segment not mapped (%s); writing with pwrite", error)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    def __init__(self, directory: str | None, max_bytes: int, fsync: str, report: Callable[[Exception], None],
                 frame_cache_bytes: int = 0) -> None:
        self.directory = os.path.abspath(directory) if directory else None
        self.lock = threading.Lock()
        self.max_bytes = max_bytes
        self.fsync = fsync
        # Segments rotate at 16 MiB, or sooner for a small spool so acked space comes back in pieces.
        self.segment_limit = max(4096, min(SEGMENT_BYTES, max_bytes // 4))
        self.segments: list[Segment] = []
        self.unsent: deque[Segment] = deque()
        self.unsent_count = 0
        self.first_unsent_at: float | None = None
        self.total_bytes = 0
        self.bytes_written = 0  # event and ack records, for the benchmark's bytes per event
        # New events are also kept as request frames, up to this many bytes, until they are taken for
        # sending: a sender then joins them instead of reading and re-framing every event (a long
        # stretch of Python holding the GIL, which log() callers wait for). Beyond it, and for retries
        # and replays, the frames are built from the file (or the payloads).
        self.frame_cache_bytes = frame_cache_bytes
        self.cached_bytes = 0
        self.next_serial = 0
        self.next_number = 1
        self.current: Segment
        self._spool_lock: SpoolLock | None = None
        if self.directory:
            os.makedirs(self.directory, exist_ok=True)
            self._spool_lock = SpoolLock(self.directory)
            try:
                self._replay(report)
            except BaseException:
                self._spool_lock.release()
                raise
        else:
            self._new_segment()

    # -- writing -------------------------------------------------------------------------------
    def _new_segment(self) -> Segment:
        number = self.next_number
        self.next_number += 1
        if self.directory:
            path = os.path.join(self.directory, fmt.segment_name(number))
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, fmt.MAGIC)
            segment = Segment(number, path, fd, len(fmt.MAGIC), self.next_serial)
            # A whole segment, or what is left of spool_max_bytes less a next segment's magic
            # (which room_for keeps free).
            _preallocate(segment, min(self.segment_limit, self.max_bytes - self.total_bytes - len(fmt.MAGIC)))
            segment.synced, segment.dir_synced = 0, False
        else:
            segment = Segment(number, None, None, 0, self.next_serial)
        self.total_bytes += segment.file_len
        self.segments.append(segment)
        self.unsent.append(segment)
        self.current = segment
        return segment

    @property
    def data_bytes(self) -> int:
        """The bytes of the spooled records (the counters' spool_bytes): total_bytes less the current
        segment's unused preallocation, the only one (others are cut when they stop being current)."""
        return self.total_bytes - max(0, self.current.file_len - self.current.size)

    def room_for(self, record_size: int) -> bool:
        current = self.current  # a record inside its preallocated zeros makes no file longer
        growth = max(0, current.size + record_size - current.file_len)
        return self.total_bytes + growth + len(fmt.MAGIC) <= self.max_bytes

    def append(self, event_bytes: bytes) -> Segment:
        """Writes one event record to the current segment; the caller checked room_for()."""
        current = self.current
        if current.size >= self.segment_limit and current.count:
            previous = current
            self.total_bytes -= previous.unmap()
            current = self._new_segment()
            self._delete_if_done(previous)
        record = fmt.event_record(event_bytes)
        size = len(record)
        ordinal = len(current.lengths)
        if current.fd is not None:
            try:
                current.write_record(record)
            except OSError as error:
                raise AuditError(f"could not write the event to the spool: {error}") from error
            current.offsets.append(current.size)
        else:
            assert current.payloads is not None
            current.payloads.append(event_bytes)
        self.total_bytes += current.advance(size)
        self.bytes_written += size
        current.lengths.append(size - 8)
        current.acked.append(0)
        self.next_serial += 1
        frames = current.frames
        if not frames:
            current.frames_from = ordinal
        if self.cached_bytes < self.frame_cache_bytes and current.frames_from + len(frames) == ordinal:
            frame = request_frame(event_bytes)
            frames.append(frame)
            self.cached_bytes += len(frame)
        if self.unsent_count == 0:
            self.first_unsent_at = time.monotonic()
        self.unsent_count += 1
        return current

    def sync_now(self, segment: Segment) -> None:
        """fsync for spool_fsync='always' (called by log() without the lock)."""
        if segment.fd is not None:
            os.fsync(segment.fd)
            if not segment.dir_synced and self.directory:
                _fsync_dir(self.directory)
                segment.dir_synced = True

    # -- sending -------------------------------------------------------------------------------
    def take(self, max_events: int, max_bytes: int) -> tuple[list[Run], list[list[bytes] | None]]:
        """The next unsent events, oldest first, within the batch limits, as runs of ordinals, and each
        run's request frames when they are all cached (else None: frames() reads them)."""
        runs: list[Run] = []
        cached: list[list[bytes] | None] = []
        taken = size = 0
        while self.unsent and taken < max_events:
            segment = self.unsent[0]
            count, acked = segment.count, segment.acked
            start = segment.sent_upto
            while start < count and acked[start]:  # acknowledged before a restart
                start += 1
            segment.sent_upto = start
            if start >= count:
                if segment is self.current:
                    break
                self.unsent.popleft()
                continue
            end = min(count, start + max_events - taken)
            gap = acked.find(1, start, end)
            if gap != -1:
                end = gap
            lengths = segment.lengths
            cost = sum(lengths[start:end]) + 3 * (end - start)  # + tag and length varint in the request
            full = size + cost > max_bytes
            if full:
                limit, end, cost = end, start, 0
                while end < limit and size + cost + lengths[end] + 3 <= max_bytes:
                    cost += lengths[end] + 3
                    end += 1
                if end == start and not runs:  # one event always fits a call (it is at most 64 KiB)
                    cost, end = lengths[start] + 3, start + 1
            if end > start:
                runs.append(Run(segment, start, end))
                cached.append(self._take_frames(segment, start, end))
                taken += end - start
                size += cost
            segment.sent_upto = end
            if full:
                break
        self.unsent_count -= taken
        if self.unsent_count == 0:
            self.first_unsent_at = None
        return runs, cached

    def _take_frames(self, segment: Segment, start: int, end: int) -> list[bytes] | None:
        """Removes the cached frames below `end`; returns those of [start, end) if all are cached."""
        frames, first = segment.frames, segment.frames_from
        count = min(end, first + len(frames)) - first
        if count <= 0:
            return None
        taken = frames[:count]
        del frames[:count]
        segment.frames_from = first + count
        self.cached_bytes -= sum(map(len, taken))
        if first == start and count == end - start:
            return taken
        if first < start and first + count == end:
            return taken[start - first:]
        return None

    def frames(self, run: Run) -> list[bytes | memoryview]:
        """The request frames of a run whose frames are not cached, from the file or the payloads."""
        frames: list[bytes | memoryview] = []
        for event in self.read_run(run):
            frames.append(request_header(len(event)))
            frames.append(event)
        return frames

    def sync(self, targets: dict[Segment, int]) -> None:
        """fsync these segments up to these sizes, unless already done (spool_fsync='batch').

        Without the lock: the sizes were read with it, when the events were taken."""
        for segment, target in targets.items():
            if segment.fd is None:
                continue
            if segment.synced < target:
                os.fsync(segment.fd)
                segment.synced = max(segment.synced, target)
            if not segment.dir_synced and self.directory:
                _fsync_dir(self.directory)
                segment.dir_synced = True

    @staticmethod
    def read_run(run: Run) -> list[bytes | memoryview]:
        """The encoded events of a run: one pread for a file segment."""
        segment, start, end = run
        if segment.payloads is not None:
            return segment.payloads[start:end]  # type: ignore[return-value]
        offsets, lengths = segment.offsets, segment.lengths
        base = offsets[start]
        assert segment.fd is not None  # unacknowledged events keep their segment open
        view = memoryview(os.pread(segment.fd, offsets[end - 1] + 8 + lengths[end - 1] - base, base))
        out: list[bytes | memoryview] = []
        for ordinal in range(start, end):
            begin = offsets[ordinal] - base + 9  # past the header and the kind byte
            out.append(view[begin:begin + lengths[ordinal] - 1])
        return out

    # -- acknowledging -------------------------------------------------------------------------
    def ack(self, runs: list[Run]) -> None:
        for segment, start, end in runs:
            acked = segment.acked
            already = acked.count(1, start, end)
            if already == end - start:
                continue
            if segment.fd is not None:
                record = fmt.ack_record(range(start, end))
                segment.write_record(record)  # fsynced lazily: a lost ack only means a resend
                self.total_bytes += segment.advance(len(record))
                self.bytes_written += len(record)
            else:
                assert segment.payloads is not None
                for ordinal in range(start, end):
                    if not acked[ordinal]:
                        segment.payloads[ordinal] = None
                        self.total_bytes -= segment.lengths[ordinal] + 8
            acked[start:end] = b"\x01" * (end - start)
            segment.n_acked += end - start - already
            self._delete_if_done(segment)

    def _delete_if_done(self, segment: Segment) -> None:
        if segment is self.current or segment.n_acked < segment.count or segment not in self.segments:
            return
        self.segments.remove(segment)
        if segment.fd is not None:
            os.close(segment.fd)
            os.unlink(segment.path)  # type: ignore[arg-type]
            self.total_bytes -= segment.file_len
        segment.fd = None

    def min_unresolved(self) -> int:
        """The serial of the oldest event not yet acknowledged (next_serial when there is none)."""
        for segment in self.segments:
            while segment.low < segment.count and segment.acked[segment.low]:
                segment.low += 1
            if segment.low < segment.count:
                return segment.first_serial + segment.low
        return self.next_serial

    @property
    def unresolved_count(self) -> int:
        return sum(segment.count - segment.n_acked for segment in self.segments)

    # -- opening and closing ---------------------------------------------------------------------
    def _replay(self, report: Callable[[Exception], None]) -> None:
        assert self.directory
        numbers = sorted(n for n in (fmt.parse_segment_name(name) for name in os.listdir(self.directory)) if n is not None)
        respool: list[bytes] = []
        damaged: list[tuple[str, str]] = []
        for number in numbers:
            path = os.path.join(self.directory, fmt.segment_name(number))
            with open(path, "rb") as handle:
                data = handle.read()
            parsed = fmt.parse_segment(data)
            if parsed.empty:
                os.unlink(path)
                continue
            if parsed.bad_magic:
                damaged.append((path, "it does not start with the spool magic"))
                continue
            size = len(data)
            if parsed.torn_at is not None:
                if not parsed.zero_tail:  # zeros are a preallocated segment's free space, not a tear
                    log.info("auditum spool: truncated a torn tail of %s at byte %d (%d bytes of an interrupted write)",
                             path, parsed.torn_at, size - parsed.torn_at)
                os.truncate(path, parsed.torn_at)
                size = parsed.torn_at
            if parsed.damaged_at:
                respool.extend(data[offset + 9:offset + 8 + length] for ordinal, offset, length in parsed.events
                               if ordinal not in parsed.acked)
                damaged.append((path, f"bad record(s) at byte(s) {', '.join(map(str, parsed.damaged_at))}"))
                continue
            if all(ordinal in parsed.acked for ordinal, _, _ in parsed.events):
                os.unlink(path)
                continue
            fd = os.open(path, os.O_RDWR)  # records go at `size` with pwrite
            os.fsync(fd)
            segment = Segment(number, path, fd, size, self.next_serial)
            for ordinal, offset, length in parsed.events:
                segment.offsets.append(offset)
                segment.lengths.append(length)
                done = ordinal in parsed.acked
                segment.acked.append(1 if done else 0)
                segment.n_acked += done
            self.next_serial += segment.count
            self.total_bytes += size
            self.unsent_count += segment.count - segment.n_acked
            self.segments.append(segment)
            self.unsent.append(segment)
        self.next_number = (numbers[-1] + 1) if numbers else 1
        self._new_segment()
        for event_bytes in respool:
            self.append(event_bytes)
        if respool:
            self.sync_now(self.current)
        for path, why in damaged:
            aside = os.path.join(self.directory, "damaged")
            os.makedirs(aside, exist_ok=True)
            destination = os.path.join(aside, os.path.basename(path))
            os.replace(path, destination)
            report(SpoolDamageError(
                f"spool segment {path} is damaged ({why}); moved to {destination}, "
                f"{len(respool)} readable unacknowledged event(s) re-spooled"))
        _fsync_dir(self.directory)
        if self.unsent_count:
            self.first_unsent_at = 0.0  # replayed events go out at once
            log.info("auditum spool: %d unacknowledged event(s) in %s will be resent", self.unsent_count, self.directory)

    def close(self) -> None:
        """fsyncs the acks, deletes fully acknowledged segments and releases the directory."""
        for segment in list(self.segments):
            if segment.fd is None:
                continue
            if segment.n_acked == segment.count:
                if segment.map is not None:
                    segment.map.close()
                    segment.map = None
                self.segments.remove(segment)
                os.close(segment.fd)
                os.unlink(segment.path)  # type: ignore[arg-type]
                self.total_bytes -= segment.file_len
            else:
                self.total_bytes -= segment.unmap()
                os.fsync(segment.fd)
                os.close(segment.fd)
            segment.fd = None
        if self._spool_lock is not None:
            self._spool_lock.release()
            self._spool_lock = None
