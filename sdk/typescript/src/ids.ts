import { randomFillSync } from "node:crypto";
import { v7 } from "uuid";

// uuid's v7() draws 16 random bytes from the OS per call (~4 µs); log() budgets a few µs in all, so the random
// bytes come from a pool and the monotonic (msecs, seq) state, which uuid keeps only on that slow path, is kept here.
const pool = Buffer.alloc(16 * 512);
let offset = pool.length;
let lastMs = -Infinity;
let seq = 0;

/** A new UUIDv7, monotonic within this process. */
export function newEventId(): string {
  if (offset >= pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const random = pool.subarray(offset, offset + 16);
  offset += 16;
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    seq = ((random[6] & 0x7f) << 24) | (random[7] << 16) | (random[8] << 8) | random[9];
  } else {
    seq = (seq + 1) | 0;
    if (seq === 0) lastMs++;
  }
  return v7({ random, msecs: lastMs, seq });
}
