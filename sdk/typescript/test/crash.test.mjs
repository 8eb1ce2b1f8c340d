import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { queryAll, startServer, tmpDir, waitFor, segments } from "./helpers.mjs";

const producer = path.join(import.meta.dirname, "fixtures", "producer.mjs");

function run(args) {
  const proc = spawn(process.execPath, [producer, ...args], { stdio: ["ignore", "pipe", "pipe"] });
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
  try {
    const first = run([server.url, spool, "20000", idsFile]);
    const lines = () => (fs.existsSync(idsFile) ? fs.readFileSync(idsFile, "utf8").split("\n").length - 1 : 0);
    await waitFor("8000 events logged", () => lines() >= 8000 || first.proc.exitCode !== null, 60_000, 5);
    first.proc.kill("SIGKILL");
    const killed = await first.done;
    assert.equal(killed.signal, "SIGKILL", `the producer finished before the kill: ${killed.out}${killed.err}`);

    const reported = fs.readFileSync(idsFile, "utf8").split("\n").filter(Boolean);
    assert.ok(reported.length >= 8000 && reported.length < 20000, `killed mid-stream (${reported.length} ids)`);
    assert.ok(segments(spool).length > 0, "the spool holds undelivered events after the kill");
    // The second process takes over the stale lock, resends what has no ack, and finishes.
    const second = await run([server.url, spool, "0", ""]).done;
    assert.equal(second.code, 0, second.err);
    const stats = JSON.parse(second.out.trim().split("\n").pop());
    assert.equal(stats.flushed, true, "the second process delivered everything");
    assert.equal(stats.queued, 0);
    assert.deepEqual(segments(spool), [], "every segment was acknowledged and deleted");

    const archived = await queryAll(server.url, "crash", ["test.crash"]);
    const ids = archived.map((e) => e.event.id);
    assert.equal(new Set(ids).size, ids.length, "no event is in the archive twice");
    const archivedSet = new Set(ids);
    const missing = reported.filter((id) => !archivedSet.has(id));
    assert.deepEqual(missing, [], "every id log() returned is in the archive");
    // None other: the only event allowed beyond the reported ids is the one whose log() had returned but whose id
    // line the kill prevented from being written (the next n).
    const reportedSet = new Set(reported);
    const extra = archived.filter((e) => !reportedSet.has(e.event.id));
    assert.ok(extra.length <= 1, `unexpected events in the archive: ${extra.length}`);
    for (const e of extra) assert.equal(e.event.metadata.n, reported.length);
    // And the events carry what was logged: n = position in the stream.
    const byId = new Map(archived.map((e) => [e.event.id, e.event.metadata.n]));
    reported.forEach((id, i) => assert.equal(byId.get(id), i));
  } finally {
    await server.stop();
  }
});
