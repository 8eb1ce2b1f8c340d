// End-to-end tests of the web console: the real auditum binary ($AUDITUM_BIN, default
// ../target/debug/auditum) serves the console and the JSON API; playwright-core drives the
// system Chromium (/usr/bin/chromium, or $CHROMIUM), headless.
//
// Data: tenants acme and globex, several actors, three sealed batches (the server is stopped
// gracefully, which seals, between rounds) and a round of unsealed events.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const execFileP = promisify(execFile);
const BIN = path.resolve(process.env.AUDITUM_BIN || fileURLToPath(new URL("../../target/debug/auditum", import.meta.url)));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const DOCS = new URL("../../docs/", import.meta.url);
const TIMEOUT = 20_000;
/** AUDITUM_CONSOLE_FROM_DISK=1: serve console/src from disk (while the binary embeds an older copy). */
const FROM_DISK = process.env.AUDITUM_CONSOLE_FROM_DISK === "1";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "auditum-console-"));
const dataDir = path.join(tmp, "data");

// ------------------------------------------------------------------ server

function writeConfig() {
  const keys = [
    { id: "reader-a", tenant: "acme", scopes: "query,proof,export" },
    { id: "reader-b", tenant: "globex", scopes: "query,proof,export" },
    { id: "writer", tenant: "*", scopes: "append" },
  ];
  const secrets = {};
  let toml = "";
  for (const k of keys) {
    const out = execFileSync(BIN, ["keygen", "api-key", "--id", k.id, "--tenant", k.tenant, "--scope", k.scopes], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    secrets[k.id] = out.split("\n").find((l) => l.startsWith(`${k.id}.`)).trim();
    toml += out.slice(out.indexOf("[[api_keys]]")).trim() + "\n\n";
  }
  // Personal fields encrypted at rest (DESIGN §14): proofs then carry the stored ciphertext, which
  // the page must verify as is while it shows the decrypted values.
  const kek = path.join(tmp, "kek");
  execFileSync(BIN, ["keyring", "new-kek", "--out", kek], { stdio: "ignore" });
  const settings =
    `encrypt_fields = ["actor_name", "target_name", "reason", "user_agent", "before", "after", "metadata"]\n` +
    `keyring = "file://${path.join(tmp, "keyring")}"\nkek_file = "${kek}"\n\n`;
  const file = path.join(tmp, "auditum.toml");
  fs.writeFileSync(file, settings + toml);
  return { file, secrets };
}

/** Starts `auditum serve`; resolves with its gRPC and HTTP URLs once both are listening. */
async function startServer(config, dir = dataDir) {
  const proc = spawn(
    BIN,
    ["serve", ...(config ? ["--config", config] : []), "--data-dir", dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--seal-interval", "3600s", "--log-format", "text"],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1", RUST_LOG: process.env.RUST_LOG || "info" } },
  );
  let log = "";
  const exited = new Promise((r) => proc.once("exit", r));
  const urls = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`auditum did not report its listeners within 20 s:\n${log}`)), 20_000);
    const onData = (d) => {
      log += d;
      // eslint-disable-next-line no-control-regex
      const clean = log.replace(/\x1b\[[0-9;]*m/g, "");
      const grpc = /auditum listening on (127\.0\.0\.1:\d+)/.exec(clean);
      const http = clean.split("\n").map((l) => (/(https?:\/\/127\.0\.0\.1:\d+)(?!\/metrics)/.exec(l) && !/metrics/.test(l) ? /(https?:\/\/127\.0\.0\.1:\d+)/.exec(l)[1] : null)).find(Boolean);
      if (grpc && http) {
        clearTimeout(timer);
        resolve({ grpc: `http://${grpc[1]}`, http });
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`auditum exited with ${code} before listening:\n${log}`));
    });
  });
  return {
    ...urls,
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

// ------------------------------------------------------------------ data

const NOW = Date.now();
const HOUR = 3600e3;
const iso = (ms) => new Date(ms).toISOString();
/** The search window of the paging test: every appended event is inside it. */
const SINCE = iso(Math.floor((NOW - 30 * HOUR) / 1000) * 1000).replace(".000Z", "Z");
const UNTIL = iso(Math.floor((NOW + 2 * HOUR) / 1000) * 1000).replace(".000Z", "Z");

let counter = 0;
function ev(tenant, actor, action, extra = {}) {
  counter++;
  const at = extra.at ?? NOW - ((counter * 47) % 1300) * 60e3 - 60e3; // spread over the last ~22 h
  const outcome = extra.outcome ?? (counter % 7 === 0 ? "denied" : counter % 5 === 0 ? "failure" : "success");
  const e = {
    id: `e2e-${counter}`,
    tenant_id: tenant,
    occurred_at: iso(at),
    action,
    actor: { id: actor, type: actor.startsWith("svc") ? "service" : "user", name: actor === "alice" ? "Alice Liddell" : undefined },
    target: { type: "invoice", id: `inv-${counter % 6}` },
    outcome: { result: outcome, reason: outcome === "success" ? undefined : "card declined" },
    context: {
      request_id: `req-${Math.ceil(counter / 3)}`,
      session_id: `sess-${actor}`,
      correlation_id: `trace-${Math.ceil(counter / 4)}`,
      source_ip: "203.0.113.7",
      user_agent: "e2e/1.0",
      service: "billing",
    },
    metadata: { n: counter },
  };
  return Object.assign(e, extra.fields || {});
}

function round(r) {
  const events = [];
  for (let i = 0; i < 8; i++) events.push(ev("acme", "alice", i % 2 ? "invoice.paid" : "invoice.viewed"));
  events.push(
    ev("acme", "alice", "user.role.updated", {
      outcome: "success",
      fields: {
        target: { type: "user", id: `user-${r}`, name: "Bob" },
        before: { role: "viewer", legacy: true, profile: { team: "ops", tags: ["a", "b"] } },
        after: { role: "admin", mfa: true, profile: { team: "platform", tags: ["a", "b"] } },
      },
    }),
  );
  for (let i = 0; i < 4; i++) events.push(ev("acme", "bob", "user.login"));
  for (let i = 0; i < 3; i++) events.push(ev("acme", "svc-billing", "invoice.created"));
  for (let i = 0; i < 3; i++) events.push(ev("globex", "carol", "user.login"));
  return events;
}

async function append(server, key, events) {
  const file = path.join(tmp, `append-${counter}.jsonl`);
  fs.writeFileSync(file, events.map((e) => JSON.stringify(e)).join("\n") + "\n");
  await execFileP(BIN, ["append", "--server", server.grpc, ...(key ? ["--api-key", key] : []), "--file", file]);
}

async function cliQuery(server, key, args) {
  const { stdout } = await execFileP(BIN, ["query", "--server", server.grpc, "--api-key", key, "--json", "--limit", "100000", ...args], {
    maxBuffer: 64 << 20,
  });
  return stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

// ------------------------------------------------------------------ browser helpers

let server;
let secrets;
let context;
let page;
let vkey;
let roleSeq; // a sealed alice event with before/after
let unsealedSeq;

async function newPage(viewport = { width: 1280, height: 800 }) {
  const p = await context.newPage();
  await p.setViewportSize(viewport);
  p.setDefaultTimeout(TIMEOUT);
  p.on("pageerror", (e) => console.error("page error:", e.message));
  return p;
}

/** Development: the console's files from console/src, the API from the real server. */
async function routeFromDisk(ctx) {
  const isConsoleFile = (u) => u.hostname === "127.0.0.1" && (u.pathname === "/" || u.pathname.startsWith("/assets/"));
  await ctx.route(isConsoleFile, (route) => {
    const u = new URL(route.request().url());
    const name = u.pathname === "/" ? "index.html" : u.pathname.slice("/assets/".length);
    const file = new URL(`../src/${name}`, import.meta.url);
    if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: "no such file" });
    const type = { html: "text/html", js: "text/javascript", css: "text/css" }[name.split(".").pop()] || "application/octet-stream";
    return route.fulfill({ status: 200, contentType: `${type}; charset=utf-8`, body: fs.readFileSync(file) });
  });
}

async function signIn(p, key) {
  await p.goto(server.http + "/");
  await p.getByTestId("login-key").fill(key);
  await p.getByTestId("login-submit").click();
  await p.getByTestId("filter-tenant").waitFor({ state: "visible" });
}

/** Runs `action` (a navigation or a click) and waits for the search it starts to finish. */
async function searched(p, action) {
  await p.evaluate(() => (document.documentElement.dataset.search = "stale")).catch(() => {});
  await action();
  await p.waitForFunction(() => ["done", "error"].includes(document.documentElement.dataset.search));
}

const goSearch = (p, url) => searched(p, () => p.goto(url));

async function rowSeqs(p) {
  return p.$$eval('[data-testid="result-row"]', (rows) => rows.map((r) => r.dataset.seq));
}

/** Clicks load-more until it goes away; returns the number of clicks. */
async function loadAll(p) {
  let clicks = 0;
  while (await p.getByTestId("load-more").isVisible()) {
    await p.getByTestId("load-more").click();
    await p.waitForFunction(() => !document.getElementById("load-more").hasAttribute("aria-busy"));
    clicks++;
    assert.ok(clicks < 100, "load-more never ends");
  }
  return clicks;
}

async function openRow(p, seq) {
  await p.locator(`[data-testid="result-row"][data-seq="${seq}"]`).click();
  await p.getByTestId("event-detail").waitFor({ state: "visible" });
}

async function verifyStatus(p) {
  const status = p.getByTestId("verify-status");
  await p.waitForFunction(() => /verified|failed|not sealed/i.test(document.querySelector('[data-testid="verify-status"]').textContent));
  return (await status.textContent()).trim();
}

// ------------------------------------------------------------------ the tests

describe("auditum console", { timeout: 240_000 }, () => {
  before(async () => {
    assert.ok(fs.existsSync(BIN), `no auditum binary at ${BIN} (set AUDITUM_BIN)`);
    assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (set CHROMIUM)`);
    const config = writeConfig();
    secrets = config.secrets;
    // Three rounds, each sealed by a graceful stop, then a round left unsealed.
    for (let r = 1; r <= 3; r++) {
      const s = await startServer(config.file);
      await append(s, secrets.writer, round(r));
      await s.stop();
    }
    server = await startServer(config.file);
    await append(server, secrets.writer, [
      ev("acme", "alice", "invoice.viewed", { at: NOW - 5 * 60e3 }),
      ev("acme", "alice", "invoice.viewed", { at: NOW - 4 * 60e3 }),
      ev("acme", "alice", "invoice.paid", { at: NOW - 3 * 60e3 }),
      ev("acme", "bob", "user.logout", { at: NOW - 2 * 60e3 }),
    ]);
    vkey = fs.readFileSync(path.join(dataDir, "keys", "default.vkey"), "utf8").trim();
    // A fresh profile directory (playwright passes it as --user-data-dir).
    context = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, "chromium-")), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
      ],
      viewport: { width: 1280, height: 800 },
      acceptDownloads: true,
      colorScheme: "light",
      reducedMotion: "reduce",
    });
    if (FROM_DISK) await routeFromDisk(context);
    page = await newPage();
  });

  after(async () => {
    await context?.close();
    await server?.stop();
    if (!process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("the server reports itself and serves the console's files", async () => {
    const info = await (await fetch(server.http + "/api/v1/info")).json();
    assert.equal(info.developmentMode, false);
    const withKey = await (await fetch(server.http + "/api/v1/info", { headers: { authorization: `Bearer ${secrets["reader-a"]}` } })).json();
    assert.deepEqual({ id: withKey.key.id, tenant: withKey.key.tenant }, { id: "reader-a", tenant: "acme" });
    const bad = await fetch(server.http + "/api/v1/info", { headers: { authorization: "Bearer nope.nope" } });
    assert.equal(bad.status, 401);
    assert.equal((await bad.json()).code, "UNAUTHENTICATED");
    for (const f of FROM_DISK ? [] : ["index.html", "app.js", "verify.js", "diff.js", "chart.js", "style.css"]) {
      const r = await fetch(f === "index.html" ? `${server.http}/` : `${server.http}/assets/${f}`);
      assert.equal(r.status, 200, f);
      assert.equal(await r.text(), fs.readFileSync(new URL(`../src/${f}`, import.meta.url), "utf8"), `${f} is served byte for byte (rebuild the binary after changing console/src)`);
    }
  });

  test("a wrong key is refused at sign-in; the key never appears in the URL or localStorage", async () => {
    await page.goto(server.http + "/");
    await page.getByTestId("login-key").fill("reader-a.wrong");
    await page.getByTestId("login-submit").click();
    await page.locator("#login-error").waitFor({ state: "visible" });
    assert.match(await page.locator("#login-error").textContent(), /not accepted/);
    await searched(page, () => signIn(page, secrets["reader-a"]));
    assert.equal(await page.getByTestId("filter-tenant").inputValue(), "acme", "the tenant comes from the key");
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem("auditum.apiKey"), local: JSON.stringify(localStorage) }));
    assert.equal(stored.session, secrets["reader-a"]);
    assert.ok(!stored.local.includes(secrets["reader-a"]));
    assert.ok(!page.url().includes(secrets["reader-a"].split(".")[1]));
  });

  test("1. search by actor, load more until the end: the same events in the same order as the gRPC Query", async () => {
    // Through the form first: the URL captures the search.
    await page.getByTestId("filter-actor").fill("alice");
    await searched(page, () => page.getByTestId("search-submit").click());
    const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
    assert.equal(hash.get("actor"), "alice");
    assert.equal(hash.get("tenant"), "acme");
    assert.ok((await rowSeqs(page)).length > 0);

    // A shared link (here with a small page size) runs its search when opened.
    const url = `${server.http}/#tenant=acme&actor=alice&preset=custom&since=${SINCE}&until=${UNTIL}&size=4`;
    await goSearch(page, url);
    assert.equal(await page.getByTestId("filter-actor").inputValue(), "alice");
    assert.equal((await rowSeqs(page)).length, 4);
    const clicks = await loadAll(page);
    const ui = await rowSeqs(page);
    const cli = await cliQuery(server, secrets["reader-a"], ["--tenant", "acme", "--actor", "alice", "--since", SINCE, "--until", UNTIL, "--desc", "--page-size", "4"]);
    assert.equal(cli.length, 3 * 9 + 3, "3 sealed rounds of 9 alice events and 3 unsealed");
    assert.deepEqual(ui, cli.map((r) => String(r.seq)));
    assert.ok(clicks >= 7, `paged through ${clicks + 1} pages`);
    assert.ok(cli.some((r) => !r.sealed) && cli.some((r) => r.sealed), "sealed and unsealed events both listed");
    const batches = new Set(cli.filter((r) => r.sealed).map((r) => r.batch_index));
    assert.ok(batches.size >= 3, `alice's events span ${batches.size} sealed batches`);
    roleSeq = String(cli.find((r) => r.action === "user.role.updated" && r.sealed).seq);
    unsealedSeq = String(cli.find((r) => !r.sealed).seq);
    assert.equal(await page.locator(`[data-testid="result-row"][data-seq="${unsealedSeq}"]`).getByText("unsealed").count(), 1);
    // Ascending order too.
    await goSearch(page, url + "&order=asc");
    await loadAll(page);
    const asc = await cliQuery(server, secrets["reader-a"], ["--tenant", "acme", "--actor", "alice", "--since", SINCE, "--until", UNTIL]);
    assert.deepEqual(await rowSeqs(page), asc.map((r) => String(r.seq)));
  });

  test("2. an event's detail shows every column and the before/after diff", async () => {
    await openRow(page, roleSeq);
    const detail = page.getByTestId("event-detail");
    const cols = await detail.locator("#detail-cols dt").allTextContents();
    for (const c of ["seq", "id", "tenant_id", "occurred_at", "received_at", "action", "actor_id", "actor_type", "actor_name", "target_type",
      "target_id", "target_name", "outcome", "error_code", "reason", "request_id", "correlation_id", "session_id", "source_ip", "user_agent",
      "service", "before", "after", "metadata", "sealed", "batch_index", "leaf_hash", "log"]) {
      assert.ok(cols.includes(c), `column ${c} shown`);
    }
    const changes = await detail.locator(".diff-summary li").allTextContents();
    const text = changes.join("\n");
    assert.match(text, /role\s*"viewer" → "admin"/);
    assert.match(text, /profile\.team\s*"ops" → "platform"/);
    assert.match(text, /mfa\s*added true/);
    assert.match(text, /legacy\s*removed/);
    assert.ok(!/tags/.test(text), "unchanged nested values are not listed");
    assert.equal(await detail.locator(".diff-table tr.d-changed").count(), 2);
    assert.equal(await detail.locator(".diff-table tr.d-added").count(), 1);
    assert.equal(await detail.locator(".diff-table tr.d-removed").count(), 1);
  });

  test("3. a pinned verifier key verifies a sealed event in the page", async () => {
    const detail = page.getByTestId("event-detail");
    await page.getByTestId("trusted-key").fill(vkey);
    const [response] = await Promise.all([
      page.waitForResponse("**/api/v1/ProofService/GetEventProof"),
      page.getByTestId("verify-button").click(),
    ]);
    const proof = JSON.parse((await response.json()).proofJson);
    assert.match(proof.event.actor_name, /^auditum:enc:v1:/, "the proof carries the stored ciphertext");
    assert.match(proof.event.before, /^auditum:enc:v1:/);
    assert.match(await detail.locator("#detail-cols").textContent(), /Alice Liddell/, "the page shows the decrypted value");
    const status = await verifyStatus(page);
    assert.match(status, /verified/);
    assert.doesNotMatch(status, /failed/);
    assert.equal(await detail.locator(".step-ok").count(), 10);
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem("auditum.trustedKeys")).default), vkey, "the key is pinned");
    await page.evaluate(() => document.querySelector(".detail-inner").scrollTo(0, 0));
    await page.screenshot({ path: new URL("console-event-verified.png", DOCS).pathname });
  });

  test("3b. an unsealed event says its proof comes after the next seal", async () => {
    await page.keyboard.press("Escape");
    await openRow(page, unsealedSeq);
    await page.getByTestId("verify-button").click();
    const status = await verifyStatus(page);
    assert.match(status, /not sealed yet/i);
    assert.doesNotMatch(status, /verified/);
    await page.keyboard.press("Escape");
  });

  test("4. a proof tampered in transit fails, naming the step", async () => {
    const cases = [
      ["batch root", (doc) => doc.replace(/("path": \[\s*")([0-9a-f])/, (m, a, c) => a + (c === "0" ? "1" : "0"))],
      ["checkpoint signature", (doc) => {
        const d = JSON.parse(doc);
        const sig = /— (\S+) (\S+)\n$/.exec(d.checkpoint)[2];
        const bytes = Buffer.from(sig, "base64");
        bytes[30] ^= 0x01;
        return doc.replace(JSON.stringify(sig).slice(1, -1), bytes.toString("base64"));
      }],
      ["ledger root", (doc) => doc.replace(/\\"sealed_at\\":(\d)/, (m, c) => `\\"sealed_at\\":${c === "9" ? "8" : "9"}`)],
      ["leaf hash", (doc) => doc.replace(/("leaf_hash": ")([0-9a-f])/, (m, a, c) => a + (c === "0" ? "1" : "0"))],
    ];
    await openRow(page, roleSeq);
    for (const [step, tamper] of cases) {
      let changed = false;
      await page.route("**/api/v1/ProofService/GetEventProof", async (route) => {
        const response = await route.fetch();
        const body = await response.json();
        const proofJson = tamper(body.proofJson);
        changed = proofJson !== body.proofJson;
        await route.fulfill({ response, json: { ...body, proofJson } });
      });
      await page.getByTestId("verify-button").click();
      await page.waitForFunction(() => document.getElementById("verify-button").disabled === false && /verified|failed/.test(document.querySelector('[data-testid="verify-status"]').textContent));
      const status = await verifyStatus(page);
      assert.ok(changed, `the ${step} tamper changed the proof`);
      assert.match(status, new RegExp(`^\\W*failed: ${step} — `), status);
      assert.doesNotMatch(status, /verified/);
      await page.unroute("**/api/v1/ProofService/GetEventProof");
    }
    // The proof of another event than the one shown.
    await page.route("**/api/v1/ProofService/GetEventProof", (route) => {
      const body = JSON.parse(route.request().postData());
      route.continue({ postData: JSON.stringify({ ...body, seq: String(Number(body.seq) - 1) }) });
    });
    await page.getByTestId("verify-button").click();
    await page.waitForFunction(() => document.getElementById("verify-button").disabled === false && /failed/.test(document.querySelector('[data-testid="verify-status"]').textContent));
    assert.match(await verifyStatus(page), /failed: event match — /);
    await page.unroute("**/api/v1/ProofService/GetEventProof");
    // And untouched again, it verifies.
    await page.getByTestId("verify-button").click();
    await page.waitForFunction(() => document.getElementById("verify-button").disabled === false && /verified/.test(document.querySelector('[data-testid="verify-status"]').textContent));
    await page.keyboard.press("Escape");
  });

  test("6. export CSV through the page: the same bytes as `auditum export`, hash checked in the page", async () => {
    await goSearch(page, `${server.http}/#tenant=acme&actor=alice&preset=custom&since=${SINCE}&until=${UNTIL}`);
    await page.getByTestId("export-format").selectOption("EXPORT_FORMAT_CSV");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-button").click()]);
    const saved = path.join(tmp, "ui-export.csv");
    await download.saveAs(saved);
    assert.match(download.suggestedFilename(), /\.csv$/);
    await page.locator("#export-result .check.ok").waitFor();
    const cliFile = path.join(tmp, "cli-export.csv");
    await execFileP(BIN, ["export", "--server", server.grpc, "--api-key", secrets["reader-a"], "--tenant", "acme", "--actor", "alice",
      "--since", SINCE, "--until", UNTIL, "--format", "csv", "--out", cliFile]);
    const ui = fs.readFileSync(saved);
    const cli = fs.readFileSync(cliFile);
    assert.ok(cli.length > 100);
    assert.ok(ui.equals(cli), "the page's CSV is byte for byte the CLI's");
    const summary = JSON.parse(fs.readFileSync(`${cliFile}.summary.json`, "utf8"));
    const shown = await page.locator("#export-result").textContent();
    assert.ok(shown.includes(summary.sha256), "the summary's SHA-256 is shown");
    assert.equal(createHash("sha256").update(ui).digest("hex"), summary.sha256);
    assert.match(shown, new RegExp(`Rows${summary.rows}`));
    // The summary can be saved as JSON too.
    const [sumDownload] = await Promise.all([page.waitForEvent("download"), page.locator("#export-summary-save").click()]);
    const sumFile = path.join(tmp, "ui-summary.json");
    await sumDownload.saveAs(sumFile);
    const uiSummary = JSON.parse(fs.readFileSync(sumFile, "utf8"));
    assert.equal(uiSummary.sha256, summary.sha256);
    assert.equal(uiSummary.rows, summary.rows);
    assert.equal(uiSummary.format, "csv");
    assert.match(uiSummary.checkpoint, /^auditum\/default\n\d+\n/);

    // JSON lines and Parquet: downloaded once the page's hash check passes.
    for (const [format, ext, magic] of [["EXPORT_FORMAT_JSONL", "jsonl", "{"], ["EXPORT_FORMAT_PARQUET", "parquet", "PAR1"]]) {
      await page.getByTestId("export-format").selectOption(format);
      const [d] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-button").click()]);
      const file = path.join(tmp, `ui-export.${ext}`);
      await d.saveAs(file);
      await page.locator("#export-result .check.ok").waitFor();
      const bytes = fs.readFileSync(file);
      assert.equal(bytes.subarray(0, magic.length).toString("latin1"), magic, `${ext} file`);
      assert.ok((await page.locator("#export-result").textContent()).includes(createHash("sha256").update(bytes).digest("hex")));
      if (ext === "jsonl") assert.equal(bytes.toString("utf8").trim().split("\n").length, summary.rows);
    }
  });

  test("7. screenshots: search results with the activity chart, and the phone layout", async () => {
    // The business events (the meta-audit records of the console's own reads are auditum.*).
    await goSearch(page, `${server.http}/#tenant=acme&action=invoice.*,user.*&preset=24h&size=25`);
    await page.locator("#chart svg").waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.mouse.move(0, 0);
    await page.screenshot({ path: new URL("console-search.png", DOCS).pathname });
    const phone = await newPage({ width: 390, height: 844 });
    await phone.addInitScript((key) => sessionStorage.setItem("auditum.apiKey", key), secrets["reader-a"]);
    await goSearch(phone, `${server.http}/#tenant=acme&action=invoice.*,user.*&preset=24h&size=8`);
    await phone.locator("#chart svg").waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 390 px (overflow ${overflow})`);
    await phone.screenshot({ path: new URL("console-phone.png", DOCS).pathname, fullPage: true });
    await phone.close();
  });

  test("the page is keyboard usable and every input is labelled", async () => {
    const unlabeled = await page.evaluate(() =>
      [...document.querySelectorAll("input, select")].filter((i) => i.type !== "hidden" && !(i.labels && i.labels.length) && !i.getAttribute("aria-label")).map((i) => i.id),
    );
    assert.deepEqual(unlabeled, []);
    const first = page.locator('[data-testid="result-row"]').first();
    await first.focus();
    await page.keyboard.press("Enter");
    await page.getByTestId("event-detail").waitFor({ state: "visible" });
    await page.keyboard.press("Escape");
    await page.getByTestId("event-detail").waitFor({ state: "hidden" });
    assert.equal(await page.evaluate(() => document.activeElement?.dataset?.testid), "result-row", "focus returns to the row");
  });

  test("a validation error from the server is shown next to its input", async () => {
    await goSearch(page, `${server.http}/#tenant=acme&preset=24h&source_ip=not-an-ip`);
    const err = page.locator("#e-source-ip");
    await err.waitFor({ state: "visible" });
    assert.match(await err.textContent(), /^must be a valid IPv4 or IPv6 address/);
    assert.equal(await page.locator("#f-source-ip").getAttribute("aria-invalid"), "true");
    assert.match(await page.locator("#banner").textContent(), /filter\.source_ip/);
    assert.equal(await page.locator('[data-testid="result-row"]').count(), 0);
    // Client-side: no tenant, no request.
    await page.getByTestId("filter-tenant").fill("");
    await page.getByTestId("search-submit").click();
    assert.match(await page.locator("#e-tenant").textContent(), /Enter the tenant/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "f-tenant");
  });

  test("5. tenant B's key: searching tenant A is refused and shows none of A's events", async () => {
    await page.locator("#signout").click();
    await page.getByTestId("login-key").waitFor({ state: "visible" });
    assert.equal(await page.locator('[data-testid="result-row"]').count(), 0, "signing out clears the results");
    await searched(page, () => signIn(page, secrets["reader-b"]));
    assert.equal(await page.getByTestId("filter-tenant").inputValue(), "globex");
    await page.getByTestId("filter-tenant").fill("acme");
    await page.getByTestId("filter-actor").fill("alice");
    await searched(page, () => page.getByTestId("search-submit").click());
    assert.equal(await page.locator("#banner").isVisible(), true);
    assert.match(await page.locator("#banner").textContent(), /Permission denied/);
    assert.equal(await page.locator('[data-testid="result-row"]').count(), 0);
    assert.match(await page.locator("#results-state").textContent(), /may not read tenant/);
    // Nor can it export tenant acme.
    await page.getByTestId("export-button").click();
    await page.locator("#export-result .field-error").waitFor();
    assert.match(await page.locator("#export-result").textContent(), /Export failed: Permission denied/);
    // Its own tenant works.
    await goSearch(page, `${server.http}/#tenant=globex&preset=custom&since=${SINCE}&until=${UNTIL}&actor=carol`);
    const seqs = await rowSeqs(page);
    assert.equal(seqs.length, 9);
    const texts = await page.locator('[data-testid="result-row"]').allTextContents();
    assert.ok(texts.every((t) => t.includes("carol")));
  });

  test("development mode: no sign-in, a badge, and search works", async () => {
    const dev = await startServer(null, path.join(tmp, "dev-data"));
    try {
      await append(dev, undefined, [ev("demo", "dora", "user.login", { at: NOW - 60e3 })]);
      const p = await newPage();
      await p.goto(`${dev.http}/#tenant=demo&preset=1h`);
      await p.locator('[data-testid="result-row"]').first().waitFor();
      assert.equal(await p.getByTestId("login-key").isVisible(), false);
      assert.equal(await p.locator("#dev-badge").isVisible(), true);
      assert.equal(await p.locator("#signout").isVisible(), false);
      assert.match(await p.locator('[data-testid="result-row"]').first().textContent(), /dora/);
      await p.close();
    } finally {
      await dev.stop();
    }
  });
});
