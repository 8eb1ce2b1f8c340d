import { test } from "node:test";
import assert from "node:assert/strict";
import { AuditClient, AuditValidationError, ClientClosedError } from "../dist/index.js";
import { freePort, tmpDir } from "./helpers.mjs";

const base = { tenantId: "acme", action: "user.deleted", actor: { id: "u1", type: "user" }, outcome: "success" };

test("log() checks events locally and names the field and the limit", async () => {
  const client = new AuditClient({ url: `http://127.0.0.1:${await freePort()}`, spoolDir: tmpDir("val"), onError: () => {} });
  const bad = (patch, field, message) =>
    assert.throws(
      () => client.log({ ...base, ...patch }),
      (e) => e instanceof AuditValidationError && e.field === field && message.test(e.message),
      `${field}: ${JSON.stringify(patch).slice(0, 80)}`,
    );
  try {
    bad({ tenantId: "" }, "tenant_id", /required/);
    bad({ tenantId: "a b" }, "tenant_id", /\[A-Za-z0-9._:-\]\+/);
    bad({ tenantId: "t".repeat(129) }, "tenant_id", /129 bytes, over the limit of 128/);
    bad({ action: "User.Deleted" }, "action", /lowercase/);
    bad({ action: "a".repeat(129) }, "action", /over the limit of 128/);
    bad({ actor: undefined }, "actor.id", /required/);
    bad({ actor: { id: "é".repeat(129) } }, "actor.id", /258 bytes, over the limit of 256/);
    bad({ actor: { id: "u", type: "robot" } }, "actor.type", /one of user, service/);
    bad({ outcome: "maybe" }, "outcome.result", /success, failure, denied/);
    bad({ context: { sourceIp: "10.0.0.300" } }, "context.source_ip", /IPv4 or IPv6/);
    bad({ id: "i".repeat(129) }, "id", /over the limit of 128/);
    bad({ occurredAt: Date.now() + 10 * 60_000 }, "occurred_at", /in the future, over the limit of 300 s/);
    bad({ occurredAt: "yesterday" }, "occurred_at", /not a valid time/);
    bad({ metadata: { big: "x".repeat(70_000) } }, "event", /over the limit of 65536/);
    bad({ metadata: { when: new Date() } }, "metadata.when", /Date: only JSON values/);
    bad({ metadata: { n: NaN } }, "metadata.n", /finite number/);
    let deep = {};
    const root = deep;
    for (let i = 0; i < 40; i++) deep = deep.x = {};
    bad({ metadata: root }, "metadata" + ".x".repeat(32), /deeper than the limit of 32/);
    assert.equal(client.stats().logged, 0, "nothing invalid was spooled");
    // undefined members are dropped as JSON does; explicit ids and times are kept.
    const id = client.log({ ...base, id: "my-id-1", occurredAt: "2024-05-01T10:00:00.123456Z", metadata: { a: undefined, b: 1 } });
    assert.equal(id, "my-id-1");
  } finally {
    await client.close(10);
  }
  assert.throws(() => client.log(base), ClientClosedError);
});

test("options are checked", () => {
  assert.throws(() => new AuditClient({ url: "ftp://x" }), /url: expected http:\/\/host:port/);
  assert.throws(() => new AuditClient({ url: "http://127.0.0.1:1", spoolDir: null, onFull: "wait" }), /onFull/);
  assert.throws(() => new AuditClient({ url: "http://127.0.0.1:1", spoolDir: null, batchMaxEvents: 5000 }), /batchMaxEvents: expected a number from 1 to 1000/);
});
