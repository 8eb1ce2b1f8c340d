"""The spool bytes of sdk/SPOOL.md: records, acks, torn tails and damage, without a server."""

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
    assert fmt.parse_segment(b"NOT-A-SPOOL-FILE-AT-ALL").bad_magic
