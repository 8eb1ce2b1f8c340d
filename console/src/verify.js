// auditum proof verifier (DESIGN §2.3, §3, §5, §6, §7): pure functions over WebCrypto,
// usable in the browser and in node (>= 20). It trusts nothing the server says: it recomputes
// the event leaf from the 24 stored columns, walks the batch path to the ledger entry's root,
// hashes the entry, walks the ledger path to the checkpoint's root, and checks the checkpoint's
// Ed25519 signature under a verifier key the viewer pinned.
//
// 64-bit integers (seq, µs timestamps, sizes) are read as BigInt by parseJsonExact, never as
// lossy doubles.

const subtle = globalThis.crypto && globalThis.crypto.subtle;
const enc = new TextEncoder();

export const COLUMNS = [
  "seq", "id", "tenant_id", "occurred_at", "received_at", "action", "actor_id", "actor_type",
  "actor_name", "target_type", "target_id", "target_name", "outcome", "error_code", "reason",
  "request_id", "correlation_id", "session_id", "source_ip", "user_agent", "service", "before",
  "after", "metadata",
];
const INT_COLUMNS = new Set(["seq", "occurred_at", "received_at"]);
/** Columns DESIGN §14 may encrypt: their stored value in a proof can be ciphertext. */
export const ENCRYPTABLE = new Set([
  "actor_name", "target_name", "reason", "source_ip", "user_agent", "before", "after", "metadata",
]);
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/** A failed step: `step` is the human name of the step ("batch root", …). */
export class VerifyError extends Error {
  constructor(step, message) {
    super(`${step}: ${message}`);
    this.step = step;
    this.detail = message;
  }
}

function requireSubtle() {
  if (!subtle) {
    throw new Error("WebCrypto is unavailable: open the console over HTTPS or on localhost (a secure context)");
  }
  return subtle;
}

// ---------------------------------------------------------------- bytes

export function toHex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Strict lowercase (or any-case when `lenient`) hex of exactly `len` bytes when len is given. */
export function fromHex(text, len) {
  if (typeof text !== "string" || text.length % 2 || !/^[0-9a-f]*$/.test(text)) {
    throw new Error(`${JSON.stringify(String(text).slice(0, 80))} is not lowercase hex`);
  }
  if (len !== undefined && text.length !== len * 2) throw new Error(`expected ${len} bytes of hex, got ${text.length / 2}`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    s += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    s += i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=";
    s += i + 2 < bytes.length ? B64[n & 63] : "=";
  }
  return s;
}

/** Strict standard base64 with padding; rejects non-canonical encodings. */
export function fromBase64(text) {
  if (typeof text !== "string" || text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new Error("not standard base64");
  }
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text[i + j];
      n = (n << 6) | (c === "=" ? 0 : B64.indexOf(c));
    }
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  if (toBase64(out) !== text) throw new Error("not canonical base64");
  return out;
}

function concat(...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await requireSubtle().digest("SHA-256", bytes));
}

// ---------------------------------------------------------------- exact JSON

/**
 * JSON.parse that keeps integers exact: every integer literal becomes a BigInt, other numbers a
 * Number. Rejects what JSON.parse rejects (and duplicate keys, which a signed document must
 * never rely on).
 */
export function parseJsonExact(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\n" || text[i] === "\r" || text[i] === "\t")) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = {};
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = string();
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate key ${JSON.stringify(key)}`);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        Object.defineProperty(obj, key, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (text.startsWith("true", i)) return (i += 4), true;
    if (text.startsWith("false", i)) return (i += 5), false;
    if (text.startsWith("null", i)) return (i += 4), null;
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail("unexpected character");
    i += m[0].length;
    return m[2] === undefined && m[3] === undefined ? BigInt(m[0]) : Number(m[0]);
  };
  const string = () => {
    const start = i;
    i++;
    let simple = true;
    while (i < text.length && text[i] !== '"') {
      const code = text.charCodeAt(i);
      if (code < 0x20) fail("control character in string");
      if (text[i] === "\\") {
        simple = false;
        i += 2;
      } else i++;
    }
    if (i >= text.length) fail("unterminated string");
    i++;
    const raw = text.slice(start, i);
    return simple ? raw.slice(1, -1) : JSON.parse(raw);
  };
  const out = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return out;
}

/** serde_json's string form: what the ledger entry text uses (same as JSON.stringify). */
const jsonString = (s) => JSON.stringify(s);

// ---------------------------------------------------------------- event leaf (§2.3)

function u32be(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function int64be(v, signed) {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  if (signed) dv.setBigInt64(0, v);
  else dv.setBigUint64(0, v);
  return b;
}

/** Checks a proof's `event` object: exactly the 24 columns, integers exact, the rest strings or null. */
export function checkColumns(event) {
  if (!event || typeof event !== "object" || Array.isArray(event)) throw new Error("event is not an object");
  for (const k of Object.keys(event)) if (!COLUMNS.includes(k)) throw new Error(`event has unknown column ${k}`);
  for (const name of COLUMNS) {
    if (!(name in event)) throw new Error(`event is missing column ${name}`);
    const v = event[name];
    if (INT_COLUMNS.has(name)) {
      if (typeof v !== "bigint") throw new Error(`column ${name} must be an integer`);
      if (name === "seq" ? v < 0n || v > U64_MAX : v < I64_MIN || v > I64_MAX) throw new Error(`column ${name} is out of range`);
    } else if (v !== null && typeof v !== "string") {
      throw new Error(`column ${name} must be a string or null`);
    }
  }
  return event;
}

/** The canonical bytes of §2.3 for an event's 24 columns (integers as BigInt or safe Numbers). */
export function canonicalEvent(columns) {
  const parts = [enc.encode("auditum/event/v1\n")];
  for (const name of COLUMNS) {
    const v = columns[name];
    if (v === null || v === undefined) {
      parts.push(Uint8Array.of(0xff));
      continue;
    }
    let bytes;
    if (INT_COLUMNS.has(name)) bytes = int64be(BigInt(v), name !== "seq");
    else bytes = enc.encode(v);
    parts.push(Uint8Array.of(0x01), u32be(bytes.length), bytes);
  }
  return concat(...parts);
}

/** leaf = SHA-256(0x00 || data). */
export async function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

export async function eventLeafHash(columns) {
  return leafHash(canonicalEvent(columns));
}

/** node = SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

// ---------------------------------------------------------------- Merkle (§3, RFC 9162)

/** Root of the RFC 6962 tree over already-hashed leaves. */
export async function merkleRoot(leaves) {
  if (leaves.length === 0) return sha256(new Uint8Array(0));
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(await merkleRoot(leaves.slice(0, k)), await merkleRoot(leaves.slice(k)));
}

/**
 * RFC 9162 §2.1.3.2: the root a path leads to from `leaf` at `index` in a tree of `size`.
 * Throws for index >= size, a path too long or too short.
 */
export async function rootFromInclusion(leaf, index, size, path) {
  index = BigInt(index);
  size = BigInt(size);
  if (index < 0n || index >= size) throw new Error(`leaf index ${index} is out of range for a tree of size ${size}`);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (let p = 0; p < path.length; p++) {
    if (sn === 0n) throw new Error(`the path has ${path.length - p} more hashes than a tree of size ${size} needs`);
    const c = path[p];
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(c, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error(`the path is missing hashes for a tree of size ${size}`);
  return r;
}

/** Throws unless the path leads from `leaf` to `root`. */
export async function verifyInclusion(leaf, index, size, path, root) {
  const r = await rootFromInclusion(leaf, index, size, path);
  if (!bytesEqual(r, root)) throw new Error("the path does not lead to the expected root");
}

/** RFC 9162 §2.1.4.2: throws unless `path` proves the tree of size1/root1 is a prefix of size2/root2. */
export async function verifyConsistency(size1, size2, path, root1, root2) {
  size1 = BigInt(size1);
  size2 = BigInt(size2);
  if (size1 < 1n || size1 > size2) throw new Error(`sizes ${size1} and ${size2} are not a valid consistency pair`);
  if (size1 === size2) {
    if (path.length !== 0 || !bytesEqual(root1, root2)) throw new Error("for equal sizes the path must be empty and the roots equal");
    return;
  }
  if (path.length === 0) throw new Error("the path is empty");
  let p = path;
  if ((size1 & (size1 - 1n)) === 0n) p = [root1, ...path];
  let fn = size1 - 1n;
  let sn = size2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = p[0];
  let sr = p[0];
  for (const c of p.slice(1)) {
    if (sn === 0n) throw new Error("the path is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the path is too short");
  if (!bytesEqual(fr, root1)) throw new Error("the path does not lead to the old root");
  if (!bytesEqual(sr, root2)) throw new Error("the path does not lead to the new root");
}

// ---------------------------------------------------------------- ledger entry (§5)

const ENTRY_KEYS_V1 = [
  "v", "log", "index", "prev", "object", "version", "sha256", "size", "first_seq", "count", "root",
  "min_occurred_at", "max_occurred_at", "min_received_at", "max_received_at", "sealed_at", "tenants",
];
const ENTRY_KEYS_V2 = [...ENTRY_KEYS_V1.slice(0, 16), "retain_until", "tenants"];

/** Parses a ledger entry (v1 or v2) and checks it is in the exact canonical form of §5. */
export function parseLedgerEntry(text) {
  if (typeof text !== "string") throw new Error("the entry is not a string");
  const e = parseJsonExact(text);
  if (!e || typeof e !== "object" || Array.isArray(e)) throw new Error("the entry is not a JSON object");
  const keys = e.v === 1n ? ENTRY_KEYS_V1 : e.v === 2n ? ENTRY_KEYS_V2 : null;
  if (!keys) throw new Error(`version ${e.v} is not 1 or 2`);
  if (Object.keys(e).join() !== keys.join()) throw new Error("keys are not exactly those of §5, in order");
  const int = (k, nullable) => {
    if (nullable && e[k] === null) return "null";
    if (typeof e[k] !== "bigint") throw new Error(`${k} must be an integer`);
    return e[k].toString();
  };
  const hash = (k) => {
    if (typeof e[k] !== "string" || !/^[0-9a-f]{64}$/.test(e[k])) throw new Error(`${k} must be 64 lowercase hex digits`);
    return `"${e[k]}"`;
  };
  const str = (k, nullable) => {
    if (nullable && e[k] === null) return "null";
    if (typeof e[k] !== "string") throw new Error(`${k} must be a string`);
    return jsonString(e[k]);
  };
  let tenants = "null";
  if (e.tenants !== null) {
    if (!Array.isArray(e.tenants) || e.tenants.some((t) => typeof t !== "string")) throw new Error("tenants must be a list of strings or null");
    tenants = `[${e.tenants.map(jsonString).join(",")}]`;
  }
  const rendered =
    `{"v":${e.v},"log":${str("log")},"index":${int("index")},"prev":${hash("prev")},"object":${str("object")},` +
    `"version":${str("version", true)},"sha256":${hash("sha256")},"size":${int("size")},"first_seq":${int("first_seq")},` +
    `"count":${int("count")},"root":${hash("root")},"min_occurred_at":${int("min_occurred_at")},` +
    `"max_occurred_at":${int("max_occurred_at")},"min_received_at":${int("min_received_at")},` +
    `"max_received_at":${int("max_received_at")},"sealed_at":${int("sealed_at")},` +
    (e.v === 2n ? `"retain_until":${int("retain_until", true)},` : "") +
    `"tenants":${tenants}}`;
  if (rendered !== text) throw new Error("the entry text is not in the canonical form of §5");
  for (const k of ["index", "first_seq", "count", "size"]) if (e[k] < 0n || e[k] > U64_MAX) throw new Error(`${k} is out of range`);
  return e;
}

/** entry_hash = SHA-256(0x00 || body bytes). */
export async function entryHash(text) {
  return leafHash(enc.encode(text));
}

// ---------------------------------------------------------------- keys and checkpoints (§6)

async function keyId(name, publicKey) {
  const h = await sha256(concat(enc.encode(name), Uint8Array.of(0x0a, 0x01), publicKey));
  return h.slice(0, 4);
}

/** Parses `<name>+<hex key id>+<base64(0x01 || pubkey)>` and checks the key id. */
export async function parseVerifierKey(text) {
  const t = String(text ?? "").trim();
  const a = t.indexOf("+");
  const b = a < 0 ? -1 : t.indexOf("+", a + 1);
  if (a < 0 || b < 0) throw new Error("expected <name>+<hex key id>+<base64 key>");
  const name = t.slice(0, a);
  const idHex = t.slice(a + 1, b);
  if (!name || /[\s\x00-\x1f\x7f]/.test(name)) throw new Error("invalid key name");
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error("key id must be 8 lowercase hex digits");
  let raw;
  try {
    raw = fromBase64(t.slice(b + 1));
  } catch {
    throw new Error("the key is not base64");
  }
  if (raw.length !== 33 || raw[0] !== 0x01) throw new Error("not an Ed25519 key (0x01 followed by 32 bytes)");
  const publicKey = raw.slice(1);
  const id = await keyId(name, publicKey);
  if (toHex(id) !== idHex) throw new Error("the key id does not match the key");
  return { name, keyId: id, keyIdHex: idHex, publicKey, text: t };
}

/** Parses a signed checkpoint note; signatures are not checked here. */
export function parseCheckpoint(note) {
  if (typeof note !== "string") throw new Error("the checkpoint is not a string");
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("no blank line before the signatures");
  const lines = note.slice(0, split).split("\n");
  if (lines.length !== 3) throw new Error("the body must be exactly origin, size and root");
  const [origin, sizeText, rootText] = lines;
  if (!origin) throw new Error("empty origin");
  if (!/^(0|[1-9]\d*)$/.test(sizeText)) throw new Error("the size is not a decimal number");
  const size = BigInt(sizeText);
  if (size > U64_MAX) throw new Error("the size is out of range");
  let root;
  try {
    root = fromBase64(rootText);
  } catch {
    throw new Error("the root is not canonical base64");
  }
  if (root.length !== 32) throw new Error("the root is not 32 bytes");
  const block = note.slice(split + 2);
  if (!block.endsWith("\n")) throw new Error("the note must end with a newline");
  const signatures = [];
  for (const line of block.slice(0, -1).split("\n")) {
    if (!line.startsWith("\u2014 ")) throw new Error("a signature line must start with an em dash");
    const rest = line.slice(2);
    const sp = rest.indexOf(" ");
    if (sp < 0) throw new Error("a signature line needs a name and a signature");
    let signed;
    try {
      signed = fromBase64(rest.slice(sp + 1));
    } catch {
      throw new Error("a signature is not base64");
    }
    signatures.push({ name: rest.slice(0, sp), signed });
  }
  if (signatures.length === 0) throw new Error("no signature lines");
  return { origin, size, root, signatures, body: `${origin}\n${sizeText}\n${rootText}\n` };
}

/** Ed25519 through WebCrypto. */
export async function ed25519Verify(publicKey, signature, message) {
  const s = requireSubtle();
  const key = await s.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return s.verify({ name: "Ed25519" }, key, signature, message);
}

/** Throws unless the parsed checkpoint carries a valid signature by the parsed verifier key. */
export async function verifyCheckpointSignature(checkpoint, verifier) {
  const candidates = checkpoint.signatures.filter(
    (s) => s.name === verifier.name && s.signed.length === 68 && bytesEqual(s.signed.slice(0, 4), verifier.keyId),
  );
  if (candidates.length === 0) {
    throw new Error(`no signature by ${verifier.name} (key id ${verifier.keyIdHex}) on the checkpoint`);
  }
  for (const s of candidates) {
    if (await ed25519Verify(verifier.publicKey, s.signed.slice(4), enc.encode(checkpoint.body))) return;
  }
  throw new Error(`the signature by ${verifier.name} (key id ${verifier.keyIdHex}) is not valid for the checkpoint's body`);
}

// ---------------------------------------------------------------- the displayed event

/** Exact µs since the epoch (BigInt) of an RFC 3339 string. */
export function rfc3339ToMicros(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/.exec(String(text));
  if (!m) throw new Error(`${text} is not an RFC 3339 timestamp`);
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  let micros = BigInt(ms) * 1000n + BigInt(((m[7] ?? "") + "000000").slice(0, 6));
  if (m[8].length === 6) {
    const sign = m[8][0] === "-" ? -1n : 1n;
    micros -= sign * BigInt((+m[8].slice(1, 3) * 60 + +m[8].slice(4, 6)) * 60) * 1000000n;
  }
  return micros;
}

const ACTOR_TYPES = { ACTOR_TYPE_USER: "user", ACTOR_TYPE_SERVICE: "service", ACTOR_TYPE_API_KEY: "api_key", ACTOR_TYPE_SYSTEM: "system", ACTOR_TYPE_ANONYMOUS: "anonymous" };
const OUTCOMES = { OUTCOME_RESULT_SUCCESS: "success", OUTCOME_RESULT_FAILURE: "failure", OUTCOME_RESULT_DENIED: "denied" };

/**
 * The columns a StoredEvent (proto3 JSON, as Query returns it) shows, in the §2.2 names:
 * integers as BigInt, Structs as objects, empty strings as null.
 */
export function columnsOfStoredEvent(stored) {
  const e = stored.event ?? {};
  const s = (v) => (v === undefined || v === null || v === "" ? null : String(v));
  const struct = (v) => (v && typeof v === "object" && Object.keys(v).length ? v : null);
  return {
    seq: BigInt(stored.seq ?? 0),
    id: s(e.id),
    tenant_id: s(e.tenantId),
    occurred_at: e.occurredAt ? rfc3339ToMicros(e.occurredAt) : null,
    received_at: stored.receivedAt ? rfc3339ToMicros(stored.receivedAt) : null,
    action: s(e.action),
    actor_id: s(e.actor?.id),
    actor_type: ACTOR_TYPES[e.actor?.type] ?? null,
    actor_name: s(e.actor?.name),
    target_type: s(e.target?.type),
    target_id: s(e.target?.id),
    target_name: s(e.target?.name),
    outcome: OUTCOMES[e.outcome?.result] ?? null,
    error_code: s(e.outcome?.errorCode),
    reason: s(e.outcome?.reason),
    request_id: s(e.context?.requestId),
    correlation_id: s(e.context?.correlationId),
    session_id: s(e.context?.sessionId),
    source_ip: s(e.context?.sourceIp),
    user_agent: s(e.context?.userAgent),
    service: s(e.context?.service),
    before: struct(e.before),
    after: struct(e.after),
    metadata: struct(e.metadata),
  };
}

function jsonEqual(a, b) {
  if (typeof a === "bigint" || typeof b === "bigint") return Number(a) === Number(b);
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.join("\0") === kb.join("\0") && ka.every((k) => jsonEqual(a[k], b[k]));
}

/**
 * Which columns of the proof's event differ from the displayed one. Encrypted columns
 * (`auditum:enc:v1:` in the proof: the leaf covers the stored ciphertext, the console shows the
 * decrypted or "[erased]" value) are not compared.
 */
export function eventMismatches(proofEvent, shown) {
  const out = [];
  for (const name of COLUMNS) {
    if (!(name in shown)) continue;
    const p = proofEvent[name];
    const v = shown[name];
    if (ENCRYPTABLE.has(name) && typeof p === "string" && p.startsWith("auditum:enc:v1:")) continue;
    if (name === "before" || name === "after" || name === "metadata") {
      let parsed = null;
      try {
        parsed = p === null ? null : parseJsonExact(p);
      } catch {
        out.push(name);
        continue;
      }
      if (!jsonEqual(parsed, v)) out.push(name);
    } else if (typeof p === "bigint" || typeof v === "bigint") {
      if (v === null || p === null || BigInt(p) !== BigInt(v)) out.push(name);
    } else if ((p ?? null) !== (v ?? null)) out.push(name);
  }
  return out;
}

// ---------------------------------------------------------------- the whole proof (§7)

/** The steps, in the order they are checked, with their display names. */
export const STEPS = [
  { id: "key", name: "trusted key" },
  { id: "document", name: "proof document" },
  { id: "event", name: "event match" },
  { id: "leaf", name: "leaf hash" },
  { id: "entry", name: "ledger entry" },
  { id: "batch", name: "batch root" },
  { id: "entryHash", name: "entry hash" },
  { id: "checkpoint", name: "checkpoint" },
  { id: "ledger", name: "ledger root" },
  { id: "signature", name: "checkpoint signature" },
];

/**
 * Verifies a §7 proof document (its text) under a pinned verifier key (its text).
 * `expected` (optional) is the displayed event: `{columns, leafHashHex, log}` (see
 * columnsOfStoredEvent); the proof must be about that event.
 * Never throws: returns `{ok, steps: [{id, name, status: "ok"|"failed"|"skipped", detail}],
 * failed: {id, name, detail} | null, summary, facts}`.
 */
export async function verifyProof(proofText, trustedKeyText, expected = null) {
  const steps = STEPS.map((s) => ({ ...s, status: "skipped", detail: "" }));
  const facts = {};
  let current = 0;
  const pass = (id, detail) => {
    const s = steps.find((x) => x.id === id);
    s.status = "ok";
    s.detail = detail;
  };
  const run = async (id, fn) => {
    current = STEPS.findIndex((s) => s.id === id);
    try {
      const detail = await fn();
      pass(id, detail ?? "");
    } catch (err) {
      throw new VerifyError(STEPS[current].name, err && err.message ? err.message : String(err));
    }
  };
  try {
    let verifier;
    await run("key", async () => {
      verifier = await parseVerifierKey(trustedKeyText);
      return `pinned ${verifier.name} (key id ${verifier.keyIdHex})`;
    });

    let doc;
    let batchPath;
    let ledgerPath;
    await run("document", () => {
      try {
        doc = parseJsonExact(String(proofText));
      } catch (e) {
        throw new Error(`not JSON: ${e.message}`);
      }
      if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new Error("not a JSON object");
      const want = ["event", "leaf_hash", "batch", "ledger_entry", "ledger", "checkpoint"];
      for (const k of Object.keys(doc)) if (!want.includes(k)) throw new Error(`unknown field ${k}`);
      for (const k of want) if (!(k in doc)) throw new Error(`missing field ${k}`);
      checkColumns(doc.event);
      const b = doc.batch;
      const l = doc.ledger;
      if (!b || typeof b !== "object" || Object.keys(b).sort().join() !== "index,leaf_index,path,size") throw new Error("batch must have exactly index, leaf_index, size, path");
      if (!l || typeof l !== "object" || Object.keys(l).sort().join() !== "path,size") throw new Error("ledger must have exactly size, path");
      for (const [o, k] of [[b, "index"], [b, "leaf_index"], [b, "size"], [l, "size"]]) {
        if (typeof o[k] !== "bigint" || o[k] < 0n || o[k] > U64_MAX) throw new Error(`${o === b ? "batch" : "ledger"}.${k} must be an unsigned integer`);
      }
      const hashes = (p, what) => {
        if (!Array.isArray(p)) throw new Error(`${what} must be a list`);
        return p.map((h) => {
          try {
            return fromHex(h, 32);
          } catch {
            throw new Error(`${what} hash ${JSON.stringify(h)} is not 32 bytes of lowercase hex`);
          }
        });
      };
      batchPath = hashes(b.path, "batch path");
      ledgerPath = hashes(l.path, "ledger path");
      if (typeof doc.ledger_entry !== "string") throw new Error("ledger_entry must be a string");
      if (typeof doc.checkpoint !== "string") throw new Error("checkpoint must be a string");
      if (typeof doc.leaf_hash !== "string" || !/^[0-9a-f]{64}$/.test(doc.leaf_hash)) throw new Error("leaf_hash must be 64 lowercase hex digits");
      const ev = doc.event;
      facts.seq = ev.seq;
      facts.id = ev.id;
      facts.tenant = ev.tenant_id;
      return `event seq ${ev.seq}, batch ${b.index}, ledger size ${l.size}`;
    });

    await run("event", () => {
      if (!expected) return "no displayed event to compare";
      const diff = eventMismatches(doc.event, expected.columns ?? {});
      if (diff.length) {
        const first = diff[0];
        throw new Error(
          `the proof is about a different event than the one shown (${diff.join(", ")} differ${first === "seq" || first === "id" ? `: ${first} ${doc.event[first]} in the proof, ${expected.columns[first]} shown` : ""})`,
        );
      }
      return `seq ${doc.event.seq} and id ${doc.event.id} are the event shown`;
    });

    let leaf;
    await run("leaf", async () => {
      leaf = await eventLeafHash(doc.event);
      const hex = toHex(leaf);
      if (hex !== doc.leaf_hash) throw new Error(`the 24 columns hash to ${hex}, not the proof's leaf_hash ${doc.leaf_hash}`);
      if (expected && expected.leafHashHex && expected.leafHashHex !== hex) {
        throw new Error(`the 24 columns hash to ${hex}, not the leaf hash the query showed (${expected.leafHashHex})`);
      }
      return hex;
    });

    let entry;
    await run("entry", () => {
      entry = parseLedgerEntry(doc.ledger_entry);
      const b = doc.batch;
      if (b.index !== entry.index) throw new Error(`batch index ${b.index} is not the entry's index ${entry.index}`);
      if (b.size !== entry.count) throw new Error(`batch size ${b.size} is not the entry's count ${entry.count}`);
      const seq = doc.event.seq;
      if (seq < entry.first_seq || seq >= entry.first_seq + entry.count) {
        throw new Error(`seq ${seq} is outside the entry's [${entry.first_seq}, ${entry.first_seq + entry.count})`);
      }
      if (expected && expected.log && expected.log !== entry.log) throw new Error(`the entry is of log ${entry.log}, the event shown of log ${expected.log}`);
      if (Array.isArray(entry.tenants) && !entry.tenants.includes(doc.event.tenant_id)) {
        throw new Error(`the entry does not list tenant ${doc.event.tenant_id}`);
      }
      facts.log = entry.log;
      facts.batchIndex = entry.index;
      return `v${entry.v} entry ${entry.index} of log ${entry.log}: seqs [${entry.first_seq}, ${entry.first_seq + entry.count})`;
    });

    await run("batch", async () => {
      let root;
      try {
        root = await rootFromInclusion(leaf, doc.batch.leaf_index, doc.batch.size, batchPath);
      } catch (e) {
        throw new Error(`the path is not valid: ${e.message}`);
      }
      if (toHex(root) !== entry.root) throw new Error(`the path does not lead to the ledger entry's root (got ${toHex(root)}, entry root ${entry.root})`);
      return entry.root;
    });

    let eh;
    await run("entryHash", async () => {
      eh = await entryHash(doc.ledger_entry);
      return toHex(eh);
    });

    let checkpoint;
    await run("checkpoint", () => {
      checkpoint = parseCheckpoint(doc.checkpoint);
      if (checkpoint.origin !== verifier.name) {
        throw new Error(`the checkpoint's origin ${checkpoint.origin} is not the pinned key's name ${verifier.name}`);
      }
      if (doc.ledger.size !== checkpoint.size) throw new Error(`ledger size ${doc.ledger.size} differs from the checkpoint's size ${checkpoint.size}`);
      facts.checkpointSize = checkpoint.size;
      facts.origin = checkpoint.origin;
      return `${checkpoint.origin}, size ${checkpoint.size}`;
    });

    await run("ledger", async () => {
      let root;
      try {
        root = await rootFromInclusion(eh, entry.index, doc.ledger.size, ledgerPath);
      } catch (e) {
        throw new Error(`the path is not valid: ${e.message}`);
      }
      if (!bytesEqual(root, checkpoint.root)) {
        throw new Error(`the path does not lead to the checkpoint's root (got ${toHex(root)}, checkpoint root ${toHex(checkpoint.root)})`);
      }
      return toHex(root);
    });

    await run("signature", async () => {
      await verifyCheckpointSignature(checkpoint, verifier);
      return `signed by ${verifier.name} (key id ${verifier.keyIdHex})`;
    });

    const summary =
      `verified: event seq ${facts.seq} (tenant ${facts.tenant}) is in batch ${facts.batchIndex} of log ${facts.log}, ` +
      `covered by checkpoint ${facts.checkpointSize} of ${facts.origin}, signed by the pinned key`;
    return { ok: true, steps, failed: null, summary, facts };
  } catch (err) {
    const e = err instanceof VerifyError ? err : new VerifyError(STEPS[current].name, String(err && err.message ? err.message : err));
    const s = steps[current];
    s.status = "failed";
    s.detail = e.detail;
    return { ok: false, steps, failed: { id: s.id, name: s.name, detail: e.detail }, summary: `failed: ${s.name} — ${e.detail}`, facts };
  }
}
