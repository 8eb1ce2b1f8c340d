#!/usr/bin/env python3
"""auditum from Python: health, reflection, appending with the SDK, Query and an event proof.

Appends go through the `auditum` SDK (sdk/python): `log_durable` for events whose seq we need,
`log` + `flush` for fire-and-forget ones. Health, reflection, Query and proofs use the SDK's
generated stubs (`auditum.v1`) and grpcio's own health and reflection clients.

    pip install -r examples/python/requirements.txt      # from the repository root
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

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import auditum  # noqa: F401  (pip install ./sdk/python)
except ImportError:  # run from a checkout without installing: use the SDK's source next door
    sys.path.insert(0, os.path.join(HERE, "..", "..", "sdk", "python", "src"))


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("AUDITUM_ADDR", "127.0.0.1:50051"), help="host:port")
    parser.add_argument("--api-key", default=os.environ.get("AUDITUM_API_KEY"), help="bearer secret (none: development mode)")
    parser.add_argument("--tenant", default="acme")
    args = parser.parse_args()

    from auditum import AuditClient, EventRejectedError, request_context
    from auditum.v1 import proof_pb2, proof_pb2_grpc, query_pb2, query_pb2_grpc, event_pb2
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

    # Append with the SDK: a spool in a temporary directory, the API key, the tenant as default.
    url = args.server if "://" in args.server else f"http://{args.server}"
    spool_dir = tempfile.mkdtemp(prefix="auditum-example-spool-")
    client = AuditClient(url, api_key=args.api_key, tenant_id=args.tenant, service="billing", spool_dir=spool_dir)
    correlation = str(uuid.uuid4())
    actor = {"id": "user-17", "type": "user", "name": "Ada"}
    with request_context(correlation_id=correlation, source_ip="10.0.0.7"):
        login = client.log_durable(action="user.login", actor=actor, target={"type": "invoice", "id": "inv-0"},
                                   metadata={"plan": "pro", "seats": 12})
        # Fire and forget: log() returns the id at once; flush() waits for the acknowledgement.
        invoice_id = client.log(action="invoice.create", actor=actor, target={"type": "invoice", "id": "inv-1"},
                                metadata={"plan": "pro", "seats": 12})
        check(client.flush(timeout=30), "log() + flush() delivers the event")
        # wait_for_seal: answered once the event's batch is committed, so it has a proof at once.
        logout = client.log_durable(action="user.logout", actor=actor, target={"type": "invoice", "id": "inv-2"},
                                    metadata={"plan": "pro", "seats": 12}, wait_for_seal=True, timeout=120)
    check(not login.duplicate and not logout.duplicate, f"two new events: {login} {logout}")
    # A retry of the same id is answered with the original seq.
    retry = client.log_durable(action="user.login", actor=actor, id=login.id)
    check(retry.duplicate and retry.seq == login.seq, "a retried id is a duplicate")
    counters = client.counters
    check(counters.delivered == 1 and counters.pending == 0, f"the logged event was delivered: {counters}")
    print("append: seqs", [login.seq, logout.seq], "(log_durable); log()+flush() delivered", invoice_id)

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
    check(response.events[1].event.id == invoice_id, "the log()ged event is the second one")
    print("query:", found, "stats:", response.stats.rows_read, "rows read")

    # Proof: the sealed event's §7 document; its leaf hash is the one the query reported.
    proof = proof_pb2_grpc.ProofServiceStub(channel)
    seq = logout.seq
    document = json.loads(proof.GetEventProof(proof_pb2.GetEventProofRequest(seq=seq), metadata=metadata, timeout=60).proof_json)
    check(document["event"]["id"] == logout.id, "the proof is of our event")
    check(document["leaf_hash"] == response.events[2].leaf_hash.hex(), "the proof's leaf hash matches the query's")
    checkpoint = proof.GetCheckpoint(proof_pb2.GetCheckpointRequest(), metadata=metadata, timeout=30).checkpoint
    check(checkpoint.startswith("auditum/"), "a signed checkpoint note")
    print("proof: seq", seq, "leaf", document["leaf_hash"][:16], "checkpoint", checkpoint.splitlines()[0])

    # Errors are precise: locally (ValidationError) or, past the local checks, from the server.
    unchecked = AuditClient(url, api_key=args.api_key, tenant_id=args.tenant, spool_dir=None, validate_locally=False)
    try:
        unchecked.log_durable(action="", actor=actor)
        check(False, "an event without an action is refused")
    except EventRejectedError as error:
        check(error.code == "INVALID_ARGUMENT" and "events[0]" in error.server_message, f"{error}")
    unchecked.close()
    check(client.close(timeout=10), "close() after everything was delivered")
    check(os.listdir(spool_dir) == [], f"a closed, fully delivered spool is empty: {os.listdir(spool_dir)}")
    os.rmdir(spool_dir)
    print("OK")


if __name__ == "__main__":
    main()
