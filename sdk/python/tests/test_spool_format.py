"""The spool bytes of sdk/SPOOL.md: records, acks, torn tails and damage, without a server."""

import os
import zlib

from auditum import spool_format as fmt


def segment(*records: bytes) -> bytes:
    return fmt.MAGIC + b"".join(records)


def test_records_round_trip_with_acks():
    data = segment(fmt.event_record(b"a"), fmt.event_record(b"bb"), fmt.ack_record([1]), fmt.event_record(b"ccc"))
    parsed = fmt.parse_segment(data)
    assert [(o, l) for o, _, l in parsed.events] == [(0, 2), (1, 3), (2, 4)]
    assert parsed.acked == {1}
    assert parsed.torn_at is None and not parsed.damaged_at


def test_the_record_layout_is_len_crc_kind_payload():
    record = fmt.event_record(b"xyz")
    payload = b"\x01xyz"
    assert record == len(payload).to_bytes(4, "little") + zlib.crc32(payload).to_bytes(4, "little") + payload
    ack = fmt.ack_record([3, 7])
    assert ack[8:] == b"\x02" + (2).to_bytes(4, "little") + (3).to_bytes(4, "little") + (7).to_bytes(4, "little")
    assert fmt.segment_name(12) == "segment-00000000000000000012.spool"


def test_a_record_running_past_the_end_is_a_torn_tail():
    good = segment(fmt.event_record(b"a" * 50))
    torn = good + fmt.event_record(b"b" * 50)[:30]
    parsed = fmt.parse_segment(torn)
    assert parsed.torn_at == len(good) and len(parsed.events) == 1 and not parsed.damaged_at


def test_a_bad_crc_at_the_end_is_a_torn_tail():
    good = segment(fmt.event_record(b"a" * 50))
    last = bytearray(fmt.event_record(b"b" * 50))
    last[-1] ^= 0xFF
    parsed = fmt.parse_segment(good + bytes(last))
    assert parsed.torn_at == len(good) and not parsed.damaged_at


def test_a_bad_record_with_valid_ones_after_it_is_damage():
    first, second, third = (fmt.event_record(bytes([65 + i]) * 40) for i in range(3))
    bad = bytearray(second)
    bad[20] ^= 0xFF
    parsed = fmt.parse_segment(segment(first, bytes(bad), third))
    assert parsed.damaged_at == [len(fmt.MAGIC) + len(first)]
    assert parsed.torn_at is None
    assert len(parsed.events) == 2  # the first and the third are still readable


def test_a_crash_at_creation_leaves_an_empty_segment_and_a_foreign_file_is_damage():
    assert fmt.parse_segment(fmt.MAGIC[:5]).empty
    # Preallocated before the crash: the length reached the disk, the magic (or part of it) did not.
    assert fmt.parse_segment(bytes(1 << 20)).empty and fmt.parse_segment(fmt.MAGIC[:9] + bytes(4096)).empty
    assert fmt.parse_segment(fmt.MAGIC + bytes(4096)).empty
    assert fmt.parse_segment(b"NOT-A-SPOOL" + bytes(4096)).bad_magic
    assert fmt.parse_segment(b"NOT-A-SPOOL-FILE-AT-ALL").bad_magic


def test_zeros_after_the_records_are_free_space_and_zeros_before_a_record_are_damage():
    records = segment(fmt.event_record(b"a" * 50), fmt.ack_record([0]), fmt.event_record(b"b" * 50))
    free = fmt.parse_segment(records + bytes(4 << 20))  # a preallocated segment's unused tail
    assert (free.torn_at, free.zero_tail, free.damaged_at) == (len(records), True, [])
    assert len(free.events) == 2 and free.acked == {0}
    half = records + fmt.event_record(b"c" * 50)[:20]  # a torn record, then zeros: still a tear
    torn = fmt.parse_segment(half + bytes(100))
    assert (torn.torn_at, torn.zero_tail) == (len(records), False)
    middle = fmt.parse_segment(records + bytes(100) + fmt.event_record(b"d" * 50))
    assert (middle.damaged_at, middle.zero_tail) == ([len(records)], False)


def test_the_current_segment_is_preallocated_within_the_bound_and_cut_when_it_stops_being_current(tmp_path):
    import sys

    from auditum.spool import Store

    small = 64 * 1024  # segments of 16 KiB
    store = Store(str(tmp_path), small, "batch", report=lambda error: None)
    try:
        event = b"\x0a" + b"e" * 999
        with store.lock:
            for _ in range(40):
                assert store.room_for(len(event) + 8)
                store.append(event)
        files = {name: os.path.getsize(tmp_path / name) for name in os.listdir(tmp_path) if name.endswith(".spool")}
        assert len(files) == 3
        current = store.current
        for segment in store.segments:
            if segment is not current:
                assert files[os.path.basename(segment.path)] == segment.size, "cut to its records"
        if sys.platform.startswith("linux"):
            assert current.map is not None and files[os.path.basename(current.path)] == 16 * 1024
        # What spool_max_bytes bounds is the files' bytes, preallocated zeros included; the counter
        # (spool_bytes) says what is spooled.
        assert store.total_bytes == sum(files.values()) <= small
        assert store.data_bytes == sum(segment.size for segment in store.segments) < store.total_bytes
        with store.lock:
            while store.room_for(len(event) + 8):
                store.append(event)
        files = [os.path.getsize(tmp_path / name) for name in os.listdir(tmp_path) if name.endswith(".spool")]
        assert store.total_bytes == sum(files) <= small and sum(files) + len(event) + 8 + 16 > small
        # Full means full: the last preallocation is used up too (it kept a next magic's 16 free).
        assert store.current.file_len - store.current.size < len(event) + 8
    finally:
        store.close()
