import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { queryAll, startServer, tmpDir, waitFor, segments } from "./helpers.mjs";

const producer = path.join(import.meta.dirname, "fixtures", "producer.mjs");

function run(args, env = {}) {
  const proc = spawn(process.execPath, [producer, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (err += d));
  const done = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal, out, err })));
  return { proc, done };
}

test("a producer kill -9'd mid-stream: a new process on the spool finishes, every returned id is archived exactly once", async () => {
  const server = await startServer();
  const spool = tmpDir("crash-spool");
  const idsFile = path.join(tmpDir("crash-ids"), "ids.txt");
  const idsFile2 = path.join(tmpDir("crash-ids"), "ids2.txt");
  const read = (f) => fs.readFileSync(f, "utf8").split("\n").filter(Boolean);
  try {
    const first = run([server.url, spool, "0", "20000", idsFile]);
    const lines = () => (fs.existsSync(idsFile) ? fs.readFileSync(idsFile, "utf8").split("\n").length - 1 : 0);
    await waitFor("8000 events logged", () => lines() >= 8000 || first.proc.exitCode !== null, 60_000, 5);
    first.proc.kill("SIGKILL");
    const killed = await first.done;
    assert.equal(killed.signal, "SIGKILL", `the producer finished before the kill: ${killed.out}${killed.err}`);

    const reported = read(idsFile);
    assert.ok(reported.length >= 8000 && reported.length < 20000, `killed mid-stream (${reported.length} ids)`);
    assert.ok(segments(spool).length > 0, "the spool holds undelivered events after the kill");
    // The second process takes over the stale lock, resends what has no ack, and finishes the stream (skipping the
    // n whose log() may have returned without its id reaching the file).
    // It keeps only 64 KiB of the backlog in memory: the rest is read back from the spool when sent.
    const second = await run([server.url, spool, String(reported.length + 1), "20000", idsFile2], { SPOOL_MEMORY_BYTES: "65536" }).done;
    assert.equal(second.code, 0, second.err);
    const stats = JSON.parse(second.out.trim().split("\n").pop());
    console.log(`killed after ${reported.length} ids; the second process delivered ${stats.delivered} (${stats.duplicates} duplicates)`);
    assert.equal(stats.flushed, true, "the second process delivered everything");
    assert.equal(stats.queued, 0);
    assert.deepEqual(segments(spool), [], "every segment was acknowledged and deleted");

    const killedAt = reported.length;
    const finished = read(idsFile2);
    assert.equal(finished.length, 20000 - killedAt - 1, "the second process logged the rest of the stream");
    const returned = [...reported, ...finished];

    const archived = await queryAll(server.url, "crash", ["test.crash"]);
    const ids = archived.map((e) => e.event.id);
    assert.equal(new Set(ids).size, ids.length, "no event is in the archive twice");
    const archivedSet = new Set(ids);
    assert.deepEqual(returned.filter((id) => !archivedSet.has(id)), [], "every id log() returned is in the archive");
    // None other: the only event allowed beyond the returned ids is the one whose log() had returned but whose id
    // line the kill prevented from being written (n = killedAt).
    const returnedSet = new Set(returned);
    const extra = archived.filter((e) => !returnedSet.has(e.event.id));
    assert.ok(extra.length <= 1, `unexpected events in the archive: ${extra.length}`);
    for (const e of extra) assert.equal(e.event.metadata.n, killedAt);
    // And each archived event is the one logged with that id: n = its position in the stream.
    const nById = new Map(archived.map((e) => [e.event.id, e.event.metadata.n]));
    returned.forEach((id, i) => assert.equal(nById.get(id), i < killedAt ? i : i + 1));
  } finally {
    await server.stop();
  }
});
