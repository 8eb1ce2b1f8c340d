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


def new_id() -> str:
    """48-bit Unix ms | version 7 | 12 random bits | variant 0b10 | 62 random bits, in the 8-4-4-4-12 form."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | _bits(12) << 64 | 0x2 << 62 | _bits(62)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
