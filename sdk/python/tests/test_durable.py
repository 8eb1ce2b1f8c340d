"""log_durable returns the server's seq/id/duplicate and raises on rejection (sync and asyncio)."""

import asyncio

import pytest

from auditum import AsyncAuditClient, AuditClient, EventRejectedError, ValidationError

ACTOR = {"id": "admin-1", "type": "user"}


def test_log_durable_returns_seq_id_duplicate(server, tmp_path):
    with AuditClient(server.url, tenant_id="durable", spool_dir=None) as client:
        first = client.log_durable(action="user.role.updated", actor=ACTOR, target={"type": "user", "id": "u9"},
                                   before={"role": "viewer"}, after={"role": "admin"})
        assert first.id and not first.duplicate
        again = client.log_durable(action="user.role.updated", actor=ACTOR, id=first.id)
        assert again.duplicate and again.seq == first.seq and again.id == first.id
        with pytest.raises(ValidationError, match="action"):
            client.log_durable(action="Bad Action", actor=ACTOR)


def test_log_durable_raises_the_servers_rejection(server):
    with AuditClient(server.url, tenant_id="durable", spool_dir=None, validate_locally=False) as client:
        with pytest.raises(EventRejectedError) as raised:
            client.log_durable(action="User.Login", actor=ACTOR, id="rejected-1")
        assert raised.value.code == "INVALID_ARGUMENT" and "action" in raised.value.server_message
        assert raised.value.event_id == "rejected-1"


def test_async_log_durable(server):
    async def scenario():
        async with AsyncAuditClient(server.url, tenant_id="durable", spool_dir=None, validate_locally=False) as client:
            first = await client.log_durable(action="payment.captured", actor=ACTOR, metadata={"amount": 12.5})
            again = await client.log_durable(action="payment.captured", actor=ACTOR, id=first.id)
            assert not first.duplicate and again.duplicate and again.seq == first.seq
            with pytest.raises(EventRejectedError, match="action"):
                await client.log_durable(action="Payment.Captured", actor=ACTOR)

    asyncio.run(scenario())
