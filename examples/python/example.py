#!/usr/bin/env python3
"""auditum from Python: health, reflection, Append, Query and an event proof.

The client code is generated with grpcio-tools from the repository's proto/ at start (into a
temporary directory), so it always matches the server it ships with.

    pip install -r examples/python/requirements.txt
    python3 examples/python/example.py --server 127.0.0.1:50051 --api-key "$AUDITUM_API_KEY" --tenant acme

Exits non-zero with a message on the first thing that is not as expected.
"""

import argparse
import json
import os
import sys
import tempfile
import uuid

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")


def generate_client(out_dir):
    """Runs protoc (bundled with grpcio-tools) over proto/auditum/v1/*.proto into out_dir."""
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = sorted(
        os.path.join("auditum", "v1", name)
        for name in os.listdir(os.path.join(PROTO_ROOT, "auditum", "v1"))
        if name.endswith(".proto")
    )
    status = protoc.main(
        ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
        + protos
    )
    if status != 0:
        raise SystemExit(f"protoc failed ({status})")
    sys.path.insert(0, out_dir)


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("AUDITUM_ADDR", "127.0.0.1:50051"), help="host:port")
    parser.add_argument("--api-key", default=os.environ.get("AUDITUM_API_KEY"), help="bearer secret (none: development mode)")
    parser.add_argument("--tenant", default="acme")
    args = parser.parse_args()

    generated = tempfile.mkdtemp(prefix="auditum-python-")
    generate_client(generated)
    from auditum.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc, proof_pb2, proof_pb2_grpc, query_pb2, query_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    channel = grpc.insecure_channel(args.server)
    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []

    # Health: the process and the default log, with the standard client.
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "auditum.v1.IngestService", "auditum.log.default"]:
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        check(status == health_pb2.HealthCheckResponse.SERVING, f"health of {service!r} is {status}")
    try:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        check(False, "an unknown service has no health")
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.NOT_FOUND, f"unknown service: {error.code()}")
    print("health: SERVING")

    # Reflection: the services and their methods, without any proto file.
    reflection = ProtoReflectionDescriptorDatabase(channel)
    services = set(reflection.get_services())
    for expected in ["auditum.v1.IngestService", "auditum.v1.QueryService", "auditum.v1.ProofService", "grpc.health.v1.Health"]:
        check(expected in services, f"reflection lists {expected} (got {sorted(services)})")
    append_method = reflection.FindFileContainingSymbol("auditum.v1.IngestService")
    check(append_method is not None, "reflection serves the file of IngestService")
    print("reflection:", ", ".join(sorted(services)))

    # Append: three events; the last call waits until its batch is sealed, so it has a proof.
    ingest = ingest_pb2_grpc.IngestServiceStub(channel)
    correlation = str(uuid.uuid4())
    events = []
    for index, action in enumerate(["user.login", "invoice.create", "user.logout"]):
        event = event_pb2.AuditEvent(
            id=f"py-{correlation}-{index}",
            tenant_id=args.tenant,
            action=action,
            actor=event_pb2.Actor(id="user-17", type=event_pb2.ACTOR_TYPE_USER, name="Ada"),
            target=event_pb2.Target(type="invoice", id=f"inv-{index}"),
            outcome=event_pb2.Outcome(result=event_pb2.OUTCOME_RESULT_SUCCESS),
            context=event_pb2.Context(correlation_id=correlation, source_ip="10.0.0.7", service="billing"),
        )
        event.occurred_at.GetCurrentTime()
        event.metadata.update({"plan": "pro", "seats": 12})
        events.append(event)
    first = ingest.Append(ingest_pb2.AppendRequest(events=events[:2]), metadata=metadata, timeout=30)
    sealed = ingest.Append(ingest_pb2.AppendRequest(events=events[2:], wait_for_seal=True), metadata=metadata, timeout=120)
    results = list(first.results) + list(sealed.results)
    check(len(results) == 3 and not any(result.duplicate for result in results), f"three new events: {results}")
    # A retry of the same id is answered with the original seq.
    retry = ingest.Append(ingest_pb2.AppendRequest(events=events[:1]), metadata=metadata, timeout=30)
    check(retry.results[0].duplicate and retry.results[0].seq == results[0].seq, "a retried id is a duplicate")
    print("append: seqs", [result.seq for result in results])

    # Query: the events of this run, by correlation id, oldest first.
    query = query_pb2_grpc.QueryServiceStub(channel)
    response = query.Query(
        query_pb2.QueryRequest(filter=event_pb2.EventFilter(tenant_id=args.tenant, correlation_id=correlation), page_size=10),
        metadata=metadata,
        timeout=30,
    )
    found = [stored.event.action for stored in response.events]
    check(found == ["user.login", "invoice.create", "user.logout"], f"query returns the three events in order: {found}")
    check(response.events[2].sealed, "the waited-for event is sealed")
    print("query:", found, "stats:", response.stats.rows_read, "rows read")

    # Proof: the sealed event's §7 document; its leaf hash is the one the query reported.
    proof = proof_pb2_grpc.ProofServiceStub(channel)
    seq = results[2].seq
    document = json.loads(proof.GetEventProof(proof_pb2.GetEventProofRequest(seq=seq), metadata=metadata, timeout=60).proof_json)
    check(document["event"]["id"] == events[2].id, "the proof is of our event")
    check(document["leaf_hash"] == response.events[2].leaf_hash.hex(), "the proof's leaf hash matches the query's")
    checkpoint = proof.GetCheckpoint(proof_pb2.GetCheckpointRequest(), metadata=metadata, timeout=30).checkpoint
    check(checkpoint.startswith("auditum/"), "a signed checkpoint note")
    print("proof: seq", seq, "leaf", document["leaf_hash"][:16], "checkpoint", checkpoint.splitlines()[0])

    # Errors are precise gRPC statuses naming the field.
    try:
        ingest.Append(ingest_pb2.AppendRequest(events=[event_pb2.AuditEvent(tenant_id=args.tenant)]), metadata=metadata, timeout=30)
        check(False, "an event without an action is refused")
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.INVALID_ARGUMENT and "events[0]" in error.details(), f"{error.code()}: {error.details()}")
    print("OK")


if __name__ == "__main__":
    main()
