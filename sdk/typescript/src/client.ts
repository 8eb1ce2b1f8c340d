import * as os from "node:os";
import * as path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  AuditRejectedError,
  ClientClosedError,
  DeliveryError,
  EventDroppedError,
  SpoolFullError,
  type AuditError,
} from "./errors.js";
import { prepareEvent, type AuditEventInput, type PreparedEvent } from "./event.js";
import { AppendResponseSchema } from "./gen/auditum/v1/ingest_pb.js";
import { APPEND_METHOD, Delivery, encodeAppend, type Counters } from "./delivery.js";
import { SEGMENT_MAX_BYTES, Spool, type SpooledEvent, type SpoolFsync } from "./spool/spool.js";
import { Transport, statusName, retryAfterMs, type GrpcError, type TlsOptions } from "./transport.js";
import { Backoff } from "./backoff.js";

export type OnFull = "block" | "raise" | "drop";

export interface AuditClientOptions {
  /** The server: http://host:port, or https://host:port for TLS. */
  url: string;
  /** API key secret, sent as `authorization: Bearer …`. Default: none (development mode servers). */
  apiKey?: string;
  /** CA bundle and client certificate for https:// URLs. Default: system roots, no client certificate. */
  tls?: TlsOptions;
  /**
   * Directory of the on-disk spool (outbox). Default: $AUDITUM_SPOOL_DIR, else `<os.tmpdir()>/auditum-spool-<uid>`.
   * `null`: no spool, events wait in memory only and are lost if the process dies before delivery.
   */
  spoolDir?: string | null;
  /** "batch" (default): one fsync per batch before sending; "always": before log() returns; "never". */
  spoolFsync?: SpoolFsync;
  /** Bound on the spool's files (or, without a spool, on the queued events' bytes). Default 1 GiB. */
  spoolMaxBytes?: number;
  /** What log() does when the spool is full. Default "block" (see README: log() throws, logAsync() waits). */
  onFull?: OnFull;
  /** How long logAsync() waits for room under onFull "block" before it throws SpoolFullError. Default 30 000 ms. */
  blockTimeoutMs?: number;
  /** Events per Append call. Default 1000 (the server's limit). */
  batchMaxEvents?: number;
  /** Encoded bytes per Append call. Default 2 MiB (the server's limit is 4 MiB). */
  batchMaxBytes?: number;
  /**
   * With a spool: how many bytes of waiting events are also kept in memory; the others are read back from the spool
   * files when their turn comes, so a large backlog does not fill the heap. Default 64 MiB.
   */
  spoolMemoryBytes?: number;
  /** How long an event may wait for companions before it is sent. Default 10 ms. */
  lingerMs?: number;
  /** Append calls outstanding at once. Default 4. */
  maxInFlight?: number;
  /** Deadline of one Append call. Default 30 000 ms. */
  callTimeoutMs?: number;
  /** How long logDurable() keeps retrying before it throws. Default 30 000 ms. */
  durableTimeoutMs?: number;
  /** Skip the local checks (the server still validates; rejected events go to the dead-letter file). Default false. */
  skipLocalValidation?: boolean;
  /** Called with every delivery problem, dead letter, drop and damaged spool. Default: console.error. */
  onError?: (err: AuditError) => void;
  /** Informational messages (a torn spool tail truncated, a stale lock taken over). Default: none. */
  logger?: { info(message: string): void };
}

export interface AppendResult {
  seq: bigint;
  id: string;
  duplicate: boolean;
  receivedAt?: Date;
  log: string;
}

export interface ClientStats extends Counters {
  /** Bytes of the spool files (without a spool: bytes of events waiting in memory). */
  spoolBytes: number;
  /** Events logged but not yet acknowledged or dead-lettered. */
  queued: number;
}

const MIB = 1024 * 1024;

interface RoomWaiter {
  event: PreparedEvent;
  need: number;
  resolve: (id: string) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

export function defaultSpoolDir(): string {
  return process.env.AUDITUM_SPOOL_DIR || path.join(os.tmpdir(), `auditum-spool-${process.getuid?.() ?? os.userInfo().username}`);
}

export class AuditClient {
  private readonly transport: Transport;
  private readonly spool: Spool | null;
  private readonly delivery: Delivery;
  private readonly validate: boolean;
  private readonly onFull: OnFull;
  private readonly maxBytes: number;
  private readonly blockTimeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly durableTimeoutMs: number;
  private readonly onError: (err: AuditError) => void;
  private nextSeq = 0;
  private closed = false;
  private roomWaiters: RoomWaiter[] = [];

  constructor(options: AuditClientOptions) {
    const o = options;
    this.validate = !o.skipLocalValidation;
    this.onFull = o.onFull ?? "block";
    if (!["block", "raise", "drop"].includes(this.onFull)) throw new TypeError(`onFull: expected block, raise or drop, got ${this.onFull}`);
    this.maxBytes = positive("spoolMaxBytes", o.spoolMaxBytes ?? 1024 * MIB, 128 * 1024);
    this.blockTimeoutMs = positive("blockTimeoutMs", o.blockTimeoutMs ?? 30_000, 0);
    this.callTimeoutMs = positive("callTimeoutMs", o.callTimeoutMs ?? 30_000, 1);
    this.durableTimeoutMs = positive("durableTimeoutMs", o.durableTimeoutMs ?? 30_000, 1);
    const userOnError = o.onError ?? ((err: AuditError) => console.error(`auditum: ${err.message}`));
    // A throwing handler must not break delivery.
    this.onError = (err) => {
      try {
        userOnError(err);
      } catch {
        /* the caller's handler failed; nothing better to report to */
      }
    };
    const info = (msg: string) => o.logger?.info(msg);
    const deliveryOptions = {
      batchMaxEvents: positive("batchMaxEvents", o.batchMaxEvents ?? 1000, 1, 1000),
      batchMaxBytes: positive("batchMaxBytes", o.batchMaxBytes ?? 2 * MIB, 1, 4 * MIB - 1024),
      lingerMs: positive("lingerMs", o.lingerMs ?? 10, 0),
      maxInFlight: positive("maxInFlight", o.maxInFlight ?? 4, 1),
      callTimeoutMs: this.callTimeoutMs,
      memoryBytes: positive("spoolMemoryBytes", o.spoolMemoryBytes ?? 64 * MIB, 0),
    };
    const fsync = o.spoolFsync ?? "batch";
    if (!["always", "batch", "never"].includes(fsync)) throw new TypeError(`spoolFsync: expected always, batch or never, got ${fsync}`);
    this.transport = new Transport(o.url, { apiKey: o.apiKey, tls: o.tls });

    const spoolDir = o.spoolDir === undefined ? defaultSpoolDir() : o.spoolDir;
    let pending: SpooledEvent[] = [];
    if (spoolDir !== null) {
      let opened: ReturnType<typeof Spool.open>;
      try {
        opened = Spool.open(spoolDir, {
          fsync,
          // Small bounds need small segments, or a fully acknowledged segment could never be deleted to make room.
          segmentMaxBytes: Math.min(SEGMENT_MAX_BYTES, Math.max(16 * 1024, Math.floor(this.maxBytes / 8))),
          onError: this.onError,
          onInfo: info,
          replayMemoryBytes: deliveryOptions.memoryBytes,
        });
      } catch (err) {
        this.transport.close();
        throw err;
      }
      this.spool = opened.spool;
      pending = opened.pending;
    } else {
      this.spool = null;
    }
    this.delivery = new Delivery(this.transport, this.spool, deliveryOptions, this.onError, () => this.admitWaiters());
    // Replayed events go first, in spool order, with the ids they were logged with.
    for (const p of pending) this.delivery.enqueue({ seq: this.nextSeq++, ...p });
  }

  /** The spool directory in use, or null without a spool. */
  get spoolDir(): string | null {
    return this.spool?.dir ?? null;
  }

  /**
   * Records an event: checks it, stamps id, occurred_at and the request context, writes it to the spool and
   * returns its id without waiting for the network. Throws AuditValidationError on a bad event, SpoolFullError
   * when the spool is full and onFull is "raise" or "block" (a synchronous call cannot wait: use logAsync()).
   */
  log(event: AuditEventInput): string {
    if (this.closed) throw new ClientClosedError();
    const prepared = prepareEvent(event, this.validate);
    const need = this.need(prepared);
    if (!this.hasRoom(need)) return this.full(prepared, "log");
    return this.admit(prepared);
  }

  /**
   * log() that may wait: with onFull "block" and a full spool it waits (without blocking the event loop) up to
   * blockTimeoutMs for room, then rejects with SpoolFullError. Otherwise the same as log().
   */
  async logAsync(event: AuditEventInput): Promise<string> {
    if (this.closed) throw new ClientClosedError();
    const prepared = prepareEvent(event, this.validate);
    const need = this.need(prepared);
    if (this.hasRoom(need) && this.roomWaiters.length === 0) return this.admit(prepared);
    if (this.onFull !== "block") return this.full(prepared, "logAsync");
    return new Promise<string>((resolve, reject) => {
      const waiter: RoomWaiter = {
        event: prepared,
        need,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.roomWaiters = this.roomWaiters.filter((w) => w !== waiter);
          reject(this.fullError(`waited ${this.blockTimeoutMs} ms (blockTimeoutMs) for room`));
        }, this.blockTimeoutMs),
      };
      this.roomWaiters.push(waiter);
    });
  }

  /**
   * Sends the event at once (not through the spool) and resolves when the server has it durably: seq, id,
   * duplicate. Transient failures are retried for durableTimeoutMs; a rejection throws AuditRejectedError.
   */
  async logDurable(event: AuditEventInput): Promise<AppendResult> {
    if (this.closed) throw new ClientClosedError();
    const prepared = prepareEvent(event, this.validate);
    this.delivery.counters.logged++;
    const deadline = Date.now() + this.durableTimeoutMs;
    const backoff = new Backoff();
    const request = encodeAppend([prepared]);
    for (;;) {
      const left = deadline - Date.now();
      try {
        const resp = await this.transport.unary(APPEND_METHOD, request, Math.max(1, Math.min(this.callTimeoutMs, left)), true);
        const r = fromBinary(AppendResponseSchema, resp).results[0];
        if (!r) throw new DeliveryError("INTERNAL", `event ${prepared.id}: the server answered no result`, false);
        this.delivery.counters.delivered++;
        if (r.duplicate) this.delivery.counters.duplicates++;
        return { seq: r.seq, id: r.id, duplicate: r.duplicate, receivedAt: r.receivedAt ? timestampDate(r.receivedAt) : undefined, log: r.log };
      } catch (err) {
        if (err instanceof DeliveryError) throw err;
        const code = statusName(err);
        const message = (err as GrpcError).details ?? String(err);
        if (code === "INVALID_ARGUMENT") throw new AuditRejectedError(code, prepared.id, message);
        if (code === "UNAUTHENTICATED" || code === "PERMISSION_DENIED") {
          throw new DeliveryError(code, `event ${prepared.id} refused: ${code}: ${message}`, false, { cause: err });
        }
        const wait = backoff.next(retryAfterMs(err));
        if (Date.now() + wait >= deadline) {
          throw new DeliveryError(
            code,
            `event ${prepared.id} not acknowledged within ${this.durableTimeoutMs} ms (last: ${code}: ${message}); ` +
              `it may or may not be stored: retry with the same id, the server deduplicates it`,
            false,
            { cause: err },
          );
        }
        this.delivery.counters.retried++;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Resolves true once everything logged so far is acknowledged (or dead-lettered), false after timeoutMs. */
  flush(timeoutMs = 10_000): Promise<boolean> {
    return this.delivery.flush(this.nextSeq, timeoutMs);
  }

  /** Flushes, stops delivery and releases the spool; what was not delivered stays in the spool for next time. */
  async close(timeoutMs = 10_000): Promise<boolean> {
    if (this.closed) return true;
    this.closed = true;
    for (const w of this.roomWaiters) {
      clearTimeout(w.timer);
      w.reject(new ClientClosedError());
    }
    this.roomWaiters = [];
    const flushed = await this.delivery.flush(this.nextSeq, timeoutMs);
    this.delivery.stop();
    this.transport.close();
    this.spool?.close();
    return flushed;
  }

  /** Counters: logged, delivered, duplicates, retried, deadLettered, dropped, spoolBytes, queued. */
  stats(): ClientStats {
    return {
      ...this.delivery.counters,
      spoolBytes: this.spool ? this.spool.bytes : this.delivery.pendingBytes,
      queued: this.delivery.queued,
    };
  }

  private need(e: PreparedEvent): number {
    return this.spool ? Spool.recordBytes(e.bytes.length) : e.bytes.length;
  }

  private hasRoom(need: number): boolean {
    const used = this.spool ? this.spool.bytes : this.delivery.pendingBytes;
    return used + need <= this.maxBytes;
  }

  private admit(e: PreparedEvent): string {
    const s = this.spool?.append(e.bytes);
    this.delivery.counters.logged++;
    // A literal rather than a spread of `s`: the spread's copy was a fifth of what log() allocated.
    this.delivery.enqueue(
      s
        ? { seq: this.nextSeq++, bytes: s.bytes, size: s.size, segment: s.segment, ordinal: s.ordinal, offset: s.offset }
        : { seq: this.nextSeq++, bytes: e.bytes, size: e.bytes.length, segment: null, ordinal: 0, offset: 0 },
    );
    return e.id;
  }

  private full(e: PreparedEvent, call: string): string {
    if (this.onFull === "drop") {
      this.delivery.counters.dropped++;
      this.onError(new EventDroppedError(e.id, `the spool is full (${this.usage()}) and onFull is "drop"`));
      return e.id;
    }
    const hint = this.onFull === "block" && call === "log" ? "; log() cannot wait without stopping the event loop that delivers: await logAsync() to wait for room" : "";
    throw this.fullError(`onFull is "${this.onFull}"${hint}`);
  }

  private fullError(why: string): SpoolFullError {
    return new SpoolFullError(`the spool is full (${this.usage()}): ${why}`);
  }

  private usage(): string {
    const used = this.spool ? this.spool.bytes : this.delivery.pendingBytes;
    return `${used} of spoolMaxBytes ${this.maxBytes} bytes${this.spool ? ` in ${this.spool.dir}` : " in memory"}`;
  }

  private admitWaiters(): void {
    while (this.roomWaiters.length && !this.closed && this.hasRoom(this.roomWaiters[0].need)) {
      const w = this.roomWaiters.shift()!;
      clearTimeout(w.timer);
      w.resolve(this.admit(w.event));
    }
  }
}

function positive(name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw new TypeError(`${name}: expected a number from ${min} to ${max}, got ${v}`);
  }
  return v;
}
