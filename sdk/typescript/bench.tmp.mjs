import { AuditClient } from "./dist/index.js";
import * as fs from "node:fs";
fs.rmSync("/tmp/spb", { recursive: true, force: true });
const c = new AuditClient({ url: "http://127.0.0.1:50999", spoolDir: "/tmp/spb" });
const N = 100000; const t0 = Date.now();
for (let i = 0; i < N; i++) { c.log({ tenantId: "b", action: "a.b", actor: { id: "u" }, outcome: "success", metadata: { i } }); if (i % 200 === 199) await new Promise((r) => setImmediate(r)); }
console.log("logged", Date.now() - t0);
console.log(await c.flush(60000), Date.now() - t0, c.stats(), fs.readdirSync("/tmp/spb"));
await c.close();
