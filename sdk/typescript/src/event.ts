import { isIP } from "node:net";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { encodeEvent } from "./encode.js";
import { newEventId } from "./ids.js";
import { AuditValidationError } from "./errors.js";
import { currentRequestContext } from "./context.js";
import { ActorType as PbActorType, OutcomeResult as PbOutcomeResult } from "./gen/auditum/v1/event_pb.js";

export type ActorType = "user" | "service" | "api_key" | "system" | "anonymous";
export type OutcomeResult = "success" | "failure" | "denied";

export interface ActorInput {
  /** Required, at most 256 bytes. */
  id: string;
  type?: ActorType;
  name?: string;
}
export interface TargetInput {
  type?: string;
  id?: string;
  name?: string;
}
export interface OutcomeInput {
  result: OutcomeResult;
  errorCode?: string;
  reason?: string;
}
export interface ContextInput {
  requestId?: string;
  correlationId?: string;
  sessionId?: string;
  /** A valid IPv4 or IPv6 address. */
  sourceIp?: string;
  userAgent?: string;
  service?: string;
}

/** What the caller passes to log() and logDurable(). DESIGN.md §2.1 gives the server's rules. */
export interface AuditEventInput {
  /** Required, at most 128 bytes, [A-Za-z0-9._:-]+. */
  tenantId: string;
  /** Required, at most 128 bytes, lowercase dot-separated: ^[a-z0-9_-]+(\.[a-z0-9_-]+)*$ */
  action: string;
  /** Who did it; falls back to the ambient request context's actor. */
  actor?: ActorInput;
  target?: TargetInput;
  /** "success" | "failure" | "denied", or an object with an error code and a reason. */
  outcome: OutcomeResult | OutcomeInput;
  /** Per-field, these win over the ambient request context. */
  context?: ContextInput;
  before?: JsonObject;
  after?: JsonObject;
  metadata?: JsonObject;
  /** Idempotency id (at most 128 bytes); a UUIDv7 is assigned when absent. */
  id?: string;
  /** When it happened: a Date, milliseconds since the epoch, or an RFC 3339 string. Default: now. */
  occurredAt?: Date | number | string;
  /**
   * The person this event's personal data is about (at most 256 bytes; not stored): the key of the server's
   * `encrypt_fields`, so erasing the subject (`auditum erase`) shreds the event. Default: the actor.
   */
  subjectId?: string;
}

const MAX_EVENT_BYTES = 64 * 1024;
const MAX_STRUCT_DEPTH = 32;
const MAX_FUTURE_MS = 5 * 60 * 1000;
const TENANT_RE = /^[A-Za-z0-9._:-]+$/;
const ACTION_RE = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

const ACTOR_TYPES: Record<ActorType, PbActorType> = {
  user: PbActorType.USER,
  service: PbActorType.SERVICE,
  api_key: PbActorType.API_KEY,
  system: PbActorType.SYSTEM,
  anonymous: PbActorType.ANONYMOUS,
};
const OUTCOMES: Record<OutcomeResult, PbOutcomeResult> = {
  success: PbOutcomeResult.SUCCESS,
  failure: PbOutcomeResult.FAILURE,
  denied: PbOutcomeResult.DENIED,
};

export interface PreparedEvent {
  id: string;
  /** The protobuf encoding of auditum.v1.AuditEvent, with id set. */
  bytes: Uint8Array;
}

/**
 * Stamps the id, occurred_at and the ambient context, checks the event (unless `validate` is false) and encodes
 * it. Throws AuditValidationError naming the field and the limit.
 */
export function prepareEvent(input: AuditEventInput, validate: boolean): PreparedEvent {
  if (input === null || typeof input !== "object") throw new AuditValidationError("event", "must be an object");
  const id = input.id ? input.id : newEventId();
  const ambient = currentRequestContext();
  const actor = input.actor ?? ambient?.actor;
  // outcome: "success", or { result: "success", errorCode?, reason? }
  const outcome = typeof input.outcome === "string" ? undefined : (input.outcome as OutcomeInput | undefined);
  const result = typeof input.outcome === "string" ? input.outcome : outcome?.result;
  const context = mergeContext(ambient, input.context);

  if (validate) {
    checkString("id", id, 128, false);
    checkString("tenant_id", input.tenantId, 128, true);
    if (!TENANT_RE.test(input.tenantId)) throw new AuditValidationError("tenant_id", "must match [A-Za-z0-9._:-]+");
    checkString("action", input.action, 128, true);
    if (!ACTION_RE.test(input.action)) {
      throw new AuditValidationError(
        "action",
        `must be a lowercase dot-separated verb matching ^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$ (got ${JSON.stringify(input.action)})`,
      );
    }
    if (!actor) throw new AuditValidationError("actor.id", "is required (pass actor or set it in the request context)");
    checkString("actor.id", actor.id, 256, true);
    if (actor.type !== undefined && !(actor.type in ACTOR_TYPES)) {
      throw new AuditValidationError("actor.type", `must be one of ${Object.keys(ACTOR_TYPES).join(", ")}`);
    }
    if (!((result as string) in OUTCOMES)) {
      throw new AuditValidationError("outcome.result", `is required: one of ${Object.keys(OUTCOMES).join(", ")}`);
    }
    checkString("subject_id", input.subjectId, 256, false);
    if (context?.sourceIp && isIP(context.sourceIp) === 0) {
      throw new AuditValidationError("context.source_ip", `must be an IPv4 or IPv6 address (got ${JSON.stringify(context.sourceIp)})`);
    }
  }
  const occurredAt = toTimestamp(input.occurredAt, validate);
  const before = jsonObject("before", input.before);
  const after = jsonObject("after", input.after);
  const metadata = jsonObject("metadata", input.metadata);

  let bytes: Uint8Array;
  try {
    const { scratch, end } = encodeEvent(
      {
        id,
        tenantId: input.tenantId,
        seconds: occurredAt.seconds,
        nanos: occurredAt.nanos,
        action: input.action,
        actor,
        actorType: actor?.type ? (ACTOR_TYPES[actor.type] ?? 0) : 0,
        target: input.target,
        result: OUTCOMES[result as OutcomeResult] ?? 0,
        errorCode: outcome?.errorCode,
        reason: outcome?.reason,
        context,
        before,
        after,
        metadata,
        subjectId: input.subjectId,
      },
      0,
    );
    bytes = Buffer.allocUnsafe(end);
    scratch.copy(bytes, 0, 0, end);
  } catch (err) {
    throw new AuditValidationError("event", `cannot be encoded: ${(err as Error).message}`);
  }
  if (validate && bytes.length > MAX_EVENT_BYTES) {
    throw new AuditValidationError("event", `encodes to ${bytes.length} bytes, over the limit of ${MAX_EVENT_BYTES} (64 KiB)`);
  }
  return { id, bytes };
}

function mergeContext(ambient: ContextInput | undefined, explicit: ContextInput | undefined): ContextInput | undefined {
  if (!ambient) return explicit;
  const merged: ContextInput = {
    requestId: ambient.requestId,
    correlationId: ambient.correlationId,
    sessionId: ambient.sessionId,
    sourceIp: ambient.sourceIp,
    userAgent: ambient.userAgent,
    service: ambient.service,
  };
  if (explicit) for (const [k, v] of Object.entries(explicit)) if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  return merged;
}

function checkString(field: string, value: unknown, maxBytes: number, required: boolean): void {
  if (value === undefined || value === null || value === "") {
    if (required) throw new AuditValidationError(field, "is required");
    return;
  }
  if (typeof value !== "string") throw new AuditValidationError(field, "must be a string");
  const n = Buffer.byteLength(value, "utf8");
  if (n > maxBytes) throw new AuditValidationError(field, `is ${n} bytes, over the limit of ${maxBytes}`);
}

function toTimestamp(value: Date | number | string | undefined, validate: boolean): { seconds: number; nanos: number } {
  let ms: number;
  let nanosOverride: number | undefined;
  if (value === undefined) ms = Date.now();
  else if (value instanceof Date) ms = value.getTime();
  else if (typeof value === "number") ms = value;
  else if (typeof value === "string") {
    ms = Date.parse(value);
    const frac = /T\d\d:\d\d:\d\d\.(\d{1,9})/.exec(value);
    if (frac) nanosOverride = Number(frac[1].padEnd(9, "0"));
  } else throw new AuditValidationError("occurred_at", "must be a Date, milliseconds since the epoch or an RFC 3339 string");
  if (!Number.isFinite(ms)) throw new AuditValidationError("occurred_at", `is not a valid time (${String(value)})`);
  if (validate && ms > Date.now() + MAX_FUTURE_MS) {
    throw new AuditValidationError("occurred_at", `is ${Math.round((ms - Date.now()) / 1000)} s in the future, over the limit of 300 s`);
  }
  const seconds = Math.floor(ms / 1000);
  const nanos = nanosOverride ?? Math.round((ms - seconds * 1000) * 1e6);
  return { seconds, nanos };
}

/** Checks that a Struct field holds JSON values only (depth ≤ 32) and drops undefined members, as JSON does. */
function jsonObject(field: string, value: JsonObject | undefined): JsonObject | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) throw new AuditValidationError(field, "must be a plain object");
  try {
    return cleanJson(value, 1) as JsonObject;
  } catch (err) {
    if (err instanceof JsonPathError) throw new AuditValidationError(field + err.path, err.message);
    throw err;
  }
}

/**
 * A bad value inside a Struct field. The path (".a.b[2]") is built while the error propagates, so that checking a
 * good event builds no path strings.
 */
class JsonPathError extends Error {
  constructor(
    public path: string,
    message: string,
  ) {
    super(message);
  }
}

function under(err: unknown, step: string): unknown {
  if (err instanceof JsonPathError) err.path = step + err.path;
  return err;
}

function cleanJson(value: unknown, depth: number): JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new JsonPathError("", `must be a finite number (got ${value})`);
    return value;
  }
  if (typeof value !== "object") throw new JsonPathError("", `is a ${typeof value}: only JSON values are allowed`);
  if (depth > MAX_STRUCT_DEPTH) throw new JsonPathError("", `nests deeper than the limit of ${MAX_STRUCT_DEPTH} levels`);
  if (Array.isArray(value)) {
    let out: JsonValue[] | undefined;
    for (let i = 0; i < value.length; i++) {
      let v: JsonValue;
      try {
        v = cleanJson(value[i] === undefined ? null : value[i], depth + 1);
      } catch (err) {
        throw under(err, `[${i}]`);
      }
      if (v !== value[i] && !out) out = value.slice(0, i);
      if (out) out.push(v);
    }
    return out ?? (value as JsonValue[]);
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new JsonPathError("", `is a ${proto?.constructor?.name ?? "non-plain object"}: only JSON values are allowed`);
  }
  // Own enumerable keys in Object.keys() order, without the arrays Object.entries() allocates.
  const obj = value as Record<string, unknown>;
  let out: Record<string, JsonValue> | undefined;
  for (const k in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
    const v = obj[k];
    if (v === undefined) {
      if (!out) out = copyUntil(obj, k);
      continue;
    }
    let c: JsonValue;
    try {
      c = cleanJson(v, depth + 1);
    } catch (err) {
      throw under(err, `.${k}`);
    }
    if (c !== v && !out) out = copyUntil(obj, k);
    if (out) out[k] = c;
  }
  return out ?? (obj as JsonObject);
}

/** The members of obj before key `stop` (all of them clean: they are the ones checked already). */
function copyUntil(obj: Record<string, unknown>, stop: string): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const k in obj) {
    if (k === stop) break;
    if (Object.prototype.hasOwnProperty.call(obj, k) && obj[k] !== undefined) out[k] = obj[k] as JsonValue;
  }
  return out;
}
