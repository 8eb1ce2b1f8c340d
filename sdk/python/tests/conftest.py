"""The real auditum binary ($AUDITUM_BIN) on loopback ports, and Query helpers to read the archive."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

import grpc
import pytest

# Test this checkout's package, not an installed copy that may be older: here and in the processes
# the tests start (tests/producer.py).
SRC = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))

from auditum.v1 import event_pb2, query_pb2, query_pb2_grpc  # noqa: E402
from auditum_server import Server, auditum_bin, free_port  # noqa: E402, F401  (re-exported for the tests)


@pytest.fixture(scope="session", autouse=True)
def _binary():
    auditum_bin()  # fail the run at once, with the reason, when $AUDITUM_BIN is unset or missing


@pytest.fixture
def server(tmp_path):
    os.makedirs(tmp_path / "server", exist_ok=True)
    running = Server(str(tmp_path / "server")).start()
    yield running
    running.stop()


def query_all(url: str, tenant: str, metadata=()) -> list:
    """Every stored event of the tenant, sealed or not, through Query's pages.

    Leaves out the server's meta-audit records (`auditum.query` …), which the Query calls
    themselves add to the tenant they read.
    """
    channel = grpc.insecure_channel(url.replace("http://", ""))
    try:
        stub = query_pb2_grpc.QueryServiceStub(channel)
        events, token = [], ""
        while True:
            response = stub.Query(query_pb2.QueryRequest(filter=event_pb2.EventFilter(tenant_id=tenant), page_size=1000,
                                                         page_token=token), metadata=metadata, timeout=60)
            events.extend(stored for stored in response.events if not stored.event.action.startswith("auditum."))
            token = response.next_page_token
            if not token:
                return events
    finally:
        channel.close()


def id_counts(url: str, tenant: str, metadata=()) -> Counter:
    return Counter(stored.event.id for stored in query_all(url, tenant, metadata))


def wait_for(condition, timeout: float, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
