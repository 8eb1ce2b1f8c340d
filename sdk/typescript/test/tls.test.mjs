import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { AuditClient } from "../dist/index.js";
import { event, startServer, tmpDir } from "./helpers.mjs";

/** A CA, and a server and a client certificate it signed (openssl). */
function pki() {
  const dir = tmpDir("pki");
  const p = (n) => path.join(dir, n);
  const ssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=auditum test CA");
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"],
    ["client", "extendedKeyUsage=clientAuth"],
  ]) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    execFileSync("sh", ["-c", `printf '${ext}\n' > ${name}.ext`], { cwd: dir });
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`);
  }
  return p;
}

test("https:// with a CA bundle and a client certificate", async () => {
  const p = pki();
  const server = await startServer({
    extraArgs: ["--tls-cert", p("server.pem"), "--tls-key", p("server.key"), "--tls-client-ca", p("ca.pem")],
  });
  const url = `https://127.0.0.1:${server.port}`;
  const client = new AuditClient({ url, spoolDir: tmpDir("tls-spool"), tls: { ca: p("ca.pem"), cert: p("client.pem"), key: p("client.key") } });
  const noCert = new AuditClient({ url, spoolDir: null, tls: { ca: p("ca.pem") }, durableTimeoutMs: 2_000 });
  try {
    const r = await client.logDurable(event("tls", "test.tls", 1));
    assert.equal(r.duplicate, false);
    client.log(event("tls", "test.tls", 2));
    assert.equal(await client.flush(10_000), true);
    assert.equal(client.stats().delivered, 2);
    await assert.rejects(noCert.logDurable(event("tls", "test.tls", 3)), /not acknowledged|UNAVAILABLE/);
  } finally {
    await client.close(1_000);
    await noCert.close(10);
    await server.stop();
  }
});
