// The on-disk outbox of sdk/SPOOL.md: owns the lock, the segments and the dead-letter file. Single-threaded: every
// call runs on the event loop's thread, writes are synchronous (log() has written the record before it returns),
// fsyncs for the "batch" policy run in libuv's pool.
import * as fs from "node:fs";
import * as path from "node:path";
import { AuditError, SpoolDamagedError } from "../errors.js";
import { MAGIC, ackRecord, parseSegment, parseSegmentName, segmentName, writeEventRecord } from "./format.js";
import { SpoolLock } from "./lock.js";

export type SpoolFsync = "always" | "batch" | "never";

/** SPOOL.md: a new segment starts when the current one exceeds 16 MiB. */
export const SEGMENT_MAX_BYTES = 16 * 1024 * 1024;

export class Segment {
  fd: number | null = null;
  /** A read-only descriptor, for events whose bytes are not kept in memory. */
  readFd: number | null = null;
  events = 0;
  acked = 0;
  dirty = false;
  syncing = 0;
  deleted = false;
  constructor(
    readonly num: number,
    readonly file: string,
    public size: number,
  ) {}
}

export interface SpooledEvent {
  segment: Segment;
  ordinal: number;
  /** File offset of the event bytes in the segment. */
  offset: number;
  size: number;
  /** The event bytes, or null when they are read back from the segment when sent (replay beyond the memory window). */
  bytes: Uint8Array | null;
}

export interface SpoolOptions {
  fsync: SpoolFsync;
  /** Start a new segment past this size (16 MiB, or less so that a small spoolMaxBytes can free room). */
  segmentMaxBytes: number;
  onError: (err: AuditError) => void;
  onInfo: (msg: string) => void;
  /** Replayed events whose bytes are kept in memory, by size; the rest are read back from disk when sent. */
  replayMemoryBytes: number;
}

export class Spool {
  /** Bytes of all segment files: what spoolMaxBytes bounds. */
  bytes = 0;
  private readonly segments = new Map<number, Segment>();
  private current: Segment | null = null;
  private nextNum = 1;
  private dirDirty = false;
  /** Where append() frames each record; grows for big events (64 KiB, the limit, unless validation is skipped). */
  private record = Buffer.allocUnsafe(Spool.recordBytes(64 * 1024));
  private readonly lock: SpoolLock;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly opts: SpoolOptions,
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.lock = SpoolLock.acquire(dir, opts.onInfo);
  }

  /** Opens (and locks) the spool and returns the events still waiting for an acknowledgement, in order. */
  static open(dir: string, opts: SpoolOptions): { spool: Spool; pending: SpooledEvent[] } {
    const spool = new Spool(path.resolve(dir), opts);
    try {
      return { spool, pending: spool.replay() };
    } catch (err) {
      spool.lock.release();
      throw err;
    }
  }

  get deadLetterFile(): string {
    return path.join(this.dir, "dead_letter.jsonl");
  }

  private replay(): SpooledEvent[] {
    const nums = fs
      .readdirSync(this.dir)
      .map(parseSegmentName)
      .filter((n): n is number => n !== undefined)
      .sort((a, b) => a - b);
    if (nums.length) this.nextNum = nums[nums.length - 1] + 1;
    const pending: SpooledEvent[] = [];
    let inMemory = 0;
    // Copies, so that a segment's file buffer is not kept alive by the events of it that stay in memory.
    const keep = (bytes: Uint8Array): Uint8Array | null => {
      if (inMemory + bytes.length > this.opts.replayMemoryBytes) return null;
      inMemory += bytes.length;
      return Buffer.from(bytes);
    };
    for (const num of nums) {
      const file = path.join(this.dir, segmentName(num));
      const buf = fs.readFileSync(file);
      const parsed = parseSegment(buf);
      const unacked = parsed.events.filter((e) => !parsed.acked.has(e.ordinal));
      if (parsed.problem?.kind === "damaged") {
        // Re-spool first, then move aside: a crash in between means a resend (deduplicated), never a loss.
        for (const e of unacked) {
          const spooled = this.append(e.bytes);
          pending.push({ ...spooled, bytes: keep(e.bytes) });
        }
        this.syncAllSync();
        const movedTo = this.moveAside(file);
        this.opts.onError(new SpoolDamagedError(file, movedTo, parsed.validEnd, parsed.problem.detail));
        continue;
      }
      if (parsed.problem?.kind === "torn") {
        this.opts.onInfo(
          `spool segment ${file} has a torn tail (${parsed.problem.detail}); truncated from ${buf.length} to ${parsed.validEnd} bytes`,
        );
        if (parsed.validEnd >= MAGIC.length) fs.truncateSync(file, parsed.validEnd);
      }
      // Zeros after the records: a preallocating client (Rust, Python) stopped without closing.
      if (parsed.problem?.kind === "free") fs.truncateSync(file, parsed.validEnd);
      if (unacked.length === 0) {
        fs.unlinkSync(file);
        this.dirDirty = true;
        continue;
      }
      const seg = new Segment(num, file, parsed.validEnd);
      seg.events = parsed.events.length;
      seg.acked = parsed.events.length - unacked.length;
      this.segments.set(num, seg);
      this.bytes += seg.size;
      for (const e of unacked) {
        pending.push({ segment: seg, ordinal: e.ordinal, offset: e.offset, size: e.bytes.length, bytes: keep(e.bytes) });
      }
    }
    if (this.dirDirty) this.syncDirSync();
    return pending;
  }

  /** Size on disk of the record for an event of this many bytes. */
  static recordBytes(eventBytes: number): number {
    return 9 + eventBytes;
  }

  /** Writes one event record (one write()); with fsync "always" it is fsync'd before this returns. */
  append(bytes: Uint8Array): SpooledEvent {
    let seg = this.current;
    if (!seg || seg.size >= this.opts.segmentMaxBytes) seg = this.startSegment();
    // Framed in a reused buffer: log() allocates nothing for the record it writes.
    const need = Spool.recordBytes(bytes.length);
    if (this.record.length < need) this.record = Buffer.allocUnsafe(Math.max(need, 2 * this.record.length));
    const len = writeEventRecord(this.record, bytes);
    writeAll(seg.fd!, this.record, len);
    const offset = seg.size + len - bytes.length;
    seg.size += len;
    this.bytes += len;
    const ordinal = seg.events++;
    if (this.opts.fsync === "always") fs.fsyncSync(seg.fd!);
    else if (this.opts.fsync === "batch") seg.dirty = true;
    return { segment: seg, ordinal, offset, size: bytes.length, bytes };
  }

  /** Reads an event's bytes back from its segment. */
  read(seg: Segment, offset: number, size: number): Buffer {
    if (seg.readFd === null) seg.readFd = fs.openSync(seg.file, "r");
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(seg.readFd, buf, got, size - got, offset + got);
      if (n === 0) throw new Error(`spool segment ${seg.file} ends before byte ${offset + size}`);
      got += n;
    }
    return buf;
  }

  private startSegment(): Segment {
    const num = this.nextNum++;
    const file = path.join(this.dir, segmentName(num));
    const fd = fs.openSync(file, "wx");
    writeAll(fd, MAGIC);
    const seg = new Segment(num, file, MAGIC.length);
    seg.fd = fd;
    this.segments.set(num, seg);
    this.bytes += MAGIC.length;
    this.current = seg;
    if (this.opts.fsync === "always") {
      fs.fsyncSync(fd);
      this.syncDirSync();
    } else if (this.opts.fsync === "batch") {
      seg.dirty = true;
      this.dirDirty = true;
    }
    return seg;
  }

  /**
   * The "batch" policy's fsync of everything written so far, off the event loop. Resolves once that and any fsync
   * started earlier are done (so a send never overtakes an fsync still running for its records).
   */
  syncDirty(): Promise<void> {
    if (this.opts.fsync !== "batch") return Promise.resolve();
    const mine = this.startSyncs();
    const all = Promise.all([this.lastSync, mine]).then(() => undefined);
    this.lastSync = all.catch(() => undefined);
    return all;
  }

  private lastSync: Promise<void> = Promise.resolve();

  private startSyncs(): Promise<unknown> {
    const jobs: Promise<void>[] = [];
    for (const seg of this.segments.values()) {
      if (!seg.dirty || seg.fd === null) continue;
      seg.dirty = false;
      seg.syncing++;
      const fd = seg.fd;
      jobs.push(
        new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve()))).finally(() => {
          if (--seg.syncing === 0 && seg.deleted && seg.fd !== null) this.closeFd(seg);
        }),
      );
    }
    if (this.dirDirty) {
      this.dirDirty = false;
      jobs.push(fsyncDir(this.dir));
    }
    return Promise.all(jobs);
  }

  /** Records acknowledgements (lazily: no fsync) and deletes every segment whose events are all acknowledged. */
  ack(events: readonly { segment: Segment; ordinal: number }[]): void {
    const bySeg = new Map<Segment, number[]>();
    for (const e of events) {
      let list = bySeg.get(e.segment);
      if (!list) bySeg.set(e.segment, (list = []));
      list.push(e.ordinal);
    }
    for (const [seg, ordinals] of bySeg) {
      if (seg.deleted) continue;
      seg.acked += ordinals.length;
      if (seg.acked >= seg.events) {
        this.deleteSegment(seg);
        continue;
      }
      if (seg.fd === null) seg.fd = fs.openSync(seg.file, "a");
      const rec = ackRecord(ordinals);
      writeAll(seg.fd, rec);
      seg.size += rec.length;
      this.bytes += rec.length;
    }
  }

  private deleteSegment(seg: Segment): void {
    seg.deleted = true;
    fs.unlinkSync(seg.file);
    this.segments.delete(seg.num);
    this.bytes -= seg.size;
    if (this.current === seg) this.current = null;
    if (seg.syncing === 0) this.closeFd(seg);
    if (this.opts.fsync !== "never") this.dirDirty = true;
  }

  private closeFd(seg: Segment): void {
    if (seg.fd !== null) fs.closeSync(seg.fd);
    seg.fd = null;
    if (seg.readFd !== null) fs.closeSync(seg.readFd);
    seg.readFd = null;
  }

  /** Appends rejected events to dead_letter.jsonl and fsyncs it (before their spool records are acknowledged). */
  deadLetter(lines: readonly string[]): void {
    const fd = fs.openSync(this.deadLetterFile, "a");
    try {
      writeAll(fd, Buffer.from(lines.map((l) => l + "\n").join("")));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private moveAside(file: string): string {
    const dir = path.join(this.dir, "damaged");
    fs.mkdirSync(dir, { recursive: true });
    let target = path.join(dir, path.basename(file));
    for (let i = 1; fs.existsSync(target); i++) target = path.join(dir, `${path.basename(file)}.${i}`);
    fs.renameSync(file, target);
    this.syncDirSync();
    return target;
  }

  private syncAllSync(): void {
    for (const seg of this.segments.values()) if (seg.fd !== null) fs.fsyncSync(seg.fd);
    this.syncDirSync();
  }

  private syncDirSync(): void {
    this.dirDirty = false;
    const fd = fs.openSync(this.dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Closes the files (fsyncing what the policy promises) and releases the lock. What is unacknowledged stays. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const seg of this.segments.values()) {
      if (seg.fd === null) {
        this.closeFd(seg);
        continue;
      }
      if (this.opts.fsync !== "never") fs.fsyncSync(seg.fd);
      if (seg.syncing === 0) this.closeFd(seg);
      else seg.deleted = true; // closed when its pending fsync finishes
    }
    if (this.opts.fsync !== "never") this.syncDirSync();
    this.lock.release();
  }
}

function writeAll(fd: number, buf: Uint8Array, length = buf.length): void {
  let off = 0;
  while (off < length) off += fs.writeSync(fd, buf, off, length - off);
}

function fsyncDir(dir: string): Promise<void> {
  return new Promise((resolve, reject) =>
    fs.open(dir, "r", (err, fd) => {
      if (err) return reject(err);
      fs.fsync(fd, (err2) => fs.close(fd, () => (err2 ? reject(err2) : resolve())));
    }),
  );
}
