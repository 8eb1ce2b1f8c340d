"""The bytes of a spool segment (sdk/SPOOL.md): magic, then `u32 len | u32 crc32 | payload` records."""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

MAGIC = b"AUDITUM-SPOOL-1\n"
KIND_EVENT = 1
KIND_ACK = 2
HEADER = struct.Struct("<II")
U32 = struct.Struct("<I")
MAX_RECORD = 64 * 1024 * 1024  # a plausibility bound when scanning for the next valid record


def segment_name(number: int) -> str:
    return f"segment-{number:020d}.spool"


def parse_segment_name(name: str) -> int | None:
    if name.startswith("segment-") and name.endswith(".spool") and len(name) == len("segment-.spool") + 20:
        digits = name[len("segment-"):-len(".spool")]
        if digits.isdigit():
            return int(digits)
    return None


_EVENT_HEADER = struct.Struct("<IIB")  # the record header and the kind byte of an event payload
_EVENT_KIND_CRC = zlib.crc32(bytes((KIND_EVENT,)))


def event_record(event_bytes: bytes) -> bytes:
    # The CRC of kind + event, continued from the kind's: one concatenation instead of two.
    return _EVENT_HEADER.pack(len(event_bytes) + 1, zlib.crc32(event_bytes, _EVENT_KIND_CRC), KIND_EVENT) + event_bytes


def ack_record(ordinals: Sequence[int]) -> bytes:
    values = array("I", ordinals)
    if sys.byteorder == "big":
        values.byteswap()
    payload = b"\x02" + U32.pack(len(ordinals)) + values.tobytes()
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _record_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """(payload length, next position) of a valid record at pos, else None."""
    if pos + 8 > len(data):
        return None
    length, crc = HEADER.unpack_from(data, pos)
    end = pos + 8 + length
    if length < 1 or end > len(data) or data[pos + 8] not in (KIND_EVENT, KIND_ACK):
        return None
    if data[pos + 8] == KIND_ACK and (length < 5 or length != 5 + 4 * U32.unpack_from(data, pos + 9)[0]):
        return None
    if zlib.crc32(memoryview(data)[pos + 8:end]) != crc:
        return None
    return length, end


def _next_valid(data: bytes, start: int) -> int | None:
    """The first position after start where a valid record begins (only cheap checks before the CRC)."""
    size = len(data)
    for pos in range(start, size - 8):
        if data[pos + 8] not in (KIND_EVENT, KIND_ACK):
            continue
        length = U32.unpack_from(data, pos)[0]
        if 1 <= length <= MAX_RECORD and pos + 8 + length <= size and _record_at(data, pos) is not None:
            return pos
    return None


@dataclass
class ParsedSegment:
    """What a segment file holds. `events` are (ordinal, offset, payload length) of readable events."""

    events: list[tuple[int, int, int]] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    torn_at: int | None = None          # truncate the file here
    zero_tail: bool = False             # ...and what is there is zeros: a preallocated segment's free space
    damaged_at: list[int] = field(default_factory=list)  # offsets of bad records with valid ones after
    bad_magic: bool = False
    empty: bool = False                 # only (a prefix of) the magic: a crash at creation


def parse_segment(data: bytes) -> ParsedSegment:
    result = ParsedSegment()
    # Trailing zeros aside: a crash right after a segment was preallocated can leave its length on
    # disk but not its magic.
    written = data.rstrip(b"\0")
    if len(written) <= len(MAGIC) and MAGIC.startswith(written):
        result.empty = True
        return result
    if len(data) <= len(MAGIC) or not data.startswith(MAGIC):
        result.bad_magic = True
        return result
    pos, ordinal = len(MAGIC), 0
    while pos < len(data):
        found = _record_at(data, pos)
        if found is None and pos >= len(written):
            # Checked first: searching megabytes of zeros byte by byte for a record takes seconds.
            result.torn_at, result.zero_tail = pos, True
            break
        if found is None:
            resume = _next_valid(data, pos + 1)
            if resume is None:
                result.torn_at = pos
                break
            result.damaged_at.append(pos)
            pos = resume
            continue
        length, end = found
        if data[pos + 8] == KIND_EVENT:
            result.events.append((ordinal, pos, length))
            ordinal += 1
        elif not result.damaged_at:
            # Acks after damage are ignored: a lost event record shifts the ordinals they name.
            values = array("I", data[pos + 13:end])
            if sys.byteorder == "big":
                values.byteswap()
            result.acked.update(values)
        pos = end
    return result
