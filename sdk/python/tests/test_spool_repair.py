"""A torn spool tail is truncated; a damaged middle is reported and kept aside; the rest is delivered."""

import logging
import os

from auditum import AuditClient, SpoolDamageError
from auditum import spool_format as fmt
from conftest import id_counts

ACTOR = {"id": "svc", "type": "service"}


def spool_offline(spool, count):
    """Logs `count` events that stay spooled (nothing listens on port 1); returns their ids."""
    client = AuditClient("http://127.0.0.1:1", tenant_id="repair", spool_dir=spool, on_error=lambda e: None)
    ids = [client.log(action="doc.signed", actor=ACTOR, metadata={"n": n}) for n in range(count)]
    assert client.close(timeout=0) is False
    [segment] = [name for name in os.listdir(spool) if name.endswith(".spool")]
    return ids, os.path.join(spool, segment)


def test_a_torn_tail_is_truncated_and_everything_before_it_delivered(server, tmp_path, caplog):
    spool = str(tmp_path / "spool")
    ids, segment = spool_offline(spool, 50)
    intact = os.path.getsize(segment)
    with open(segment, "ab") as handle:  # a crash in the middle of writing one more record
        handle.write(fmt.event_record(b"\x0a\x05half-" + b"x" * 200)[:100])
    reported = []
    with caplog.at_level(logging.INFO, logger="auditum"):
        client = AuditClient(server.url, tenant_id="repair", spool_dir=spool, on_error=reported.append)
    assert f"truncated a torn tail of {segment} at byte {intact}" in caplog.text
    try:
        assert os.path.getsize(segment) == intact
    except FileNotFoundError:  # its events were already delivered and the segment deleted
        pass
    assert client.flush(timeout=30) and client.close()
    assert reported == [] and not os.path.exists(os.path.join(spool, "damaged"))
    counts = id_counts(server.url, "repair")
    assert all(counts[event_id] == 1 for event_id in ids) and sum(counts.values()) == 50


def test_zeros_left_by_a_preallocating_client_are_cut_silently_and_everything_delivered(server, tmp_path, caplog):
    spool = str(tmp_path / "spool")
    ids, segment = spool_offline(spool, 30)
    intact = os.path.getsize(segment)
    with open(segment, "ab") as handle:  # what a client killed with its segment mapped leaves behind
        handle.write(bytes(4 << 20))
    reported = []
    with caplog.at_level(logging.INFO, logger="auditum"):
        client = AuditClient(server.url, tenant_id="repair", spool_dir=spool, on_error=reported.append)
    assert "torn" not in caplog.text
    try:
        assert os.path.getsize(segment) == intact
    except FileNotFoundError:  # its events were already delivered and the segment deleted
        pass
    assert client.flush(timeout=30) and client.close()
    assert reported == []
    counts = id_counts(server.url, "repair")
    assert all(counts[event_id] == 1 for event_id in ids) and sum(counts.values()) == 30


def test_a_damaged_middle_is_reported_kept_aside_and_the_readable_events_delivered(server, tmp_path):
    spool = str(tmp_path / "spool")
    ids, segment = spool_offline(spool, 50)
    with open(segment, "rb") as handle:
        data = bytearray(handle.read())
    parsed = fmt.parse_segment(bytes(data))
    _, offset, _ = parsed.events[20]
    data[offset + 30] ^= 0xFF  # flip a byte inside event 20: its CRC fails, records after it are fine
    with open(segment, "wb") as handle:
        handle.write(data)

    reported = []
    client = AuditClient(server.url, tenant_id="repair", spool_dir=spool, on_error=reported.append)
    damage = [error for error in reported if isinstance(error, SpoolDamageError)]
    assert len(damage) == 1 and "damaged" in str(damage[0]) and os.path.basename(segment) in str(damage[0])
    kept = os.path.join(spool, "damaged", os.path.basename(segment))
    with open(kept, "rb") as handle:
        assert handle.read() == bytes(data), "the damaged file is kept as it was"
    assert client.flush(timeout=30) and client.close()
    counts = id_counts(server.url, "repair")
    assert counts[ids[20]] == 0
    assert all(counts[event_id] == 1 for n, event_id in enumerate(ids) if n != 20) and sum(counts.values()) == 49
