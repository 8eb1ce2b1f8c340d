// The README's calls, type-checked against the published declarations (npm test runs `tsc -p tsconfig.examples.json`).
import {
  AuditClient,
  AuditRejectedError,
  SpoolFullError,
  withRequestContext,
  type AppendResult,
  type AuditEventInput,
  type ClientStats,
} from "@auditum/client";

export async function example(apiKey: string): Promise<void> {
  const client = new AuditClient({ url: "http://127.0.0.1:50051", apiKey, spoolDir: "/var/lib/app/auditum-spool", onFull: "block" });
  const event: AuditEventInput = {
    tenantId: "acme",
    action: "user.deleted",
    actor: { id: "u1", type: "user" },
    target: { type: "user", id: "u2" },
    outcome: "success",
    metadata: { ticket: 4411, tags: ["a", "b"], nested: { ok: true, none: null } },
  };
  const id: string = client.log(event);
  try {
    await client.logAsync(event);
  } catch (err) {
    if (!(err instanceof SpoolFullError)) throw err;
  }
  try {
    const result: AppendResult = await client.logDurable({ ...event, id });
    const seq: bigint = result.seq;
    void seq;
  } catch (err) {
    if (err instanceof AuditRejectedError) console.error(err.grpcCode, err.eventId);
  }
  await withRequestContext({ requestId: "req-1", sourceIp: "10.1.2.3" }, async () => client.log(event));
  const stats: ClientStats = client.stats();
  void stats;
  const flushed: boolean = await client.flush(10_000);
  void flushed;
  await client.close(10_000);
}
