import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AuditClient, SpoolDamagedError, SpoolLockedError } from "../dist/index.js";
import { event, freePort, queryAll, segments, startServer, tmpDir } from "./helpers.mjs";

/** Logs n events into a fresh spool with no server reachable, closes, and returns the spool dir and the ids. */
async function spoolWith(n, tenant, spoolFsync = "batch") {
  const dir = tmpDir("spool");
  const client = new AuditClient({ url: `http://127.0.0.1:${await freePort()}`, spoolDir: dir, spoolFsync, onError: () => {} });
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(client.log(event(tenant, "test.spool", i)));
  assert.equal(await client.close(50), false, "nothing could be delivered");
  return { dir, ids };
}

/** Byte offsets of the records of a segment file. */
function recordOffsets(buf) {
  const offsets = [];
  for (let pos = 16; pos < buf.length; pos += 8 + buf.readUInt32LE(pos)) offsets.push(pos);
  return offsets;
}

test("segment bytes follow SPOOL.md: magic, length, CRC-32, kind 0x01 + AuditEvent", async () => {
  const { dir, ids } = await spoolWith(3, "fmt", "always");
  const [seg] = segments(dir);
  assert.match(path.basename(seg), /^segment-\d{20}\.spool$/);
  const buf = fs.readFileSync(seg);
  assert.equal(buf.subarray(0, 16).toString("latin1"), "AUDITUM-SPOOL-1\n");
  const offsets = recordOffsets(buf);
  assert.equal(offsets.length, 3);
  const { crc32 } = await import("node:zlib");
  for (const [i, off] of offsets.entries()) {
    const len = buf.readUInt32LE(off);
    const payload = buf.subarray(off + 8, off + 8 + len);
    assert.equal(buf.readUInt32LE(off + 4), crc32(payload));
    assert.equal(payload[0], 0x01);
    // field 1 (id) first: tag 0x0a, length, the id log() returned
    assert.equal(payload[1], 0x0a);
    assert.equal(payload.subarray(3, 3 + payload[2]).toString(), ids[i]);
  }
});

test("a torn spool tail is truncated and everything before it is delivered", async () => {
  const { dir, ids } = await spoolWith(50, "torn");
  const [seg] = segments(dir);
  const size = fs.statSync(seg).size;
  // Half a record: a header announcing 300 bytes, then only 40 of them (a crash in the middle of a write).
  const torn = Buffer.alloc(48, 0x5a);
  torn.writeUInt32LE(300, 0);
  fs.appendFileSync(seg, torn);
  const server = await startServer();
  const infos = [];
  const errors = [];
  const client = new AuditClient({ url: server.url, spoolDir: dir, logger: { info: (m) => infos.push(m) }, onError: (e) => errors.push(e) });
  try {
    assert.equal(fs.statSync(seg).size, size, "truncated back to the last whole record");
    assert.ok(infos.some((m) => m.includes("torn tail") && m.includes(path.basename(seg))), infos.join("\n"));
    assert.deepEqual(errors, [], "a torn tail is not an error");
    assert.equal(await client.flush(30_000), true);
    const archived = (await queryAll(server.url, "torn", ["test.spool"])).map((e) => e.event.id);
    assert.deepEqual(archived.sort(), [...ids].sort());
  } finally {
    await client.close(5_000);
    await server.stop();
  }
});

test("zeros after the last record (a preallocated segment left by the Rust or Python SDK) are free space, not a tear", async () => {
  const { dir, ids } = await spoolWith(20, "zeros");
  const [seg] = segments(dir);
  const size = fs.statSync(seg).size;
  fs.appendFileSync(seg, Buffer.alloc(1 << 20)); // a mapped segment's unused megabyte
  // And a segment preallocated just before a crash: its length reached the disk, its magic did not.
  const number = Number(path.basename(seg).slice(8, 28));
  const zeros = path.join(dir, `segment-${String(number + 1).padStart(20, "0")}.spool`);
  fs.writeFileSync(zeros, Buffer.alloc(64 << 10));
  const server = await startServer();
  const infos = [];
  const errors = [];
  const opened = Date.now();
  const client = new AuditClient({ url: server.url, spoolDir: dir, logger: { info: (m) => infos.push(m) }, onError: (e) => errors.push(e) });
  try {
    assert.ok(Date.now() - opened < 2_000, "the zeros are not searched byte by byte for records");
    assert.equal(fs.statSync(seg).size, size, "cut back to the last record");
    assert.ok(!fs.existsSync(zeros), "the empty segment is removed");
    assert.ok(!infos.some((m) => m.includes("torn")), infos.join("\n"));
    assert.deepEqual(errors, [], "neither is damage");
    assert.equal(await client.flush(30_000), true);
    const archived = (await queryAll(server.url, "zeros", ["test.spool"])).map((e) => e.event.id);
    assert.deepEqual(archived.sort(), [...ids].sort());
  } finally {
    await client.close(5_000);
    await server.stop();
  }
});

test("a damaged middle is reported, kept aside in damaged/, and the events before it are delivered", async () => {
  const { dir, ids } = await spoolWith(50, "damaged");
  const [seg] = segments(dir);
  const buf = fs.readFileSync(seg);
  const off = recordOffsets(buf)[20];
  buf[off + 8 + 12] ^= 0xff; // flip a payload byte of the 21st record: its CRC no longer matches
  fs.writeFileSync(seg, buf);
  const server = await startServer();
  const errors = [];
  const client = new AuditClient({ url: server.url, spoolDir: dir, onError: (e) => errors.push(e) });
  try {
    const damaged = errors.filter((e) => e instanceof SpoolDamagedError);
    assert.equal(damaged.length, 1, errors.map(String).join("\n"));
    assert.equal(damaged[0].offset, off);
    assert.match(damaged[0].message, /CRC mismatch/);
    const kept = path.join(dir, "damaged", path.basename(seg));
    assert.equal(damaged[0].movedTo, kept);
    assert.ok(fs.readFileSync(kept).equals(buf), "the damaged segment is kept byte for byte");
    assert.equal(await client.flush(30_000), true);
    const archived = (await queryAll(server.url, "damaged", ["test.spool"])).map((e) => e.event.id);
    assert.deepEqual(archived.sort(), ids.slice(0, 20).sort(), "the 20 valid events before the damage");
  } finally {
    await client.close(5_000);
    await server.stop();
  }
});

test("two clients on one spool directory: the second gets a clear error naming the owner", async () => {
  const dir = tmpDir("lock");
  const url = `http://127.0.0.1:${await freePort()}`;
  const first = new AuditClient({ url, spoolDir: dir, onError: () => {} });
  try {
    assert.equal(fs.readFileSync(path.join(dir, "lock"), "utf8"), `${process.pid} ${os.hostname()}\n`);
    assert.throws(
      () => new AuditClient({ url, spoolDir: dir }),
      (e) => e instanceof SpoolLockedError && e.pid === process.pid && e.message.includes(dir),
    );
    // Another process gets the same answer.
    const script = `import { AuditClient } from ${JSON.stringify(path.resolve("dist/index.js"))};
      try { new AuditClient({ url: ${JSON.stringify(url)}, spoolDir: ${JSON.stringify(dir)} }); console.log("opened"); }
      catch (e) { console.log(e.code + " " + e.message); }`;
    const other = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    assert.match(other.stdout, new RegExp(`^SPOOL_LOCKED spool directory ${dir} is owned by pid ${process.pid} `));
  } finally {
    await first.close(50);
  }
  assert.ok(!fs.existsSync(path.join(dir, "lock")), "close() releases the lock");
  const again = new AuditClient({ url, spoolDir: dir, onError: () => {} });
  await again.close(50);
});

test("a lock left by a dead process is taken over", async () => {
  const dir = tmpDir("stale");
  const dead = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  fs.writeFileSync(path.join(dir, "lock"), `${dead.stdout.trim()} ${os.hostname()}\n`);
  const infos = [];
  const client = new AuditClient({ url: `http://127.0.0.1:${await freePort()}`, spoolDir: dir, logger: { info: (m) => infos.push(m) } });
  assert.equal(fs.readFileSync(path.join(dir, "lock"), "utf8"), `${process.pid} ${os.hostname()}\n`);
  assert.ok(infos.some((m) => m.includes(`stale spool lock of pid ${dead.stdout.trim()}`)));
  await client.close(50);
});
