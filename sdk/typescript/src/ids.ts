import { randomFillSync } from "node:crypto";
import { v7 } from "uuid";

// uuid's v7() draws 16 random bytes from the OS per call (~4 µs) and builds its string from 20 concatenations; log()
// budgets a few µs in all. So the random bytes come from a pool, the monotonic (msecs, seq) state, which uuid keeps
// only on that slow path, is kept here, and the string is written in one piece.
// The pool is refilled synchronously, in log(): 64 KiB (~15 µs) once every 4096 ids keeps the refill out of all but
// the slowest 0.03 % of calls. (Refilling in the background was tried: handing the job to libuv's thread pool wakes a
// thread, which on a busy machine preempts the caller right inside log() more often than the refill costs.)
const pool = Buffer.alloc(16 * 4096);
let offset = pool.length;
let lastMs = -Infinity;
let seq = 0;
const random = new Uint8Array(16);
const bytes = new Uint8Array(16);
const text = Buffer.alloc(36);
const HEX = Buffer.from("0123456789abcdef", "latin1");
/** Where each of the 16 bytes goes in "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
text[8] = text[13] = text[18] = text[23] = 0x2d; // "-"

/** A new UUIDv7, monotonic within this process. */
export function newEventId(): string {
  if (offset >= pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  for (let i = 0; i < 16; i++) random[i] = pool[offset + i];
  offset += 16;
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    seq = ((random[6] & 0x7f) << 24) | (random[7] << 16) | (random[8] << 8) | random[9];
  } else {
    seq = (seq + 1) | 0;
    if (seq === 0) lastMs++;
  }
  v7({ random, msecs: lastMs, seq }, bytes, 0);
  for (let i = 0; i < 16; i++) {
    text[AT[i]] = HEX[bytes[i] >> 4];
    text[AT[i] + 1] = HEX[bytes[i] & 15];
  }
  return text.toString("latin1", 0, 36);
}
