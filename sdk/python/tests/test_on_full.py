"""on_full = block / raise / drop with a small spool_max_bytes (64 KiB) while the server is away."""

import os
import threading
import time

import pytest

from auditum import AuditClient, EventsDroppedError, SpoolFullError
from conftest import Server, id_counts, wait_for

SMALL = 64 * 1024
EVENT = dict(action="file.exported", actor={"id": "user-1", "type": "user"}, metadata={"pad": "x" * 400})


def fill(client):
    ids = []
    while True:
        try:
            event_id = client.log(**EVENT)
        except SpoolFullError:
            return ids
        if event_id is None:
            return ids
        ids.append(event_id)


def spool_files_bytes(directory):
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory) if name.endswith(".spool"))


def client_for(url, tmp_path, **options):
    return AuditClient(url, tenant_id="full", spool_dir=str(tmp_path / "spool"), spool_max_bytes=SMALL,
                       retry_max_delay=0.5, **options)


def test_raise_raises_at_once_and_the_spool_stays_within_its_bound(tmp_path):
    client = client_for("http://127.0.0.1:1", tmp_path, on_full="raise", on_error=lambda e: None)
    ids = fill(client)
    assert len(ids) > 50
    started = time.monotonic()
    with pytest.raises(SpoolFullError, match="spool_max_bytes=65536"):
        client.log(**EVENT)
    assert time.monotonic() - started < 0.05
    assert spool_files_bytes(client.spool_dir) <= SMALL
    assert client.counters.logged == len(ids)
    client.close(timeout=0)


def test_drop_counts_and_reports_every_dropped_event(tmp_path):
    reported = []
    client = client_for("http://127.0.0.1:1", tmp_path, on_full="drop", on_error=reported.append)
    ids = fill(client)
    for _ in range(9):
        assert client.log(**EVENT) is None
    drops = [error for error in reported if isinstance(error, EventsDroppedError)]
    assert client.counters.dropped == 10 and len(drops) == 10 and drops[-1].total == 10
    assert client.counters.logged == len(ids)
    client.close(timeout=0)


def test_block_waits_block_timeout_then_raises(tmp_path):
    client = client_for("http://127.0.0.1:1", tmp_path, on_full="block", block_timeout=0.5, on_error=lambda e: None)
    fill(client)
    started = time.monotonic()
    with pytest.raises(SpoolFullError, match="waited block_timeout=0.5"):
        client.log(**EVENT)
    assert 0.45 <= time.monotonic() - started < 2
    client.close(timeout=0)


def test_block_returns_once_the_server_frees_room(tmp_path):
    os.makedirs(tmp_path / "server")
    server = Server(str(tmp_path / "server"))  # not started yet: its port refuses connections
    client = client_for(server.url, tmp_path, on_full="block", block_timeout=120, on_error=lambda e: None)
    ids = []
    producer = threading.Thread(target=lambda: ids.extend(client.log(**EVENT) for _ in range(300)))  # ~150 KB
    producer.start()
    wait_for(lambda: client.counters.spool_bytes > SMALL - 1024, 30, message="a full spool")
    producer.join(1.0)
    assert producer.is_alive() and client.counters.logged < 300, "log() waits while the spool is full"
    server.start()
    try:
        producer.join(60)
        assert not producer.is_alive() and len(ids) == 300 and all(ids)
        assert client.flush(timeout=60)
        client.close()
        counts = id_counts(server.url, "full")
        assert all(counts[event_id] == 1 for event_id in ids) and sum(counts.values()) == 300
    finally:
        server.stop()


def test_the_async_client_waits_for_room_without_blocking_the_event_loop(tmp_path):
    import asyncio

    from auditum import AsyncAuditClient

    async def scenario():
        client = AsyncAuditClient("http://127.0.0.1:1", tenant_id="full", spool_dir=str(tmp_path / "spool"),
                                  spool_max_bytes=SMALL, on_full="block", block_timeout=0.5, on_error=lambda e: None)
        while client.counters.spool_bytes + 1024 < SMALL:
            await client.log(**EVENT)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        running = asyncio.create_task(ticker())
        started = time.monotonic()
        with pytest.raises(SpoolFullError):
            for _ in range(10):  # the first one that does not fit waits block_timeout, then raises
                await client.log(**EVENT)
        waited = time.monotonic() - started
        running.cancel()
        await client.close(timeout=0)
        return waited, ticks

    waited, ticks = asyncio.run(scenario())
    assert 0.45 <= waited < 2 and ticks >= 20, (waited, ticks)  # the loop kept running while log() waited
