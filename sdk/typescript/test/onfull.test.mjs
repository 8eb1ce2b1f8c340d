import { test } from "node:test";
import assert from "node:assert/strict";
import { AuditClient, EventDroppedError, SpoolFullError } from "../dist/index.js";
import { event, freePort, queryAll, startServer, tmpDir } from "./helpers.mjs";

const SMALL = 128 * 1024;

/** A client whose server is not up yet (a free port nobody listens on), with a small spool. */
async function offlineClient(onFull, extra = {}) {
  const port = await freePort();
  const errors = [];
  const client = new AuditClient({
    url: `http://127.0.0.1:${port}`,
    spoolDir: tmpDir(`onfull-${onFull}`),
    spoolMaxBytes: SMALL,
    onFull,
    onError: (e) => errors.push(e),
    ...extra,
  });
  return { client, port, errors };
}

/** Logs until log() refuses or drops; returns the ids it accepted. */
function fill(client, tenant, errors) {
  const ids = [];
  for (let n = 0; n < 100_000; n++) {
    const before = errors.filter((e) => e instanceof EventDroppedError).length;
    let id;
    try {
      id = client.log(event(tenant, "test.full", n));
    } catch (err) {
      return { ids, err };
    }
    if (errors.filter((e) => e instanceof EventDroppedError).length > before) return { ids, droppedId: id };
    ids.push(id);
  }
  throw new Error("the spool never filled");
}

test("onFull raise: log() throws SpoolFullError at the bound; what was accepted is delivered", async () => {
  const { client, port } = await offlineClient("raise");
  const { ids, err } = fill(client, "full-raise", []);
  assert.ok(err instanceof SpoolFullError, String(err));
  assert.match(err.message, /spool is full .* of spoolMaxBytes 131072 bytes/);
  assert.ok(client.stats().spoolBytes <= SMALL);
  assert.ok(ids.length > 100);
  assert.throws(() => client.log(event("full-raise", "test.full", -1)), SpoolFullError, "still full");
  const server = await startServer({ port });
  try {
    assert.equal(await client.flush(60_000), true);
    ids.push(client.log(event("full-raise", "test.full", ids.length)));
    assert.equal(await client.flush(10_000), true);
    const archived = (await queryAll(server.url, "full-raise", ["test.full"])).map((e) => e.event.id);
    assert.deepEqual(archived.sort(), ids.sort());
  } finally {
    await client.close(5_000);
    await server.stop();
  }
});

test("onFull drop: events beyond the bound are counted and reported, never silently lost", async () => {
  const { client, port, errors } = await offlineClient("drop");
  const { ids, droppedId } = fill(client, "full-drop", errors);
  assert.ok(droppedId, "an event was dropped");
  for (let i = 0; i < 9; i++) client.log(event("full-drop", "test.full", -1));
  const dropped = errors.filter((e) => e instanceof EventDroppedError);
  assert.equal(dropped.length, 10);
  assert.equal(dropped[0].eventId, droppedId);
  assert.match(dropped[0].message, /dropped: the spool is full/);
  assert.equal(client.stats().dropped, 10);
  assert.equal(client.stats().logged, ids.length);
  const server = await startServer({ port });
  try {
    assert.equal(await client.flush(60_000), true);
    const archived = (await queryAll(server.url, "full-drop", ["test.full"])).map((e) => e.event.id);
    assert.deepEqual(archived.sort(), ids.sort(), "exactly the accepted events arrive");
  } finally {
    await client.close(5_000);
    await server.stop();
  }
});

test("onFull block: log() refuses at once (it cannot wait); logAsync() waits blockTimeoutMs, then throws", async () => {
  const { client } = await offlineClient("block", { blockTimeoutMs: 1_000 });
  try {
    const { err } = fill(client, "full-block", []);
    assert.ok(err instanceof SpoolFullError);
    assert.match(err.message, /log\(\) cannot wait .* logAsync/);
    const t0 = Date.now();
    await assert.rejects(client.logAsync(event("full-block", "test.full", -1)), SpoolFullError);
    const waited = Date.now() - t0;
    assert.ok(waited >= 990 && waited < 3_000, `logAsync waited ${waited} ms for a 1000 ms blockTimeoutMs`);
  } finally {
    await client.close(100);
  }
});

test("onFull block: a waiting logAsync() is admitted as soon as delivery frees room", async () => {
  const { client, port } = await offlineClient("block", { blockTimeoutMs: 60_000 });
  const { ids } = fill(client, "full-block2", []);
  let admittedAt = 0;
  const waiting = client.logAsync(event("full-block2", "test.full", ids.length)).then((id) => ((admittedAt = Date.now()), id));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(admittedAt, 0, "still waiting while the server is down");
  const startedAt = Date.now();
  const server = await startServer({ port });
  try {
    ids.push(await waiting);
    assert.ok(admittedAt >= startedAt);
    assert.equal(await client.flush(60_000), true);
    const archived = (await queryAll(server.url, "full-block2", ["test.full"])).map((e) => e.event.id);
    assert.deepEqual(archived.sort(), ids.sort());
  } finally {
    await client.close(5_000);
    await server.stop();
  }
});
