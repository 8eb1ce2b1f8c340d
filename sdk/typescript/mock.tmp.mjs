import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AppendRequestSchema, AppendResponseSchema } from "/work/wt-typescript/sdk/typescript/dist/gen/auditum/v1/ingest_pb.js";
const seen = new Map(); let seq = 0n; let calls = 0;
const server = new grpc.Server();
server.addService({ Append: { path: "/auditum.v1.IngestService/Append", requestStream: false, responseStream: false,
  requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b } },
  { Append: (call, cb) => {
    calls++;
    const req = fromBinary(AppendRequestSchema, call.request);
    for (const [i, e] of req.events.entries()) if (/[A-Z]/.test(e.action)) return cb({ code: 3, details: `events[${i}].action: must be lowercase` });
    const results = req.events.map((e) => { const d = seen.has(e.id); if (!d) seen.set(e.id, ++seq); return { seq: seen.get(e.id), id: e.id, duplicate: d }; });
    cb(null, Buffer.from(toBinary(AppendResponseSchema, create(AppendResponseSchema, { results }))));
  } });
server.bindAsync("127.0.0.1:" + process.argv[2], grpc.ServerCredentials.createInsecure(), () => console.log("mock up"));
setInterval(() => console.log("unique", seen.size, "calls", calls), 2000).unref();
process.on("SIGTERM", () => { console.log("unique", seen.size, "calls", calls); process.exit(0); });
