// Unit tests of src/verify.js against the published vectors (testdata/vectors) and a real proof
// saved by `auditum proof` (test/fixtures), with one negative case per verification step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as v from "../src/verify.js";

const read = (rel) => readFileSync(new URL(rel, import.meta.url), "utf8");
const vectors = v.parseJsonExact(read("../../testdata/vectors/auditum.json"));
const rfc = JSON.parse(read("../../testdata/vectors/rfc6962.json"));
const proofText = read("./fixtures/proof.json");
const proofKey = read("./fixtures/proof.vkey").trim();
const proofRow = v.parseJsonExact(read("./fixtures/proof-event.json"));
const hex = v.fromHex;
const enc = new TextEncoder();

// ------------------------------------------------------------------ vectors

test("event leaves: canonical bytes and leaf hashes of the vectors", async () => {
  assert.equal(vectors.events.length, 2);
  for (const ev of vectors.events) {
    assert.equal(v.toHex(v.canonicalEvent(ev.columns)), ev.canonical_hex);
    assert.equal(v.toHex(await v.eventLeafHash(ev.columns)), ev.leaf_hash_hex);
  }
});

test("vector columns pass the proof document's column check (received_at -1 is exact)", () => {
  for (const ev of vectors.events) v.checkColumns(ev.columns);
  assert.equal(vectors.events[1].columns.received_at, -1n);
});

test("batch root of both events in order", async () => {
  const leaves = vectors.events.map((e) => hex(e.leaf_hash_hex));
  assert.equal(v.toHex(await v.merkleRoot(leaves)), vectors.batch_root_hex_of_both_events_in_order);
});

test("ledger entry v1 and v2: canonical form accepted, entry hashes reproduced", async () => {
  for (const [text, want] of [
    [vectors.ledger_entry_text, vectors.ledger_entry_hash_hex],
    [vectors.ledger_entry_v2_text, vectors.ledger_entry_v2_hash_hex],
  ]) {
    const e = v.parseLedgerEntry(text);
    assert.equal(e.root, vectors.batch_root_hex_of_both_events_in_order);
    assert.equal(v.toHex(await v.entryHash(text)), want);
  }
  assert.equal(v.parseLedgerEntry(vectors.ledger_entry_v2_text).retain_until, 1984652060000000n);
});

test("ledger entry: non-canonical texts are rejected", () => {
  const t = vectors.ledger_entry_text;
  assert.throws(() => v.parseLedgerEntry(t.replace('"index":0', '"index": 0')), /canonical/);
  assert.throws(() => v.parseLedgerEntry(t.replace('"v":1', '"v":3')), /version/);
  assert.throws(() => v.parseLedgerEntry(t.replace(',"tenants"', ',"retain_until":null,"tenants"')), /keys/);
  assert.throws(() => v.parseLedgerEntry(t.replace('"count":2', '"count":2,"count":3')), /duplicate/);
  assert.throws(() => v.parseLedgerEntry(t.replace(/"prev":"0/, '"prev":"A')), /hex/);
});

test("checkpoint: the published test key's verifier key, note and signature", async () => {
  const cp = vectors.checkpoint;
  const key = await v.parseVerifierKey(cp.verifier_key);
  assert.equal(key.name, "auditum/default");
  // The verifier key is the one of the published seed.
  const pkcs8 = v.fromHex("302e020100300506032b657004220420" + cp.ed25519_private_seed_hex);
  const priv = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", priv);
  const pub = Buffer.from(jwk.x, "base64url");
  assert.equal(v.toHex(key.publicKey), pub.toString("hex"));
  const note = v.parseCheckpoint(cp.note);
  assert.equal(note.origin, "auditum/default");
  assert.equal(note.size, 1n);
  // The note's root is the ledger root of the one-entry ledger of the vector entry.
  assert.equal(v.toHex(note.root), vectors.ledger_entry_hash_hex);
  await v.verifyCheckpointSignature(note, key);
  // Ed25519 is deterministic: signing the body again gives the same signature.
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, priv, enc.encode(note.body)));
  assert.equal(v.toHex(note.signatures[0].signed.slice(4)), v.toHex(sig));
});

test("checkpoint: a changed body or signature does not verify", async () => {
  const cp = vectors.checkpoint;
  const key = await v.parseVerifierKey(cp.verifier_key);
  const note = v.parseCheckpoint(cp.note.replace("\n1\n", "\n2\n"));
  await assert.rejects(v.verifyCheckpointSignature(note, key), /not valid/);
  const sigLine = cp.note.split("\n")[4];
  const b64 = sigLine.split(" ")[2];
  const flipped = v.toBase64(v.fromBase64(b64).map((b, i) => (i === 10 ? b ^ 1 : b)));
  await assert.rejects(v.verifyCheckpointSignature(v.parseCheckpoint(cp.note.replace(b64, flipped)), key), /not valid/);
  assert.throws(() => v.parseCheckpoint(cp.note.replace("\u2014", "-")), /em dash/);
  assert.throws(() => v.parseCheckpoint(cp.note.slice(0, -1)), /newline/);
  assert.throws(() => v.parseCheckpoint(cp.note.replace("\n1\n", "\n01\n")), /decimal/);
});

test("verifier keys: malformed keys and a wrong key id are rejected", async () => {
  const good = vectors.checkpoint.verifier_key;
  await assert.rejects(v.parseVerifierKey("auditum/default"), /expected/);
  await assert.rejects(v.parseVerifierKey(good.replace("+0959e5da+", "+0959e5db+")), /key id does not match/);
  await assert.rejects(v.parseVerifierKey(good.replace("+AXm1", "+AnC1")), /Ed25519|base64/);
  await assert.rejects(v.parseVerifierKey(good.replace("auditum/default", "auditum default")), /name/);
  assert.equal((await v.parseVerifierKey(`  ${good}\n`)).text, good);
});

test("RFC 6962: empty root and roots by size", async () => {
  const leaves = await Promise.all(rfc.leaf_inputs_hex.map((h) => v.leafHash(hex(h))));
  assert.equal(v.toHex(await v.merkleRoot([])), rfc.empty_root_hex);
  for (const [size, root] of Object.entries(rfc.roots_by_size_hex)) {
    assert.equal(v.toHex(await v.merkleRoot(leaves.slice(0, Number(size)))), root, `size ${size}`);
  }
});

test("RFC 6962: inclusion proofs verify, and broken ones are rejected", async () => {
  const leaves = await Promise.all(rfc.leaf_inputs_hex.map((h) => v.leafHash(hex(h))));
  assert.ok(rfc.inclusion_proofs.length >= 4);
  for (const p of rfc.inclusion_proofs) {
    const path = p.path_hex.map((h) => hex(h));
    const root = hex(rfc.roots_by_size_hex[p.tree_size]);
    await v.verifyInclusion(leaves[p.leaf_index], p.leaf_index, p.tree_size, path, root);
    await assert.rejects(v.verifyInclusion(leaves[p.leaf_index], p.tree_size, p.tree_size, path, root), /out of range/);
    await assert.rejects(v.verifyInclusion(leaves[p.leaf_index], p.leaf_index, p.tree_size, [...path, path[0]], root), /more hashes/);
    if (path.length) {
      await assert.rejects(v.verifyInclusion(leaves[p.leaf_index], p.leaf_index, p.tree_size, path.slice(0, -1), root), /missing/);
      const bad = path.map((h, i) => (i === 0 ? h.map((b, j) => (j === 0 ? b ^ 1 : b)) : h));
      await assert.rejects(v.verifyInclusion(leaves[p.leaf_index], p.leaf_index, p.tree_size, bad, root), /does not lead/);
    }
    if (p.leaf_index + 1 < p.tree_size) {
      await assert.rejects(v.verifyInclusion(leaves[p.leaf_index + 1], p.leaf_index, p.tree_size, path, root));
    }
  }
});

test("RFC 6962: consistency proofs verify, and broken ones are rejected", async () => {
  assert.ok(rfc.consistency_proofs.length >= 2);
  for (const p of rfc.consistency_proofs) {
    const path = p.path_hex.map((h) => hex(h));
    const r1 = hex(rfc.roots_by_size_hex[p.size1]);
    const r2 = hex(rfc.roots_by_size_hex[p.size2]);
    await v.verifyConsistency(p.size1, p.size2, path, r1, r2);
    await assert.rejects(v.verifyConsistency(p.size1, p.size2, path, r2, r2));
    await assert.rejects(v.verifyConsistency(p.size1, p.size2, path.slice(0, -1), r1, r2));
    await assert.rejects(v.verifyConsistency(p.size2 + 1, p.size2, path, r1, r2), /valid consistency pair/);
  }
});

// ------------------------------------------------------------------ exact numbers

test("parseJsonExact keeps 64-bit integers exact; RFC 3339 to µs is exact", () => {
  const o = v.parseJsonExact('{"a":18446744073709551615,"b":-9223372036854775808,"c":1.5,"d":"x\\u00e9\\n","e":[1,null,true]}');
  assert.equal(o.a, 18446744073709551615n);
  assert.equal(o.b, -9223372036854775808n);
  assert.equal(o.c, 1.5);
  assert.equal(o.d, "xé\n");
  assert.deepEqual(o.e, [1n, null, true]);
  assert.throws(() => v.parseJsonExact('{"a":1,}'));
  assert.throws(() => v.parseJsonExact('{"a":1} x'));
  assert.equal(v.rfc3339ToMicros("2025-11-23T12:13:20.123456Z"), 1763900000123456n);
  assert.equal(v.rfc3339ToMicros("2025-11-23T12:13:20.123456789Z"), 1763900000123456n);
  assert.equal(v.rfc3339ToMicros("2025-11-23T12:13:20Z"), 1763900000000000n);
  assert.equal(v.rfc3339ToMicros("1969-12-31T23:59:59.999999Z"), -1n);
  assert.equal(v.rfc3339ToMicros("2025-11-23T13:13:20.1+01:00"), 1763900000100000n);
});

// ------------------------------------------------------------------ a real proof, step by step

const micros = (us) => {
  const ms = Number(us / 1000n);
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "." + (us % 1000000n).toString().padStart(6, "0") + "Z");
};

/** The fixture's event as QueryService/Query answers it (proto3 JSON). */
function storedEvent(row) {
  const ev = {
    id: row.id,
    tenantId: row.tenant_id,
    occurredAt: micros(row.occurred_at),
    action: row.action,
    actor: { id: row.actor_id, type: "ACTOR_TYPE_SERVICE" },
    target: { type: row.target_type, id: row.target_id },
    outcome: { result: "OUTCOME_RESULT_FAILURE", reason: row.reason },
    context: { requestId: row.request_id },
  };
  return {
    event: ev,
    seq: String(row.seq),
    receivedAt: micros(row.received_at),
    sealed: true,
    batchIndex: String(row.batch_index),
    leafHash: Buffer.from(row.leaf_hash, "hex").toString("base64"),
    log: row.log,
  };
}

function expectedOf(stored) {
  return {
    columns: v.columnsOfStoredEvent(stored),
    leafHashHex: Buffer.from(stored.leafHash, "base64").toString("hex"),
    log: stored.log,
  };
}

async function otherKey(name) {
  const kp = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey));
  const id = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new Uint8Array([...enc.encode(name), 0x0a, 0x01, ...pub])),
  ).slice(0, 4);
  return `${name}+${v.toHex(id)}+${v.toBase64(new Uint8Array([1, ...pub]))}`;
}

/** Edits the proof document (parsed with exact integers) and renders it back. */
function edit(fn) {
  const doc = JSON.parse(proofText);
  fn(doc);
  return JSON.stringify(doc, null, 2) + "\n";
}

const flipHex = (h, at = 10) => h.slice(0, at) + (h[at] === "0" ? "1" : "0") + h.slice(at + 1);

test("a real proof verifies in full, against the event the query showed", async () => {
  const expected = expectedOf(storedEvent(proofRow));
  const r = await v.verifyProof(proofText, proofKey, expected);
  assert.equal(r.ok, true, r.summary);
  assert.match(r.summary, /^verified: event seq 6 /);
  assert.deepEqual(
    r.steps.map((s) => s.status),
    v.STEPS.map(() => "ok"),
  );
  // The path lengths make this a real test of both trees.
  const doc = JSON.parse(proofText);
  assert.ok(doc.batch.path.length >= 2 && doc.ledger.path.length >= 2);
});

const failing = [
  ["trusted key", "a malformed pinned key", () => [proofText, "not-a-key"]],
  ["trusted key", "a pinned key whose id does not match", () => [proofText, proofKey.replace(/\+([0-9a-f]{8})\+/, (m, id) => `+${flipHex(id, 0)}+`)]],
  ["proof document", "text that is not JSON", () => ["{", proofKey]],
  ["proof document", "a missing checkpoint", () => [edit((d) => delete d.checkpoint), proofKey]],
  ["proof document", "a path hash that is not hex", () => [edit((d) => (d.batch.path[0] = "zz")), proofKey]],
  ["proof document", "an extra event column", () => [edit((d) => (d.event.extra = null)), proofKey]],
  ["event match", "a proof of another event (seq)", () => [proofText, proofKey, { ...expectedOf(storedEvent(proofRow)), columns: { ...v.columnsOfStoredEvent(storedEvent(proofRow)), seq: 7n } }]],
  ["event match", "a proof whose event differs from the displayed one", () => [edit((d) => (d.event.actor_id = "mallory")), proofKey, expectedOf(storedEvent(proofRow))]],
  ["leaf hash", "a changed column", () => [edit((d) => (d.event.actor_id = "mallory")), proofKey]],
  ["leaf hash", "a changed leaf_hash", () => [edit((d) => (d.leaf_hash = flipHex(d.leaf_hash))), proofKey]],
  ["ledger entry", "a non-canonical entry", () => [edit((d) => (d.ledger_entry = d.ledger_entry.replace('"index":', '"index": '))), proofKey]],
  ["ledger entry", "a batch index that is not the entry's", () => [edit((d) => (d.batch.index += 1)), proofKey]],
  ["ledger entry", "a batch size that is not the entry's count", () => [edit((d) => (d.batch.size += 1)), proofKey]],
  ["batch root", "one changed byte of the batch path", () => [edit((d) => (d.batch.path[0] = flipHex(d.batch.path[0]))), proofKey]],
  ["batch root", "a batch path one hash short", () => [edit((d) => d.batch.path.pop()), proofKey]],
  ["batch root", "another leaf index", () => [edit((d) => (d.batch.leaf_index = (d.batch.leaf_index + 1) % d.batch.size)), proofKey]],
  ["batch root", "a changed entry root", () => [edit((d) => (d.ledger_entry = d.ledger_entry.replace(/"root":"([0-9a-f]+)"/, (m, h) => `"root":"${flipHex(h)}"`))), proofKey]],
  ["checkpoint", "a checkpoint of another origin", async () => [proofText, await otherKey("auditum/other")]],
  ["checkpoint", "a ledger size that is not the checkpoint's", () => [edit((d) => (d.ledger.size += 1)), proofKey]],
  ["checkpoint", "a malformed note", () => [edit((d) => (d.checkpoint = d.checkpoint.replace("\n\n", "\n"))), proofKey]],
  ["ledger root", "one changed byte of the ledger path", () => [edit((d) => (d.ledger.path[1] = flipHex(d.ledger.path[1]))), proofKey]],
  ["ledger root", "a changed ledger entry (sealed_at)", () => [edit((d) => (d.ledger_entry = d.ledger_entry.replace(/"sealed_at":(\d)/, (m, c) => `"sealed_at":${c === "9" ? "8" : "9"}`))), proofKey]],
  ["checkpoint signature", "one changed byte of the signature", () => [edit((d) => {
    const [head, sig] = d.checkpoint.split(/ (?=[^ ]+\n$)/);
    const bytes = v.fromBase64(sig.trim());
    bytes[20] ^= 1;
    d.checkpoint = `${head} ${v.toBase64(bytes)}\n`;
  }), proofKey]],
  ["checkpoint signature", "another key of the same name", async () => [proofText, await otherKey("auditum/default")]],
  ["ledger root", "a changed checkpoint root", () => [edit((d) => {
    const lines = d.checkpoint.split("\n");
    const root = v.fromBase64(lines[2]);
    root[0] ^= 1;
    lines[2] = v.toBase64(root);
    d.checkpoint = lines.join("\n");
  }), proofKey]],
];

for (const [step, what, make] of failing) {
  test(`fails at "${step}" for ${what}`, async () => {
    const [text, key, expected] = await make();
    const r = await v.verifyProof(text, key, expected ?? null);
    assert.equal(r.ok, false);
    assert.equal(r.failed.name, step, r.summary);
    assert.ok(r.summary.startsWith(`failed: ${step} — `), r.summary);
    const idx = r.steps.findIndex((s) => s.status === "failed");
    assert.ok(r.steps.slice(0, idx).every((s) => s.status === "ok"));
    assert.ok(r.steps.slice(idx + 1).every((s) => s.status === "skipped"));
  });
}

test("encrypted columns in the proof are not compared with the decrypted display", () => {
  const shown = v.columnsOfStoredEvent(storedEvent(proofRow));
  const proofEvent = { ...proofRow, reason: "auditum:enc:v1:0123:AAAA" };
  delete proofEvent.sealed;
  assert.deepEqual(v.eventMismatches(proofEvent, shown), []);
  assert.deepEqual(v.eventMismatches({ ...proofEvent, reason: "other" }, shown), ["reason"]);
});
