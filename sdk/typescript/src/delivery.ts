// The delivery worker: batches queued events into Append calls (batchMaxEvents / batchMaxBytes / linger, at most
// maxInFlight outstanding), retries transient failures forever with backoff, dead-letters what the server rejects,
// and acknowledges delivered events in the spool. It runs on the event loop: log() only enqueues.
import { fromBinary, toJson } from "@bufbuild/protobuf";
import { AuditRejectedError, DeliveryError, type AuditError } from "./errors.js";
import { AuditEventSchema } from "./gen/auditum/v1/event_pb.js";
import type { Segment, Spool } from "./spool/spool.js";
import { Transport, retryAfterMs, statusName, type GrpcError } from "./transport.js";
import { Backoff } from "./backoff.js";
import type { ClientUnaryCall } from "@grpc/grpc-js";

export const APPEND_METHOD = "/auditum.v1.IngestService/Append";

export interface Item {
  /** Local order: flush() waits for every item below a watermark. */
  seq: number;
  /** The encoded event; null while it waits only in the spool file (beyond the memory window). */
  bytes: Uint8Array | null;
  size: number;
  segment: Segment | null;
  ordinal: number;
  /** File offset of the event bytes in the segment. */
  offset: number;
}

export interface DeliveryOptions {
  batchMaxEvents: number;
  batchMaxBytes: number;
  lingerMs: number;
  maxInFlight: number;
  callTimeoutMs: number;
  /** With a spool: bytes of queued events kept in memory; beyond it they are read back from the spool when sent. */
  memoryBytes: number;
}

export interface Counters {
  logged: number;
  delivered: number;
  duplicates: number;
  retried: number;
  deadLettered: number;
  dropped: number;
}

const RETRYABLE = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED", "UNKNOWN", "INTERNAL"]);
const STOPPING = new Set(["UNAUTHENTICATED", "PERMISSION_DENIED"]);

export class Delivery {
  readonly counters: Counters = { logged: 0, delivered: 0, duplicates: 0, retried: 0, deadLettered: 0, dropped: 0 };
  /** Bytes of events not yet settled (the memory queue's size, which spoolMaxBytes bounds without a spool). */
  pendingBytes = 0;
  /** Bytes of queued events held in memory (with a spool, bounded by memoryBytes plus what is in flight). */
  private memoryBytes = 0;
  private queue: Item[] = [];
  private head = 0;
  private retry: Item[] = [];
  private inFlight = 0;
  private outstanding = 0;
  private timer: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private readonly backoff = new Backoff();
  private backoffTimer: NodeJS.Timeout | null = null;
  private readonly connectBackoff = new Backoff(1_000, 30_000);
  private awaitingConnection = false;
  /** Whether events were enqueued since the linger timer was armed (other than the one that armed it). */
  private lingerBusy = false;
  /** After a failure only one call probes the server until one succeeds. */
  private probing = false;
  private stoppedBy: DeliveryError | null = null;
  private closed = false;
  private readonly calls = new Set<ClientUnaryCall>();
  private waiters: { target: number; remaining: number; resolve: (ok: boolean) => void }[] = [];

  constructor(
    private readonly transport: Transport,
    private readonly spool: Spool | null,
    private readonly opts: DeliveryOptions,
    private readonly onError: (err: AuditError) => void,
    private readonly onSettled: () => void,
  ) {}

  get queued(): number {
    return this.outstanding;
  }

  enqueue(item: Item): void {
    if (item.bytes && item.segment) {
      if (this.memoryBytes + item.size > this.opts.memoryBytes) item.bytes = null;
      else this.memoryBytes += item.size;
    } else if (item.bytes) {
      this.memoryBytes += item.size;
    }
    this.queue.push(item);
    this.outstanding++;
    this.pendingBytes += item.size;
    this.lingerBusy = true;
    this.schedule();
    // The linger timer or the immediate fsyncs when it fires; without either (backing off, stopped), this timer does,
    // so that the "batch" policy fsyncs within linger even while nothing can be sent. One timer per window, not two:
    // arming a timer from log() costs several µs (cold code), a good part of log()'s slowest calls.
    if (this.spool && !this.timer && !this.immediate && !this.syncTimer && !this.closed) {
      this.syncTimer = setTimeout(() => {
        this.syncTimer = null;
        this.syncSpool();
      }, this.opts.lingerMs);
    }
  }

  private schedule(): void {
    if (this.closed || this.stoppedBy || this.backoffTimer || this.immediate) return;
    // A full batch goes at once, if a call can start now; otherwise the end of a call (or the connection) dispatches,
    // and an immediate per log() in between would only find no free slot.
    const canSend = !this.awaitingConnection && this.inFlight < (this.probing ? 1 : this.opts.maxInFlight);
    if (canSend && this.waitingCount() >= this.opts.batchMaxEvents) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.lingerOver();
      });
    } else if (!this.timer) {
      this.lingerBusy = false;
      this.timer = setTimeout(() => {
        this.timer = null;
        const busy = this.lingerBusy;
        this.lingerOver();
        // More events came during the window: under steady traffic the next window starts here, not in the next
        // log() (arming a timer is a cold path of several µs that would land in one log() call per window).
        if (busy) this.schedule();
      }, this.opts.lingerMs);
    }
  }

  /** The linger window is over (or the batch is full): fsync what is written ("batch" policy) and send what can go. */
  private lingerOver(): void {
    this.syncSpool();
    this.dispatch();
  }

  private syncSpool(): void {
    this.spool?.syncDirty().catch((err) => this.onError(new DeliveryError("INTERNAL", `fsync of the spool failed: ${err}`, true, { cause: err })));
  }

  private waitingCount(): number {
    return this.queue.length - this.head + this.retry.length;
  }

  private dispatch(): void {
    if (this.closed || this.stoppedBy || this.backoffTimer || this.awaitingConnection) return;
    // No connection: start no call (it would only sit on the channel until its deadline) and wait for one, also while
    // calls are in flight: they may be waiting on the channel for their deadline, and the outage must be reported
    // (once per window, by awaitConnection) now, not when they time out.
    if ((this.inFlight > 0 || this.waitingCount() > 0) && !this.transport.isConnected()) {
      return this.awaitConnection();
    }
    const limit = this.probing ? 1 : this.opts.maxInFlight;
    while (this.inFlight < limit && this.waitingCount() > 0) this.send(this.take());
  }

  /**
   * No connection (at the start, or the server went away): wait for the channel to connect (grpc-js reconnects with
   * its own jittered backoff, 100 ms to 30 s) in windows that grow from 1 s to 30 s, reporting each window that
   * passes without a connection. The backlog goes out as soon as the channel is ready.
   */
  private awaitConnection(): void {
    this.awaitingConnection = true;
    const windowMs = this.connectBackoff.next();
    this.transport.waitForReady(windowMs, (err) => {
      this.awaitingConnection = false;
      if (this.closed) return;
      if (err) {
        this.onError(
          new DeliveryError(
            "UNAVAILABLE",
            `the server is unreachable (no connection within ${windowMs} ms); ${this.outstanding} events wait ` +
              (this.spool ? `in the spool ${this.spool.dir}` : "in memory") + ", still trying",
            true,
          ),
        );
      } else {
        this.connectBackoff.reset();
      }
      this.dispatch();
    });
  }

  private take(): Item[] {
    // Resent events first (they are older), then the queue, within the call's count and byte limits.
    const max = this.opts.batchMaxEvents;
    let bytes = 0;
    let fromRetry = 0;
    while (fromRetry < this.retry.length && fromRetry < max) {
      const size = this.retry[fromRetry].size + 6;
      if (fromRetry > 0 && bytes + size > this.opts.batchMaxBytes) break;
      bytes += size;
      fromRetry++;
    }
    const batch = this.retry.splice(0, fromRetry);
    while (batch.length < max && this.head < this.queue.length) {
      const next = this.queue[this.head];
      const size = next.size + 6;
      if (batch.length > 0 && bytes + size > this.opts.batchMaxBytes) break;
      this.queue[this.head++] = undefined as unknown as Item;
      batch.push(next);
      bytes += size;
    }
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    for (const it of batch) {
      if (it.bytes) continue;
      it.bytes = this.spool!.read(it.segment!, it.offset, it.size);
      this.memoryBytes += it.size;
    }
    return batch;
  }

  private send(batch: Item[]): void {
    this.inFlight++;
    const spool = this.spool;
    // The "batch" fsync policy: one fsync for everything written so far, before it goes on the wire.
    const synced = spool ? spool.syncDirty() : Promise.resolve();
    let call: ClientUnaryCall | undefined;
    synced
      .then(() => {
        // The connection went away during the fsync: start no call; the batch goes back to the front of the queue
        // and dispatch() (below) waits for the connection.
        if (!this.transport.isConnected()) return null;
        // Wait for a connection rather than fail fast should it drop as the call starts: the call then goes out as
        // soon as the channel (reconnect backoff 100 ms to 30 s, jittered) is back, or fails at its deadline.
        return this.transport.unary(APPEND_METHOD, encodeAppend(batch), this.opts.callTimeoutMs, true, (c) => {
          call = c;
          this.calls.add(c);
        });
      })
      .then(
        (resp) => (resp === null ? this.requeue(batch) : this.onResponse(batch, resp)),
        (err) => this.onFailure(batch, err),
      )
      .catch((err) => this.onError(new DeliveryError("INTERNAL", `delivery bug: ${err}`, true, { cause: err })))
      .finally(() => {
        if (call) this.calls.delete(call);
        this.inFlight--;
        if (!this.closed) this.dispatch();
      });
  }

  private onResponse(batch: Item[], resp: Buffer): void {
    if (this.closed) return;
    const { results, duplicates } = countResults(resp);
    if (results !== batch.length) {
      this.onFailure(batch, new Error(`server answered ${results} results for ${batch.length} events`));
      return;
    }
    if (this.probing) this.probing = false;
    this.backoff.reset();
    this.counters.duplicates += duplicates;
    this.counters.delivered += batch.length;
    this.settle(batch);
  }

  private onFailure(batch: Item[], err: unknown): void {
    if (this.closed) return;
    const code = statusName(err);
    const message = (err as GrpcError).details ?? (err as Error).message;
    if (code === "INVALID_ARGUMENT") return this.reject(batch, message);
    this.requeue(batch);
    if (STOPPING.has(code)) {
      this.stoppedBy = new DeliveryError(
        code,
        `delivery stopped: the server answered ${code}: ${message}; ${this.outstanding} events stay ` +
          (this.spool ? `in the spool ${this.spool.dir} for a client with a working key` : "in memory"),
        false,
        { cause: err },
      );
      this.onError(this.stoppedBy);
      this.resolveWaiters(false);
      return;
    }
    this.counters.retried += batch.length;
    // An answer from the server (or a timeout on a live connection) backs off; an unreachable server is waited for
    // (awaitConnection), without a second backoff stacked on the channel's reconnect backoff.
    const unreachable = (code === "UNAVAILABLE" || code === "DEADLINE_EXCEEDED") && !this.transport.isConnected();
    this.probing = true;
    if (unreachable) {
      this.onError(new DeliveryError(code, `Append of ${batch.length} events failed (${code}: ${message}); waiting for the server`, true, { cause: err }));
      return;
    }
    const hint = retryAfterMs(err);
    const delay = this.backoff.next(hint);
    this.onError(
      new DeliveryError(
        code,
        `Append of ${batch.length} events failed (${RETRYABLE.has(code) ? "" : "unexpected, "}${code}: ${message}); retrying in ${delay} ms`,
        true,
        { cause: err, retryInMs: delay, retryAfterMs: hint },
      ),
    );
    if (!this.backoffTimer) {
      this.backoffTimer = setTimeout(() => {
        this.backoffTimer = null;
        this.dispatch();
      }, delay);
      this.backoffTimer.unref();
    }
  }

  /** INVALID_ARGUMENT: dead-letter the event named by `events[i]` and resend the rest; without an index, all. */
  private reject(batch: Item[], message: string): void {
    const m = /events\[(\d+)\]/.exec(message);
    const index = m ? Number(m[1]) : -1;
    const bad = index >= 0 && index < batch.length ? [batch[index]] : batch;
    const rest = bad.length === 1 && bad !== batch ? batch.filter((_, i) => i !== index) : [];
    const at = new Date().toISOString();
    const lines: string[] = [];
    for (const item of bad) {
      const event = fromBinary(AuditEventSchema, item.bytes!);
      lines.push(JSON.stringify({ at, code: "INVALID_ARGUMENT", message, event: toJson(AuditEventSchema, event) }));
      this.onError(new AuditRejectedError("INVALID_ARGUMENT", event.id, message));
    }
    // The dead letters are on disk before the events leave the spool.
    this.spool?.deadLetter(lines);
    this.counters.deadLettered += bad.length;
    this.settle(bad);
    this.requeue(rest);
  }

  private requeue(items: Item[]): void {
    if (!items.length) return;
    const merged: Item[] = [];
    let i = 0;
    let j = 0;
    while (i < items.length || j < this.retry.length) {
      if (j >= this.retry.length || (i < items.length && items[i].seq < this.retry[j].seq)) merged.push(items[i++]);
      else merged.push(this.retry[j++]);
    }
    this.retry = merged;
  }

  private settle(items: Item[]): void {
    if (this.spool) this.spool.ack(items.filter((it) => it.segment !== null) as { segment: Segment; ordinal: number }[]);
    this.outstanding -= items.length;
    for (const it of items) {
      this.pendingBytes -= it.size;
      if (it.bytes) this.memoryBytes -= it.size;
    }
    if (this.waiters.length) {
      for (const w of this.waiters) for (const it of items) if (it.seq < w.target) w.remaining--;
      this.waiters = this.waiters.filter((w) => (w.remaining <= 0 ? (w.resolve(true), false) : true));
    }
    this.onSettled();
  }

  /** Resolves true once every item enqueued before the call (seq < target) is settled, false at the timeout. */
  flush(target: number, timeoutMs: number): Promise<boolean> {
    if (this.outstanding === 0) return Promise.resolve(true);
    if (this.stoppedBy || this.closed) return Promise.resolve(false);
    // Every outstanding item was enqueued before now.
    return new Promise((resolve) => {
      const waiter = { target, remaining: this.outstanding, resolve };
      this.waiters.push(waiter);
      // Send what lingers now rather than after linger.
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
        this.lingerOver();
      }
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const done = waiter.resolve;
      waiter.resolve = (ok) => {
        clearTimeout(t);
        done(ok);
      };
    });
  }

  private resolveWaiters(ok: boolean): void {
    for (const w of this.waiters) w.resolve(ok);
    this.waiters = [];
  }

  /** Stops sending; calls still in flight are cancelled and their events stay spooled. */
  stop(): void {
    this.closed = true;
    for (const t of [this.timer, this.backoffTimer, this.syncTimer]) if (t) clearTimeout(t);
    if (this.immediate) clearImmediate(this.immediate);
    for (const c of this.calls) c.cancel();
    this.resolveWaiters(false);
  }
}

/**
 * The worker needs only how many results an AppendResponse holds and how many are duplicates: reading just that
 * (AppendResponse.results = 1, AppendResult.duplicate = 3) costs a tenth of decoding a thousand messages, and scanning
 * the bytes in place a seventh of protobuf-es's BinaryReader (which allocates for every tag and every field it skips):
 * about 0.1 µs per result, on the event loop between the application's log() calls.
 */
export function countResults(resp: Uint8Array): { results: number; duplicates: number } {
  const r = new WireScanner(resp);
  let results = 0;
  let duplicates = 0;
  while (r.pos < resp.length) {
    const tag = r.tag();
    if (tag !== RESULTS_TAG) {
      r.skip(tag, resp.length);
      continue;
    }
    const end = r.lengthDelimited(resp.length);
    results++;
    let dup = false;
    while (r.pos < end) {
      const t = r.tag();
      if (t === DUPLICATE_TAG) dup = r.varintIsNonZero(end);
      else r.skip(t, end);
    }
    if (dup) duplicates++;
  }
  return { results, duplicates };
}

const RESULTS_TAG = (1 << 3) | 2; // field 1, length-delimited
const DUPLICATE_TAG = (3 << 3) | 0; // field 3, varint

/** Protobuf wire format, read in place: tags, lengths and skipping, without allocating. Throws on malformed input. */
class WireScanner {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  /** A varint of at most 32 bits (tags, lengths). */
  private uint32(limit: number): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= limit) throw new Error("premature end of message");
      const b = this.buf[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (value > 0xffffffff) throw new Error("varint overflows uint32");
        return value;
      }
    }
    throw new Error("varint overflows uint32");
  }

  tag(): number {
    const tag = this.uint32(this.buf.length);
    if (tag >>> 3 === 0 || (tag & 7) > 5) throw new Error(`illegal tag: field no ${tag >>> 3} wire type ${tag & 7}`);
    return tag;
  }

  /** Reads a length prefix and returns where the field ends. */
  lengthDelimited(limit: number): number {
    const len = this.uint32(limit);
    const end = this.pos + len;
    if (end > limit) throw new Error("premature end of message");
    return end;
  }

  /** A varint (up to 64 bits) read as a bool. */
  varintIsNonZero(limit: number): boolean {
    let any = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= limit) throw new Error("premature end of message");
      const b = this.buf[this.pos++];
      any |= b & 0x7f;
      if (b < 0x80) return any !== 0;
    }
    throw new Error("varint longer than 10 bytes");
  }

  skip(tag: number, limit: number, depth = 100): void {
    switch (tag & 7) {
      case 0:
        this.varintIsNonZero(limit);
        break;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.lengthDelimited(limit);
        break;
      case 5:
        this.pos += 4;
        break;
      case 3: {
        // A (deprecated) group: skip its fields up to the matching end-group tag.
        if (depth <= 0) throw new Error("maximum recursion depth reached");
        for (;;) {
          const t = this.tag();
          if ((t & 7) === 4) {
            if (t >>> 3 !== tag >>> 3) throw new Error("invalid end group tag");
            break;
          }
          this.skip(t, limit, depth - 1);
        }
        break;
      }
      default:
        throw new Error(`cannot skip wire type ${tag & 7}`);
    }
    if (this.pos > limit) throw new Error("premature end of message");
  }
}

/** AppendRequest bytes from already-encoded events: field 1 (events), length-delimited, once per event. */
export function encodeAppend(batch: readonly { bytes: Uint8Array | null }[]): Buffer {
  let total = 0;
  for (const it of batch) total += 1 + varintSize(it.bytes!.length) + it.bytes!.length;
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const it of batch) {
    const bytes = it.bytes!;
    buf[pos++] = 0x0a;
    let n = bytes.length;
    while (n > 0x7f) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[pos++] = n;
    buf.set(bytes, pos);
    pos += bytes.length;
  }
  return buf;
}

function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n >>>= 7;
    size++;
  }
  return size;
}
