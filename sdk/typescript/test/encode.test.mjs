import { test } from "node:test";
import assert from "node:assert/strict";
import { fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { AuditEventSchema } from "../dist/gen/auditum/v1/event_pb.js";
import { prepareEvent } from "../dist/event.js";

// The hand-written encoder must write exactly what protobuf-es writes: decode with protobuf-es, re-encode, compare.
const cases = [
  { tenantId: "acme", action: "user.login", actor: { id: "u1" }, outcome: "success" },
  {
    tenantId: "t:1.x_y-z",
    action: "user.role.updated",
    actor: { id: "üser-17 ✓", type: "api_key", name: "Ada" },
    target: { type: "user", id: "user-99", name: "" },
    outcome: { result: "denied", errorCode: "E42", reason: "r".repeat(200) },
    context: { requestId: "req-1", correlationId: "c", sessionId: "s", sourceIp: "2001:db8::1", userAgent: "ua", service: "svc" },
    before: { role: "viewer", n: 0, neg: -1.5, big: 2 ** 53, t: true, f: false, z: null, e: {}, l: [] },
    after: { nested: { a: [1, "two", null, { three: [3] }], "ключ": "значение" }, empty: "" },
    metadata: { ticket: 4411, long: "x".repeat(20_000), emoji: "😀" },
    occurredAt: "2024-05-01T10:00:00.123456789Z",
    subjectId: "patient-7",
  },
  { tenantId: "acme", action: "a", actor: { id: "u", type: "system" }, outcome: "failure", occurredAt: new Date(0) },
  { tenantId: "acme", action: "a", actor: { id: "u" }, outcome: "success", occurredAt: -1500, context: {} },
  { tenantId: "acme", action: "a", actor: { id: "u" }, outcome: "success", metadata: { deep: { a: { b: { c: { d: [[[["x"]]]] } } } } } },
];

test("the event encoder writes protobuf-es's bytes", () => {
  for (const input of cases) {
    const { id, bytes } = prepareEvent(input, true);
    const msg = fromBinary(AuditEventSchema, bytes);
    assert.equal(msg.id, id);
    assert.deepEqual(Buffer.from(toBinary(AuditEventSchema, msg)), Buffer.from(bytes), JSON.stringify(input).slice(0, 100));
    const json = toJson(AuditEventSchema, msg);
    assert.equal(json.tenantId, input.tenantId);
    for (const k of ["before", "after", "metadata"]) if (input[k]) assert.deepEqual(json[k], input[k]);
  }
});

test("subject_id is sent (field 12) and checked against its 256-byte limit", () => {
  assert.equal(fromBinary(AuditEventSchema, prepareEvent(cases[1], true).bytes).subjectId, "patient-7");
  assert.equal(fromBinary(AuditEventSchema, prepareEvent(cases[0], true).bytes).subjectId, "");
  assert.throws(() => prepareEvent({ ...cases[0], subjectId: "s".repeat(257) }, true), /subject_id/);
});

test("occurred_at keeps microseconds from an RFC 3339 string and milliseconds from a Date", () => {
  const a = fromBinary(AuditEventSchema, prepareEvent(cases[1], true).bytes);
  assert.equal(toJson(AuditEventSchema, a).occurredAt, "2024-05-01T10:00:00.123456789Z");
  const b = fromBinary(AuditEventSchema, prepareEvent({ ...cases[0], occurredAt: new Date("2024-05-01T10:00:00.250Z") }, true).bytes);
  assert.equal(toJson(AuditEventSchema, b).occurredAt, "2024-05-01T10:00:00.250Z");
});

test("the worker's AppendResponse reader counts results and duplicates as protobuf-es decodes them", async () => {
  const { create } = await import("@bufbuild/protobuf");
  const { AppendResponseSchema } = await import("../dist/gen/auditum/v1/ingest_pb.js");
  const { countResults } = await import("../dist/delivery.js");
  const results = Array.from({ length: 300 }, (_, i) => ({
    seq: BigInt(i * 1000),
    id: `id-${i}`,
    duplicate: i % 7 === 0,
    receivedAt: { seconds: 1_700_000_000n, nanos: i },
    log: "default",
  }));
  const bytes = toBinary(AppendResponseSchema, create(AppendResponseSchema, { results }));
  assert.deepEqual(countResults(bytes), { results: 300, duplicates: results.filter((r) => r.duplicate).length });
  assert.deepEqual(countResults(new Uint8Array(0)), { results: 0, duplicates: 0 });
});

test("the AppendResponse reader skips fields it does not know and refuses a truncated response", async () => {
  const { BinaryWriter, WireType } = await import("@bufbuild/protobuf/wire");
  const { countResults } = await import("../dist/delivery.js");
  // Fields a newer server might add, of every wire type, around and inside the results.
  const unknown = (w) =>
    w
      .tag(90, WireType.Varint).uint64(2n ** 63n)
      .tag(91, WireType.Bit64).fixed64(5n)
      .tag(92, WireType.Bit32).fixed32(7)
      .tag(93, WireType.LengthDelimited).bytes(new Uint8Array(300))
      .tag(94, WireType.StartGroup).tag(1, WireType.Varint).uint32(3).tag(94, WireType.EndGroup);
  const w = unknown(new BinaryWriter());
  for (const dup of [true, false, true]) {
    w.tag(1, WireType.LengthDelimited).fork();
    unknown(w.tag(1, WireType.Varint).uint64(12n)).tag(3, WireType.Varint).bool(dup);
    w.tag(5, WireType.LengthDelimited).string("default").join();
  }
  const bytes = unknown(w).finish();
  assert.deepEqual(countResults(bytes), { results: 3, duplicates: 2 });
  assert.throws(() => countResults(bytes.subarray(0, bytes.length - 20)));
});
