import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { AuditClient, withRequestContext } from "../dist/index.js";
import { createApp } from "../examples/express.mjs";
import { event, queryAll, startServer } from "./helpers.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => server?.stop());

const pause = () => new Promise((r) => setTimeout(r, Math.random() * 15));

test("each concurrent request keeps its own context through awaits; explicit values win", async () => {
  const client = new AuditClient({ url: server.url, spoolDir: null });
  try {
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        withRequestContext({ requestId: `req-${i}`, sourceIp: `10.0.0.${i}`, actor: { id: `user-${i}`, type: "user" } }, async () => {
          await pause();
          client.log({ tenantId: "ctx", action: "test.ctx", outcome: "success", metadata: { req: i, step: 1 } });
          await pause();
          await withRequestContext({ sessionId: `sess-${i}` }, async () => {
            await pause();
            client.log({ tenantId: "ctx", action: "test.ctx", outcome: "success", metadata: { req: i, step: 2 } });
          });
          client.log({
            tenantId: "ctx",
            action: "test.ctx",
            outcome: "success",
            actor: { id: "explicit-actor", type: "service" },
            context: { requestId: "explicit" },
            metadata: { req: i, step: 3 },
          });
        }),
      ),
    );
    client.log(event("ctx", "test.ctx", 0, { metadata: { req: -1, step: 0 } })); // outside any context
    assert.equal(await client.flush(30_000), true);
    const archived = await queryAll(server.url, "ctx", ["test.ctx"]);
    assert.equal(archived.length, 121);
    for (const { event: e } of archived) {
      const { req, step } = e.metadata;
      if (req === -1) {
        assert.ok(!e.context?.requestId);
        continue;
      }
      assert.equal(e.context.sourceIp, `10.0.0.${req}`);
      assert.equal(e.context.requestId, step === 3 ? "explicit" : `req-${req}`);
      assert.equal(e.context.sessionId, step === 2 ? `sess-${req}` : "");
      assert.equal(e.actor.id, step === 3 ? "explicit-actor" : `user-${req}`);
    }
  } finally {
    await client.close(5_000);
  }
});

test("the Express middleware example sets the context of each of many concurrent requests", async () => {
  const client = new AuditClient({ url: server.url, spoolDir: null });
  const http = createApp(client).listen(0, "127.0.0.1");
  await new Promise((r) => http.once("listening", r));
  const base = `http://127.0.0.1:${http.address().port}`;
  try {
    const answers = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const res = await fetch(`${base}/users/u${i}`, {
          method: "DELETE",
          headers: { "x-request-id": `http-${i}`, "x-user": `admin-${i}`, "user-agent": `agent-${i}` },
        });
        assert.equal(res.status, 200);
        return { i, ...(await res.json()) };
      }),
    );
    assert.equal(await client.flush(30_000), true);
    const archived = new Map((await queryAll(server.url, "acme", ["user.deleted"])).map((s) => [s.event.id, s.event]));
    for (const { i, auditId } of answers) {
      const e = archived.get(auditId);
      assert.ok(e, `event ${auditId} of request ${i}`);
      assert.equal(e.context.requestId, `http-${i}`);
      assert.equal(e.context.userAgent, `agent-${i}`);
      assert.equal(e.context.sourceIp, "127.0.0.1");
      assert.equal(e.actor.id, `admin-${i}`);
      assert.equal(e.target.id, `u${i}`);
    }
  } finally {
    http.close();
    await client.close(5_000);
  }
});
