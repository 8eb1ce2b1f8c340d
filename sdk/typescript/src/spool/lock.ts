// spool_dir/lock holds "<pid> <hostname>\n" of the owner (sdk/SPOOL.md). Created with O_EXCL; a lock naming a dead
// pid on this host is taken over by an atomic rename, then re-read to confirm we won a race with another taker.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SpoolLockedError } from "../errors.js";

export class SpoolLock {
  private released = false;
  private constructor(
    readonly file: string,
    private readonly content: string,
  ) {}

  static acquire(spoolDir: string, onInfo: (msg: string) => void): SpoolLock {
    const file = path.join(spoolDir, "lock");
    const content = `${process.pid} ${os.hostname()}\n`;
    for (let attempt = 0; attempt < 30; attempt++) {
      try {
        const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
        try {
          fs.writeSync(fd, content);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        return new SpoolLock(file, content);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const holder = readHolder(file);
      if (holder === undefined) continue; // removed between our open and read: try O_EXCL again
      if (holder.pid === 0 && Date.now() - holder.mtimeMs < 2000) {
        // Probably being written by its creator right now: give it a moment before calling it stale.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        continue;
      }
      if (holder.host !== os.hostname()) {
        throw new SpoolLockedError(
          spoolDir,
          holder.pid,
          holder.host,
          "another host holds the lock; if that host is gone for good, delete the lock file",
        );
      }
      if (holder.pid === process.pid) {
        throw new SpoolLockedError(spoolDir, holder.pid, holder.host, "another AuditClient in this process has it open");
      }
      if (holder.pid > 0 && isAlive(holder.pid)) {
        throw new SpoolLockedError(spoolDir, holder.pid, holder.host, "that process is running; give each process its own spoolDir");
      }
      // Stale: its owner died without closing (kill -9, crash). Take it over atomically.
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, content);
      fs.renameSync(tmp, file);
      if (fs.readFileSync(file, "utf8") === content) {
        onInfo(`took over the stale spool lock of pid ${holder.pid} in ${spoolDir}`);
        return new SpoolLock(file, content);
      }
    }
    const holder = readHolder(file);
    throw new SpoolLockedError(spoolDir, holder?.pid ?? -1, holder?.host ?? "?", "lost the race for the lock to another process");
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      if (fs.readFileSync(this.file, "utf8") === this.content) fs.unlinkSync(this.file);
    } catch {
      // already gone: nothing to release
    }
  }
}

function readHolder(file: string): { pid: number; host: string; mtimeMs: number } | undefined {
  let text: string;
  let mtimeMs: number;
  try {
    text = fs.readFileSync(file, "utf8");
    mtimeMs = fs.statSync(file).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const m = /^(\d+) (\S+)\n?$/.exec(text);
  // An unreadable lock (e.g. a crash before the write) names no live process: treat it as stale.
  return m ? { pid: Number(m[1]), host: m[2], mtimeMs } : { pid: 0, host: os.hostname(), mtimeMs };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
