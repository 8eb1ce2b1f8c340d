// Express middleware that sets the auditum request context once per request; every client.log() inside the request
// (however deep, across awaits) picks it up. Run: AUDITUM_URL=http://127.0.0.1:50051 node examples/express.mjs
import { randomUUID } from "node:crypto";
import express from "express";
import { AuditClient, withRequestContext } from "@auditum/client";

/** Sets requestId (the caller's x-request-id, or a new one), correlationId, sourceIp and userAgent. */
export function auditContext() {
  return (req, res, next) =>
    withRequestContext(
      {
        requestId: req.get("x-request-id") ?? randomUUID(),
        correlationId: req.get("traceparent")?.split("-")[1],
        sourceIp: req.ip,
        userAgent: req.get("user-agent"),
      },
      next,
    );
}

export function createApp(client) {
  const app = express();
  app.use(auditContext());
  // Authentication would go here; once it knows the user it adds the actor to the context (nested contexts merge).
  app.use((req, res, next) => {
    const user = req.get("x-user");
    if (!user) return next();
    withRequestContext({ actor: { id: user, type: "user" } }, next);
  });
  app.delete("/users/:id", async (req, res) => {
    await deleteUser(req.params.id);
    const auditId = client.log({
      tenantId: "acme",
      action: "user.deleted",
      target: { type: "user", id: req.params.id },
      outcome: "success",
    });
    res.json({ auditId });
  });
  return app;
}

async function deleteUser() {
  // Stands in for the database call: the context survives the await.
  await new Promise((r) => setTimeout(r, Math.random() * 20));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const client = new AuditClient({ url: process.env.AUDITUM_URL ?? "http://127.0.0.1:50051", spoolDir: "./auditum-spool" });
  const server = createApp(client).listen(3000, () => console.log("listening on http://127.0.0.1:3000"));
  process.on("SIGTERM", () => server.close(async () => process.exit((await client.close(10_000)) ? 0 : 1)));
}
