// Test harness: the real auditum binary ($AUDITUM_BIN), free ports, temp dirs, and a Query pager.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Transport } from "../dist/transport.js";
import { QueryRequestSchema, QueryResponseSchema } from "../dist/gen/auditum/v1/query_pb.js";

export function auditumBin() {
  const bin = process.env.AUDITUM_BIN;
  if (!bin) throw new Error("AUDITUM_BIN is not set: point it at the auditum server binary (e.g. /work/bin/auditum)");
  if (!fs.existsSync(bin)) throw new Error(`AUDITUM_BIN=${bin} does not exist`);
  return bin;
}

// Every test file runs in its own process: its temp dirs go when it exits, unless a test failed
// (their spools and server data are then kept to look at) or AUDITUM_KEEP_TMP is set.
const createdDirs = [];
process.on("exit", (code) => {
  if (process.env.AUDITUM_KEEP_TMP || code !== 0 || (process.exitCode ?? 0) !== 0) return;
  for (const dir of createdDirs) fs.rmSync(dir, { recursive: true, force: true });
});

export function tmpDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `auditum-ts-${prefix}-`));
  createdDirs.push(dir);
  return dir;
}

export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts `auditum serve` on a given (or free) port and resolves once it prints that it listens. */
export async function startServer({ port, dataDir, extraArgs = [] } = {}) {
  port ??= await freePort();
  dataDir ??= tmpDir("data");
  const proc = spawn(
    auditumBin(),
    ["serve", "--listen", `127.0.0.1:${port}`, "--metrics-listen", "127.0.0.1:0", "--http-listen", "", "--data-dir", dataDir, "--seal-interval", "1s", ...extraArgs],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  proc.stderr.on("data", (d) => {
    err += d;
    if (err.length > 20000) err = err.slice(-10000);
  });
  await new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d;
      if (/auditum listening on 127\.0\.0\.1:\d+/.test(out)) {
        proc.stdout.off("data", onData);
        proc.stdout.resume();
        resolve();
      }
    };
    proc.stdout.on("data", onData);
    proc.once("exit", (code) => reject(new Error(`auditum exited with ${code} before listening:\n${out}\n${err}`)));
  });
  const exited = new Promise((r) => proc.once("exit", r));
  return {
    port,
    dataDir,
    url: `http://127.0.0.1:${port}`,
    proc,
    stderr: () => err,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

/** Every stored event of a tenant (optionally only some actions), paging with page_token; ignores meta-audit. */
export async function queryAll(url, tenantId, actions = [], apiKey = undefined) {
  const t = new Transport(url, { apiKey });
  const events = [];
  let pageToken = "";
  try {
    do {
      const req = create(QueryRequestSchema, { filter: { tenantId, actions }, pageSize: 1000, pageToken });
      const resp = fromBinary(
        QueryResponseSchema,
        await t.unary("/auditum.v1.QueryService/Query", Buffer.from(toBinary(QueryRequestSchema, req)), 30_000, true),
      );
      events.push(...resp.events.filter((e) => !e.event.action.startsWith("auditum.")));
      pageToken = resp.nextPageToken;
    } while (pageToken);
  } finally {
    t.close();
  }
  return events;
}

/** Polls `check` until it returns a truthy value (returned) or the timeout passes (throws with `what`). */
export async function waitFor(what, check, timeoutMs = 30_000, everyMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function event(tenantId, action, n, extra = {}) {
  return { tenantId, action, actor: { id: `user-${n}`, type: "user" }, outcome: "success", metadata: { n }, ...extra };
}

/** Segment files of a spool directory, sorted. */
export function segments(dir) {
  return fs.readdirSync(dir).filter((n) => n.startsWith("segment-")).sort().map((n) => path.join(dir, n));
}

/** Writes a server config with API keys made by `auditum keygen`; returns its path and each key's secret by id. */
export function apiKeysConfig(keys) {
  const dir = tmpDir("keys");
  const secrets = {};
  let toml = "";
  for (const k of keys) {
    const out = execFileSync(auditumBin(), ["keygen", "api-key", "--id", k.id, "--tenant", k.tenant, "--scope", k.scopes], {
      encoding: "utf8",
    });
    secrets[k.id] = out.split("\n").find((l) => l.startsWith(`${k.id}.`)).trim();
    toml += out.slice(out.indexOf("[[api_keys]]")).trim() + "\n";
    for (const [name, value] of Object.entries(k.extra ?? {})) toml += `${name} = ${value}\n`;
  }
  const file = path.join(dir, "auditum.toml");
  fs.writeFileSync(file, toml);
  return { file, secrets };
}
