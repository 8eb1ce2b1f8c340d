"""subject_id: whose key encrypts an event's personal fields, so that erasing the subject
(`auditum erase`) shreds events logged *about* them by someone else (DESIGN §14)."""

import asyncio
import os
import subprocess

import pytest

from auditum import AsyncAuditClient, AuditClient, ValidationError
from conftest import Server, auditum_bin, query_all

ADMIN = {"id": "support-agent-3", "type": "user", "name": "Sam Support"}


@pytest.fixture
def encrypting_server(tmp_path):
    kek = tmp_path / "kek"
    subprocess.run([auditum_bin(), "keyring", "new-kek", "--out", str(kek)], check=True, capture_output=True)
    config = tmp_path / "auditum.toml"
    config.write_text(
        'encrypt_fields = ["actor_name", "target_name", "metadata"]\n'
        f'keyring = "file://{tmp_path / "keyring"}"\n'
        f'kek_file = "{kek}"\n'
    )
    os.makedirs(tmp_path / "server", exist_ok=True)
    running = Server(str(tmp_path / "server"), ["--config", str(config)]).start()
    yield running
    running.stop()


def test_an_event_about_a_subject_is_erased_with_the_subject(encrypting_server, tmp_path):
    url = encrypting_server.url
    with AuditClient(url, tenant_id="clinic", spool_dir=str(tmp_path / "spool")) as client:
        about = client.log(action="record.viewed", actor=ADMIN, target={"type": "patient", "id": "p-7", "name": "Pat Doe"},
                           metadata={"reason": "billing question"}, subject_id="p-7")
        own = client.log(action="record.viewed", actor=ADMIN, target={"type": "patient", "id": "p-8", "name": "Lee Roe"})
        client.flush(timeout=30)

    async def durable():
        async with AsyncAuditClient(url, tenant_id="clinic", spool_dir=None) as aio:
            return await aio.log_durable(action="record.exported", actor=ADMIN, target={"type": "patient", "id": "p-7"},
                                         metadata={"format": "pdf"}, subject_id="p-7")
    exported = asyncio.run(durable())

    by_id = {stored.event.id: stored.event for stored in query_all(url, "clinic")}
    assert by_id[about].target.name == "Pat Doe" and by_id[own].target.name == "Lee Roe"

    erase = subprocess.run([auditum_bin(), "erase", "--server", url, "--tenant", "clinic", "--subject", "p-7",
                            "--reason", "DSAR 2026-7"], capture_output=True, text=True)
    assert erase.returncode == 0, erase.stderr

    by_id = {stored.event.id: stored.event for stored in query_all(url, "clinic")}
    for event_id in (about, exported.id):
        event = by_id[event_id]
        assert event.target.name in ("", "[erased]") and event.actor.name == "[erased]", event
        assert "[erased]" in event.metadata.fields
    # The agent's own event is not about p-7: its key (the actor's) is untouched.
    assert by_id[own].target.name == "Lee Roe" and by_id[own].actor.name == "Sam Support"


def test_a_subject_id_over_its_limit_raises_at_once(tmp_path):
    with AuditClient("http://127.0.0.1:1", tenant_id="clinic", spool_dir=str(tmp_path / "spool"), on_error=lambda e: None) as client:
        with pytest.raises(ValidationError) as raised:
            client.log(action="record.viewed", actor=ADMIN, subject_id="s" * 257)
        assert raised.value.field == "subject_id" and "256-byte limit" in str(raised.value)
        client.close(timeout=0)
