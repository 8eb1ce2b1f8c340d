import { test } from "node:test";
import assert from "node:assert/strict";
import { AuditClient, DeliveryError } from "../dist/index.js";
import { apiKeysConfig, event, queryAll, segments, startServer, tmpDir } from "./helpers.mjs";

test("RESOURCE_EXHAUSTED: the server's retry-after is honoured and everything arrives once", async () => {
  const { file, secrets } = apiKeysConfig([
    { id: "limited", tenant: "rl", scopes: "append,query", extra: { rate_per_second: 400, burst: 200 } },
  ]);
  const server = await startServer({ extraArgs: ["--config", file] });
  const errors = [];
  const client = new AuditClient({
    url: server.url,
    apiKey: secrets.limited,
    spoolDir: tmpDir("rl-spool"),
    batchMaxEvents: 100,
    maxInFlight: 1, // one call at a time, so each refusal is followed by the pause it asked for
    onError: (e) => errors.push({ at: Date.now(), e }),
  });
  try {
    const ids = [];
    for (let n = 0; n < 1500; n++) ids.push(client.log(event("rl", "test.rl", n)));
    assert.equal(await client.flush(60_000), true);
    const limited = errors.filter(({ e }) => e instanceof DeliveryError && e.grpcCode === "RESOURCE_EXHAUSTED");
    assert.ok(limited.length > 0, "the key's rate limit was hit");
    for (const { e } of limited) {
      assert.ok(e.retrying && e.retryAfterMs > 0, e.message);
      assert.equal(e.retryInMs, e.retryAfterMs, "the pause is the server's hint");
    }
    // After a refusal the next call waits the hint out: refusals are at least that far apart.
    for (let i = 1; i < limited.length; i++) {
      assert.ok(limited[i].at - limited[i - 1].at >= limited[i - 1].e.retryAfterMs - 5);
    }
    const archived = (await queryAll(server.url, "rl", ["test.rl"], secrets.limited)).map((s) => s.event.id);
    assert.equal(new Set(archived).size, archived.length);
    assert.deepEqual(archived.sort(), ids.sort());
  } finally {
    await client.close(5_000);
    await server.stop();
  }
});

test("UNAUTHENTICATED stops delivery and keeps the events spooled for a client with a working key", async () => {
  const { file, secrets } = apiKeysConfig([{ id: "writer", tenant: "auth", scopes: "append,query" }]);
  const server = await startServer({ extraArgs: ["--config", file] });
  const spoolDir = tmpDir("auth-spool");
  const errors = [];
  const bad = new AuditClient({ url: server.url, apiKey: "writer.not-the-secret", spoolDir, onError: (e) => errors.push(e) });
  const ids = [];
  try {
    for (let n = 0; n < 50; n++) ids.push(bad.log(event("auth", "test.auth", n)));
    assert.equal(await bad.flush(10_000), false, "nothing can be delivered with a bad key");
    const stop = errors.find((e) => e instanceof DeliveryError && !e.retrying);
    assert.ok(stop, errors.map(String).join("\n"));
    assert.equal(stop.grpcCode, "UNAUTHENTICATED");
    assert.match(stop.message, /delivery stopped: .* 50 events stay in the spool/);
    assert.equal(bad.stats().queued, 50);
    assert.equal(await bad.close(1_000), false);
    assert.ok(segments(spoolDir).length > 0, "the events are still spooled");

    const good = new AuditClient({ url: server.url, apiKey: secrets.writer, spoolDir });
    assert.equal(await good.close(30_000), true);
    const archived = (await queryAll(server.url, "auth", ["test.auth"], secrets.writer)).map((s) => s.event.id);
    assert.deepEqual(archived.sort(), ids.sort());
  } finally {
    await bad.close(10);
    await server.stop();
  }
});
