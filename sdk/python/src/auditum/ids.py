"""UUIDv7 event ids (RFC 9562): time-ordered, so the server's idempotency index stays compact."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """48-bit Unix ms | version 7 | 12 random bits | variant 0b10 | 62 random bits, in the 8-4-4-4-12 form."""
    random = bytearray(os.urandom(10))
    random[0] = 0x70 | (random[0] & 0x0F)
    random[2] = 0x80 | (random[2] & 0x3F)
    text = ((time.time_ns() // 1_000_000).to_bytes(6, "big") + random).hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
