import { test } from "node:test";
import assert from "node:assert/strict";
import { AuditClient, DeliveryError } from "../dist/index.js";
import { event, freePort, queryAll, startServer, tmpDir, waitFor } from "./helpers.mjs";

test("server stopped for 30 s while logging continues: everything arrives once, log() never blocks", async () => {
  const port = await freePort();
  const dataDir = tmpDir("outage-data");
  let server = await startServer({ port, dataDir });
  const errors = [];
  const client = new AuditClient({
    url: server.url,
    spoolDir: tmpDir("outage-spool"),
    spoolMemoryBytes: 256 * 1024, // most of the backlog waits on disk only and is read back when sent
    onError: (e) => errors.push(e),
  });
  const ids = [];
  const took = [];
  let n = 0;
  const logSome = (count) => {
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      ids.push(client.log(event("outage", "test.outage", n++)));
      took.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  // ~500 events/s, in small bursts, like a busy service.
  const producer = setInterval(() => logSome(10), 20);
  try {
    await waitFor("events delivered before the outage", () => client.stats().delivered >= 1000);
    await server.stop("SIGKILL");
    const downAt = Date.now();
    const loggedAtStop = ids.length;
    const errorsAtStop = errors.length;
    // README: a DeliveryError (retrying: true) for the failed call, then one per waiting window (from 1 s) without a
    // connection; checked early, so a report that only comes when a stuck call times out (30 s) fails here.
    const retryReported = () =>
      errors.slice(errorsAtStop).some((e) => e instanceof DeliveryError && e.code === "DELIVERY_FAILED" && e.retrying === true);
    await new Promise((r) => setTimeout(r, 5_000));
    assert.ok(retryReported(), "the outage is reported (retrying) within 5 s");
    await new Promise((r) => setTimeout(r, 25_000));
    assert.ok(ids.length - loggedAtStop >= 10_000, `kept logging during the outage (${ids.length - loggedAtStop})`);
    assert.ok(client.stats().queued > 5_000, "events wait in the spool while the server is down");
    assert.ok(retryReported(), "retries are reported");
    server = await startServer({ port, dataDir });
    const upAt = Date.now();
    await new Promise((r) => setTimeout(r, 3_000));
    clearInterval(producer);
    assert.equal(await client.flush(60_000), true, "everything logged is acknowledged after the restart");
    const recovered = Date.now() - upAt;
    took.sort((a, b) => a - b);
    const p99 = took[Math.floor(took.length * 0.99)];
    const worst = took[took.length - 1];
    console.log(
      `outage ${upAt - downAt} ms, backlog delivered ${recovered} ms after the restart; ` +
        `log() p99 ${(p99 * 1000).toFixed(0)} µs, worst ${worst.toFixed(2)} ms over ${took.length} calls`,
    );
    const stats = client.stats();
    assert.equal(stats.logged, ids.length);
    assert.equal(stats.queued, 0);
    // log() never waits for the network (the spool had room): its cost is a write() to the spool, whatever the
    // server does. The bound on the worst call leaves room for a GC pause on a loaded machine, not for a wait on
    // a 30-second outage.
    assert.ok(p99 < 2, `log() p99 ${p99} ms`);
    assert.ok(worst < 100, `log() took ${worst} ms at worst`);

    const archived = await queryAll(server.url, "outage", ["test.outage"]);
    const archivedIds = archived.map((e) => e.event.id);
    assert.equal(new Set(archivedIds).size, archivedIds.length, "nothing is in the archive twice");
    assert.deepEqual(new Set(archivedIds), new Set(ids), "everything logged arrived, and nothing else");
  } finally {
    clearInterval(producer);
    await client.close(5_000);
    await server.stop();
  }
});
