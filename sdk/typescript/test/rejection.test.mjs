import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { AuditClient, AuditRejectedError, AuditValidationError } from "../dist/index.js";
import { event, queryAll, startServer, tmpDir } from "./helpers.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => server?.stop());

test("events the server rejects go to dead_letter.jsonl with its message; the rest of the call is delivered", async () => {
  const dir = tmpDir("dead");
  const errors = [];
  const client = new AuditClient({ url: server.url, spoolDir: dir, skipLocalValidation: true, onError: (e) => errors.push(e), lingerMs: 50 });
  const ids = [];
  for (let n = 0; n < 10; n++) {
    if (n === 3) ids.push(client.log(event("dead", "User.Deleted", n)));
    else if (n === 7) ids.push(client.log(event("dead", "test.dead", n, { metadata: { n, blob: "x".repeat(70 * 1024) } })));
    else ids.push(client.log(event("dead", "test.dead", n)));
  }
  try {
    assert.equal(await client.flush(30_000), true);
    const lines = fs.readFileSync(path.join(dir, "dead_letter.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    const byId = new Map(lines.map((l) => [l.event.id, l]));
    const upper = byId.get(ids[3]);
    const big = byId.get(ids[7]);
    assert.ok(upper && big, JSON.stringify(lines).slice(0, 500));
    for (const l of [upper, big]) {
      assert.equal(l.code, "INVALID_ARGUMENT");
      assert.ok(!Number.isNaN(Date.parse(l.at)) && l.at.endsWith("Z"), l.at);
      assert.equal(l.event.tenantId, "dead");
    }
    assert.equal(upper.event.action, "User.Deleted");
    assert.match(upper.message, /events\[\d+\]\.action/);
    assert.match(big.message, /events\[\d+\]/);
    assert.match(big.message, /65536|64 KiB/);
    assert.equal(big.event.metadata.blob.length, 70 * 1024);
    const rejected = errors.filter((e) => e instanceof AuditRejectedError).map((e) => e.eventId).sort();
    assert.deepEqual(rejected, [ids[3], ids[7]].sort());
    assert.equal(client.stats().deadLettered, 2);
    assert.equal(client.stats().delivered, 8);
    const archived = (await queryAll(server.url, "dead")).map((e) => e.event.id).sort();
    assert.deepEqual(archived, ids.filter((_, i) => i !== 3 && i !== 7).sort());
  } finally {
    await client.close(5_000);
  }
});

test("logDurable returns seq, id and duplicate, and throws on a rejection", async () => {
  const client = new AuditClient({ url: server.url, spoolDir: null });
  const lax = new AuditClient({ url: server.url, spoolDir: null, skipLocalValidation: true });
  try {
    const first = await client.logDurable(event("durable", "user.login", 1));
    assert.equal(typeof first.seq, "bigint");
    assert.match(first.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(first.duplicate, false);
    assert.ok(first.receivedAt instanceof Date);
    const again = await client.logDurable(event("durable", "user.login", 1, { id: first.id }));
    assert.deepEqual([again.seq, again.id, again.duplicate], [first.seq, first.id, true]);
    const archived = await queryAll(server.url, "durable", ["user.login"]);
    assert.deepEqual(archived.map((e) => [e.event.id, e.seq]), [[first.id, first.seq]]);

    await assert.rejects(client.logDurable(event("durable", "User.Login", 2)), (e) => e instanceof AuditValidationError && e.field === "action");
    await assert.rejects(
      lax.logDurable(event("durable", "User.Login", 3)),
      (e) => e instanceof AuditRejectedError && e.grpcCode === "INVALID_ARGUMENT" && /events\[0\]\.action/.test(e.message),
    );
  } finally {
    await client.close(1_000);
    await lax.close(1_000);
  }
});
