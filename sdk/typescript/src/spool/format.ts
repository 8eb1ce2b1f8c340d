// The byte format of sdk/SPOOL.md: segments of `u32le length | u32le crc32(payload) | payload` records after a
// 16-byte magic; payload[0] is the kind (0x01 event + AuditEvent protobuf, 0x02 ack + u32le count + u32le ordinals).
import { crc32 } from "node:zlib";

export const MAGIC = Buffer.from("AUDITUM-SPOOL-1\n", "latin1");
export const KIND_EVENT = 0x01;
export const KIND_ACK = 0x02;
export const HEADER_BYTES = 8;
/** A record longer than this cannot be one we wrote (events are ≤ 64 KiB; acks of a 16 MiB segment are smaller). */
const MAX_PAYLOAD = 64 * 1024 * 1024;

export function segmentName(n: number): string {
  return `segment-${String(n).padStart(20, "0")}.spool`;
}

export function parseSegmentName(name: string): number | undefined {
  const m = /^segment-(\d{20})\.spool$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The CRC-32 of the kind byte alone: an event record's CRC continues from it over the event bytes. */
const CRC_KIND_EVENT = crc32(Buffer.of(KIND_EVENT));

/** Frames an event record (header + kind byte + event bytes) into `out`, for a single write(); returns its length. */
export function writeEventRecord(out: Buffer, event: Uint8Array): number {
  out.writeUInt32LE(1 + event.length, 0);
  out.writeUInt32LE(crc32(event, CRC_KIND_EVENT), 4);
  out[HEADER_BYTES] = KIND_EVENT;
  out.set(event, HEADER_BYTES + 1);
  return HEADER_BYTES + 1 + event.length;
}

export function ackRecord(ordinals: readonly number[]): Buffer {
  const rec = Buffer.allocUnsafe(HEADER_BYTES + 1 + 4 + 4 * ordinals.length);
  rec[HEADER_BYTES] = KIND_ACK;
  rec.writeUInt32LE(ordinals.length, HEADER_BYTES + 1);
  for (let i = 0; i < ordinals.length; i++) rec.writeUInt32LE(ordinals[i], HEADER_BYTES + 5 + 4 * i);
  return seal(rec);
}

function seal(rec: Buffer): Buffer {
  const payload = rec.subarray(HEADER_BYTES);
  rec.writeUInt32LE(payload.length, 0);
  rec.writeUInt32LE(crc32(payload), 4);
  return rec;
}

export interface ParsedEvent {
  ordinal: number;
  bytes: Uint8Array;
  /** File offset of the event bytes (after the record header and the kind byte). */
  offset: number;
}

export interface ParsedSegment {
  events: ParsedEvent[];
  acked: Set<number>;
  /** Bytes of valid records (incl. magic): where a torn tail is truncated, or where damage starts. */
  validEnd: number;
  /**
   * Set when the file is bad before validEnd's successor: "torn" (truncate) or "damaged" (keep aside).
   * "free" is only zeros after the records: a preallocated segment's free space (truncate, no report).
   */
  problem?: { kind: "torn" | "damaged" | "free"; detail: string };
}

/** Parses a whole segment file's bytes. Never throws on bad content: it says what it found. */
export function parseSegment(buf: Buffer): ParsedSegment {
  const out: ParsedSegment = { events: [], acked: new Set(), validEnd: 0 };
  // Trailing zeros aside, a prefix of the magic: a crash right after a preallocating client (Rust,
  // Python) created the segment, its length on disk but not its magic. Nothing in it.
  let written = buf.length;
  while (written > 0 && buf[written - 1] === 0) written--;
  if (written < buf.length && written <= MAGIC.length && MAGIC.subarray(0, written).equals(buf.subarray(0, written))) {
    out.problem = { kind: "free", detail: "zeros after an incomplete magic" };
    return out;
  }
  if (buf.length < MAGIC.length) {
    // A crash between creating the file and writing the magic: nothing in it can be an event.
    if (MAGIC.subarray(0, buf.length).equals(buf)) out.problem = { kind: "torn", detail: "incomplete magic" };
    else out.problem = { kind: "damaged", detail: "bad magic" };
    return out;
  }
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    out.problem = { kind: "damaged", detail: "bad magic" };
    return out;
  }
  let pos = MAGIC.length;
  out.validEnd = pos;
  let ordinal = 0;
  while (pos < buf.length) {
    const bad = checkRecord(buf, pos);
    // Checked first: searching megabytes of zeros byte by byte for a valid record is slow.
    if (bad && pos >= written) {
      out.problem = { kind: "free", detail: `zeros from byte ${pos}` };
      return out;
    }
    if (bad) {
      // A bad record with a valid one somewhere after it is damage; otherwise it is the torn end of a write.
      const kind = validRecordAfter(buf, pos + 1) ? "damaged" : "torn";
      out.problem = { kind, detail: `${bad} at byte ${pos}` };
      return out;
    }
    const len = buf.readUInt32LE(pos);
    const payload = buf.subarray(pos + HEADER_BYTES, pos + HEADER_BYTES + len);
    if (payload[0] === KIND_EVENT) {
      out.events.push({ ordinal: ordinal++, bytes: payload.subarray(1), offset: pos + HEADER_BYTES + 1 });
    } else {
      const count = payload.readUInt32LE(1);
      for (let i = 0; i < count; i++) out.acked.add(payload.readUInt32LE(5 + 4 * i));
    }
    pos += HEADER_BYTES + len;
    out.validEnd = pos;
  }
  return out;
}

/** Why the record at pos is not valid, or undefined when it is. */
function checkRecord(buf: Buffer, pos: number): string | undefined {
  if (pos + HEADER_BYTES > buf.length) return "record header runs past the end of the file";
  const len = buf.readUInt32LE(pos);
  if (pos + HEADER_BYTES + len > buf.length) return `record of ${len} bytes runs past the end of the file`;
  if (len === 0 || len > MAX_PAYLOAD) return `record length ${len} is impossible`;
  const payload = buf.subarray(pos + HEADER_BYTES, pos + HEADER_BYTES + len);
  if (crc32(payload) !== buf.readUInt32LE(pos + 4)) return "CRC mismatch";
  const kind = payload[0];
  if (kind === KIND_EVENT) return undefined;
  if (kind === KIND_ACK && len >= 5 && len === 5 + 4 * payload.readUInt32LE(1)) return undefined;
  return `unknown record kind ${kind}`;
}

/** Whether any valid record starts at or after `from` (a scan that resynchronizes past damage). */
function validRecordAfter(buf: Buffer, from: number): boolean {
  for (let p = from; p + HEADER_BYTES < buf.length; p++) {
    const len = buf.readUInt32LE(p);
    if (len === 0 || p + HEADER_BYTES + len > buf.length) continue;
    const kind = buf[p + HEADER_BYTES];
    if (kind !== KIND_EVENT && kind !== KIND_ACK) continue;
    if (checkRecord(buf, p) === undefined) return true;
  }
  return false;
}
