"""Local checks raise at once, in the caller, naming the field and the limit; nothing is spooled."""

import datetime as dt

import pytest

from auditum import AuditClient, ValidationError, new_id

GOOD = dict(action="user.login", actor={"id": "user-1", "type": "user"})


@pytest.fixture
def client(tmp_path):
    # Nothing listens on port 1: events stay spooled, which is all these tests need.
    with AuditClient("http://127.0.0.1:1", tenant_id="acme", spool_dir=str(tmp_path / "spool"), on_error=lambda e: None) as c:
        yield c
        c.close(timeout=0)


@pytest.mark.parametrize("change, field, words", [
    (dict(action="User.Login"), "action", "lowercase dot-separated"),
    (dict(action=""), "action", "required"),
    (dict(action="a" * 129), "action", "128-byte limit"),
    (dict(tenant_id="acme corp"), "tenant_id", "[A-Za-z0-9._:-]+"),
    (dict(tenant_id="t" * 129), "tenant_id", "128-byte limit"),
    (dict(actor={"type": "user"}), "actor.id", "required"),
    (dict(actor={"id": "u" * 257}), "actor.id", "256-byte limit"),
    (dict(actor={"id": "u", "type": "robot"}), "actor.type", "robot"),
    (dict(outcome="maybe"), "outcome.result", "maybe"),
    (dict(context={"source_ip": "10.0.0.300"}), "context.source_ip", "IPv4 or IPv6"),
    (dict(context={"request": "x"}), "context", "unknown key"),
    (dict(id="i" * 129), "id", "128-byte limit"),
    (dict(metadata={"blob": "x" * 70 * 1024}), "event", "65536-byte limit"),
    (dict(metadata={"when": dt.datetime.now()}), "metadata", "JSON"),
    (dict(occurred_at=dt.datetime.now()), "occurred_at", "naive"),
    (dict(occurred_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)), "occurred_at", "5 minutes"),
])
def test_a_bad_field_raises_naming_it(client, change, field, words):
    with pytest.raises(ValidationError) as raised:
        client.log(**{**GOOD, **change})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ") and words in str(raised.value)
    assert client.counters.logged == 0


def test_a_good_event_gets_a_uuid7_and_is_spooled(client):
    event_id = client.log(**GOOD, target={"type": "user", "id": "u2"}, metadata={"n": 1})
    assert len(event_id) == 36 and event_id[14] == "7" and event_id[19] in "89ab"
    assert client.counters.logged == 1 and client.counters.pending == 1
    assert client.log(**GOOD, id="my-own-id") == "my-own-id"
    assert new_id() != new_id()


def test_validate_locally_false_lets_a_bad_event_through(tmp_path):
    with AuditClient("http://127.0.0.1:1", tenant_id="acme", spool_dir=str(tmp_path / "s"), validate_locally=False,
                     on_error=lambda e: None) as c:
        assert c.log(action="User.Login", actor="u1")
        c.close(timeout=0)


def test_options_are_checked():
    with pytest.raises(ValueError, match="on_full"):
        AuditClient("http://127.0.0.1:1", on_full="sometimes")
    with pytest.raises(ValueError, match="batch_max_events: 5000 is outside 1..1000"):
        AuditClient("http://127.0.0.1:1", batch_max_events=5000)
    with pytest.raises(ValueError, match="spool_fsync"):
        AuditClient("http://127.0.0.1:1", spool_fsync="sometimes")


def test_ids_differ_in_a_forked_child_and_ignore_random_seed():
    import os
    import random

    from auditum import ids

    random.seed(1)
    first = new_id()
    random.seed(1)
    assert new_id() != first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # without a reseed the child would draw exactly the parent's next bits
        os.write(write, str(ids._bits(62)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert int(os.read(read, 64)) != ids._bits(62)
