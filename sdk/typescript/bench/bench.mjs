// npm run bench: events/s delivered from one Node process with the spool on, log() latency, spool bytes per event.
// Uses $AUDITUM_URL if set, else starts $AUDITUM_BIN on a free port. BENCH_EVENTS (default 200000) events.
// BENCH_CHUNK (default 200): log() calls per event-loop turn.
import { PerformanceObserver } from "node:perf_hooks";
import { freePort, startServer, tmpDir } from "../test/helpers.mjs";
import { AuditClient } from "../dist/index.js";

const N = Number(process.env.BENCH_EVENTS ?? 200_000);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 200); // events per event-loop turn, as a busy service would log between I/O
const event = (i) => ({
  tenantId: "bench",
  action: "user.role.updated",
  actor: { id: `user-${i % 1000}`, type: "user", name: "Ada Lovelace" },
  target: { type: "user", id: `user-${(i * 7) % 1000}` },
  outcome: "success",
  context: { requestId: `req-${i}`, sourceIp: "10.1.2.3", userAgent: "bench/1.0" },
  before: { role: "viewer" },
  after: { role: "admin" },
  metadata: { ticket: 4411, n: i },
});

// Spool bytes per event: log into a spool nobody drains.
const sizing = new AuditClient({ url: `http://127.0.0.1:${await freePort()}`, spoolDir: tmpDir("bench-size"), onError: () => {} });
for (let i = 0; i < 10_000; i++) sizing.log(event(i));
const bytesPerEvent = sizing.stats().spoolBytes / 10_000;
await sizing.close(10);

const server = process.env.AUDITUM_URL ? null : await startServer();
const url = process.env.AUDITUM_URL ?? server.url;
const client = new AuditClient({ url, spoolDir: tmpDir("bench-spool"), spoolFsync: process.env.BENCH_FSYNC ?? "batch", onError: (e) => console.error(e.message) });
// Warm up (JIT, connection) outside the measurement.
for (let i = 0; i < 5_000; i++) client.log(event(i));
await client.flush(60_000);

// GC pauses of the measured run: a count that a busy machine disturbs less than the latency percentiles.
const gc = { n: 0, ms: 0, max: 0 };
const countGc = (entries) => {
  for (const e of entries) {
    gc.n++;
    gc.ms += e.duration;
    gc.max = Math.max(gc.max, e.duration);
  }
};
const gcObserver = new PerformanceObserver((list) => countGc(list.getEntries()));
gcObserver.observe({ entryTypes: ["gc"] });

const lat = new Float64Array(N);
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  const e = event(i); // the caller's work, outside the measured call
  const a = process.hrtime.bigint();
  client.log(e);
  lat[i] = Number(process.hrtime.bigint() - a) / 1000;
  if (i % CHUNK === CHUNK - 1) await new Promise((r) => setImmediate(r));
}
const loggedAt = process.hrtime.bigint();
const ok = await client.flush(600_000);
const t1 = process.hrtime.bigint();
const cpu = process.cpuUsage(cpu0);
countGc(gcObserver.takeRecords());
gcObserver.disconnect();
const cpuPerEvent = (cpu.user + cpu.system) / N; // µs of this process's CPU (all threads) per event
const secs = Number(t1 - t0) / 1e9;
lat.sort();
const q = (p) => lat[Math.min(N - 1, Math.floor(N * p))].toFixed(1);
console.log(`events:               ${N} (${ok ? "all acknowledged" : "NOT all acknowledged"})`);
console.log(`delivered:            ${Math.round(N / secs)} events/s (${secs.toFixed(2)} s from the first log() to the last ack)`);
console.log(`logged:               ${Math.round(N / (Number(loggedAt - t0) / 1e9))} events/s`);
console.log(`log() latency:        p50 ${q(0.5)} µs, p99 ${q(0.99)} µs, p99.9 ${q(0.999)} µs, max ${lat[N - 1].toFixed(0)} µs`);
console.log(`GC pauses:            ${gc.n} (${gc.ms.toFixed(0)} ms in all, longest ${gc.max.toFixed(1)} ms)`);
console.log(`spool bytes/event:    ${bytesPerEvent.toFixed(1)}`);
console.log(`client CPU/event:     ${cpuPerEvent.toFixed(1)} µs (log() + spool + delivery; ${Math.round(1e6 / cpuPerEvent)} events/s per core)`);
console.log(`stats:                ${JSON.stringify(client.stats())}`);
await client.close(10_000);
await server?.stop();
