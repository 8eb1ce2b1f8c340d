"""The server is stopped for 30 s while the producer keeps logging: everything arrives once, log() never waits."""

import threading
import time

from auditum import AuditClient, DeliveryError
from conftest import id_counts, wait_for

OUTAGE_SECONDS = 30


def test_a_30_second_outage_loses_nothing_and_never_blocks_log(server, tmp_path):
    errors = []
    # retry_max_delay=5 s (default 30 s) only keeps the test short after the restart.
    client = AuditClient(server.url, tenant_id="outage", spool_dir=str(tmp_path / "spool"), on_error=errors.append,
                         retry_max_delay=5.0)
    ids, durations = [], []
    stop = threading.Event()

    def produce():
        index = 0
        while not stop.is_set():
            started = time.perf_counter()
            ids.append(client.log(action="invoice.paid", actor={"id": "billing", "type": "service"},
                                  target={"type": "invoice", "id": f"inv-{index}"}, metadata={"index": index}))
            durations.append(time.perf_counter() - started)
            index += 1
            time.sleep(0.001)  # a steady stream of requests, not a wait for anything

    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: client.counters.delivered >= 500, 30, message="deliveries before the outage")
    server.stop()
    stopped_at = len(ids)
    time.sleep(OUTAGE_SECONDS)  # the outage itself: the server is down this long while logging goes on
    logged_during_outage = len(ids) - stopped_at
    server.start()
    wait_for(lambda: client.counters.delivered >= len(set(ids)) // 2, 60, message="deliveries after the restart")
    stop.set()
    producer.join()

    assert client.flush(timeout=90), client.counters
    counters = client.counters
    assert client.close(timeout=10)
    assert logged_during_outage > 5_000, "the producer kept logging during the outage"
    assert counters.retried > 0 and any(isinstance(error, DeliveryError) for error in errors)
    durations.sort()
    p99, worst = durations[int(len(durations) * 0.99)], durations[-1]
    # The spool had room all along (1 GiB default): log() never waits on the network.
    assert worst < 0.25 and p99 < 0.005, (p99, worst)
    counts = id_counts(server.url, "outage")
    assert len(ids) == len(set(ids))
    assert {event_id: counts[event_id] for event_id in ids if counts[event_id] != 1} == {}
    assert sum(counts.values()) == len(ids)
