// A direct protobuf encoder for auditum.v1.AuditEvent, byte for byte what protobuf-es's toBinary() writes (the tests
// compare the two on many events). log() spends most of its few microseconds encoding; protobuf-es's reflection and
// its Struct conversion allocate a dozen objects per event, this writes into one reused buffer.
import type { JsonValue } from "@bufbuild/protobuf";
import { AuditValidationError } from "./errors.js";

/**
 * The event, mostly as the caller's objects (read in place rather than copied into new ones, which was most of what
 * log() allocated). Their string fields may hold anything when local validation is skipped: text() checks each.
 */
export interface EventFields {
  id: string;
  tenantId: unknown;
  seconds: number;
  nanos: number;
  action: unknown;
  actor?: { id?: unknown; name?: unknown };
  actorType: number;
  target?: { type?: unknown; id?: unknown; name?: unknown };
  result: number;
  errorCode: unknown;
  reason: unknown;
  context?: {
    requestId?: unknown;
    correlationId?: unknown;
    sessionId?: unknown;
    sourceIp?: unknown;
    userAgent?: unknown;
    service?: unknown;
  };
  before?: Record<string, JsonValue>;
  after?: Record<string, JsonValue>;
  metadata?: Record<string, JsonValue>;
  subjectId?: unknown;
}

let buf = Buffer.allocUnsafe(64 * 1024);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + n));
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function varint(n: number): void {
  ensure(10);
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
}

/** Reserves one byte for a length prefix; end() fixes it (moving the body when the length needs more bytes). */
function begin(tag: number): number {
  ensure(2);
  buf[pos++] = tag;
  return pos++;
}

function end(lenAt: number): void {
  const len = pos - lenAt - 1;
  if (len < 0x80) {
    buf[lenAt] = len;
    return;
  }
  let extra = 0;
  for (let n = len; n > 0x7f; n = Math.floor(n / 128)) extra++;
  ensure(extra);
  buf.copyWithin(lenAt + 1 + extra, lenAt + 1, pos);
  pos += extra;
  let n = len;
  let p = lenAt;
  while (n > 0x7f) {
    buf[p++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[p] = n;
}

function str(tag: number, s: string): void {
  if (s === "") return;
  stringAlways(tag, s);
}

/**
 * A string field of the caller's: absent (undefined, null) or empty is not written, and a non-string (possible when
 * local validation is skipped) must not corrupt the encoding.
 */
function text(tag: number, v: unknown): void {
  if (v === undefined || v === null || v === "") return;
  if (typeof v !== "string") throw new AuditValidationError("event", `a string field holds a ${typeof v}`);
  stringAlways(tag, v);
}

function stringAlways(tag: number, s: string): void {
  const n = s.length;
  ensure(2 + 3 * n);
  const at = begin(tag);
  // Short ASCII strings (most fields) are copied here: cheaper than Buffer.write's checks and call into C++, which
  // were a third of the encoding time. Anything else is left to Buffer.write (from the start of the string).
  let i = 0;
  if (n <= SHORT_STRING) {
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[pos + i] = c;
    }
  }
  pos += i === n ? n : buf.write(s, pos, "utf8");
  end(at);
}

const SHORT_STRING = 64;

function enumField(tag: number, v: number): void {
  if (v === 0) return;
  ensure(1);
  buf[pos++] = tag;
  varint(v);
}

function struct(tag: number, obj: Record<string, JsonValue>): void {
  const at = begin(tag);
  structBody(obj);
  end(at);
}

function structBody(obj: Record<string, JsonValue>): void {
  for (const key in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, key)) continue;
    const entry = begin(0x0a); // Struct.fields map entry
    stringAlways(0x0a, key); // key
    const v = begin(0x12); // value: google.protobuf.Value
    value(obj[key]);
    end(v);
    end(entry);
  }
}

function value(v: JsonValue): void {
  ensure(10);
  if (v === null) {
    buf[pos++] = 0x08; // null_value = NULL_VALUE (0)
    buf[pos++] = 0;
  } else if (typeof v === "number") {
    buf[pos++] = 0x11; // number_value, fixed64
    pos = buf.writeDoubleLE(v, pos);
  } else if (typeof v === "string") {
    stringAlways(0x1a, v);
  } else if (typeof v === "boolean") {
    buf[pos++] = 0x20;
    buf[pos++] = v ? 1 : 0;
  } else if (Array.isArray(v)) {
    const at = begin(0x32); // list_value
    for (const item of v) {
      const it = begin(0x0a);
      value(item);
      end(it);
    }
    end(at);
  } else {
    const at = begin(0x2a); // struct_value
    structBody(v as Record<string, JsonValue>);
    end(at);
  }
}

/**
 * Encodes the event after `headerBytes` bytes left free at the start of the returned scratch buffer (where the spool
 * record's header goes). The buffer is reused by the next call: copy what must be kept.
 */
export function encodeEvent(e: EventFields, headerBytes: number): { scratch: Buffer; end: number } {
  pos = 0;
  ensure(headerBytes);
  pos = headerBytes;
  str(0x0a, e.id);
  text(0x12, e.tenantId);
  {
    const at = begin(0x1a); // occurred_at
    if (e.seconds !== 0) {
      buf[pos++] = 0x08;
      if (e.seconds > 0) varint(e.seconds);
      else negativeVarint(e.seconds);
    }
    if (e.nanos !== 0) {
      ensure(1);
      buf[pos++] = 0x10;
      varint(e.nanos);
    }
    end(at);
  }
  text(0x22, e.action);
  if (e.actor) {
    const at = begin(0x2a);
    text(0x0a, e.actor.id);
    enumField(0x10, e.actorType);
    text(0x1a, e.actor.name);
    end(at);
  }
  if (e.target) {
    const at = begin(0x32);
    text(0x0a, e.target.type);
    text(0x12, e.target.id);
    text(0x1a, e.target.name);
    end(at);
  }
  {
    const at = begin(0x3a);
    enumField(0x08, e.result);
    text(0x12, e.errorCode);
    text(0x1a, e.reason);
    end(at);
  }
  if (e.context) {
    const c = e.context;
    const at = begin(0x42);
    text(0x0a, c.requestId);
    text(0x12, c.correlationId);
    text(0x1a, c.sessionId);
    text(0x22, c.sourceIp);
    text(0x2a, c.userAgent);
    text(0x32, c.service);
    end(at);
  }
  if (e.before) struct(0x4a, e.before);
  if (e.after) struct(0x52, e.after);
  if (e.metadata) struct(0x5a, e.metadata);
  text(0x62, e.subjectId); // subject_id = 12
  return { scratch: buf, end: pos };
}

function negativeVarint(n: number): void {
  // int64 two's complement: ten bytes.
  let v = BigInt.asUintN(64, BigInt(n));
  ensure(10);
  while (v > 0x7fn) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
}
