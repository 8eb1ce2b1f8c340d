"""The request a sender builds from a batch is the AppendRequest of its events, whether their frames
come from the store's cache or are read back from the file (retries, a full cache), without a server."""

import random

import pytest

from auditum.spool import Store
from auditum.v1 import event_pb2, ingest_pb2


@pytest.mark.parametrize("spooled", [True, False])
def test_batches_are_the_append_requests_of_their_events(tmp_path, spooled):
    rng = random.Random(7)
    store = Store(str(tmp_path / "spool") if spooled else None, 1 << 30, "batch", print, frame_cache_bytes=3000)
    store.segment_limit = 20_000  # a few segments
    events = {}
    cached_batches = read_batches = 0
    for _ in range(40):
        for _ in range(rng.randint(0, 30)):
            event = event_pb2.AuditEvent(id=f"e{len(events)}", action="a" * rng.choice([1, 100, 300, 20_000]))
            segment = store.append(event.SerializeToString())
            events[(segment.number, segment.count - 1)] = event
        runs, cached = store.take(rng.randint(1, 60), rng.randint(1000, 100_000))
        for run, frames in zip(runs, cached):
            expected = ingest_pb2.AppendRequest(
                events=[events[(run.segment.number, ordinal)] for ordinal in range(run.start, run.end)]).SerializeToString()
            assert b"".join(store.frames(run)) == expected
            if frames is not None:
                assert b"".join(frames) == expected
                cached_batches += 1
            else:
                read_batches += 1
        store.ack(runs)
    assert cached_batches and read_batches
    assert store.cached_bytes == sum(len(frame) for segment in store.segments for frame in segment.frames)
    store.close()
