"""UUIDv7 event ids (RFC 9562): time-ordered, so the server's idempotency index stays compact."""

from __future__ import annotations

import os
import random
import time

# A private generator seeded from os.urandom: no syscall per id, and immune to the application
# calling random.seed(). Reseeded in forked children, or pre-fork workers would repeat each
# other's ids (and the server would drop the repeats as duplicates).
_generator = random.Random()
_bits = _generator.getrandbits
os.register_at_fork(after_in_child=_generator.seed)

# The hex digit of the variant (0b10) and two random bits, from any random hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
# The last millisecond and its text: ids of the same millisecond share it, and formatting is most
# of an id's cost.
_millisecond: tuple[int, str] = (-1, "")


def new_id() -> str:
    """48-bit Unix ms | version 7 | 12 random bits | variant 0b10 | 62 random bits, in the 8-4-4-4-12 form."""
    global _millisecond
    now = time.time_ns() // 1_000_000
    last, stamp = _millisecond
    if now != last:
        stamp = f"{now >> 16:08x}-{now & 0xFFFF:04x}"
        _millisecond = (now, stamp)
    rand = f"{_bits(76):019x}"  # 12 + 2 (of the 4th digit) + 12 + 48 random bits are used
    return f"{stamp}-7{rand[:3]}-{_VARIANT[rand[3]]}{rand[4:7]}-{rand[7:]}"
