"""Events the server rejects go to dead_letter.jsonl with its message; the rest of the call is delivered."""

import json
import os

from auditum import AuditClient, EventRejectedError
from conftest import id_counts


def test_rejected_events_are_dead_lettered_and_the_others_delivered(server, tmp_path):
    reported = []
    spool = str(tmp_path / "spool")
    # validate_locally=False: these bad events slip past the client, so the server's rejection path runs.
    client = AuditClient(server.url, tenant_id="dead", spool_dir=spool, validate_locally=False, linger=0.5,
                         on_error=reported.append)
    actor = {"id": "user-1", "type": "user"}
    good = [client.log(action="user.login", actor=actor, metadata={"n": 1})]
    upper = client.log(action="User.Login", actor=actor)
    good.append(client.log(action="user.logout", actor=actor))
    huge = client.log(action="report.exported", actor=actor, metadata={"blob": "x" * 70 * 1024})
    good.append(client.log(action="user.login", actor=actor, metadata={"n": 2}))
    assert client.flush(timeout=30)
    counters = client.counters
    client.close()

    assert counters.dead_lettered == 2 and counters.delivered == 3
    with open(os.path.join(spool, "dead_letter.jsonl")) as handle:
        lines = [json.loads(line) for line in handle]
    by_id = {line["event"]["id"]: line for line in lines}
    assert set(by_id) == {upper, huge}
    for line in lines:
        assert line["code"] == "INVALID_ARGUMENT" and line["at"].endswith("Z")
        assert "events[" in line["message"]
    assert "action" in by_id[upper]["message"] and by_id[upper]["event"]["action"] == "User.Login"
    assert by_id[huge]["event"]["tenantId"] == "dead"
    rejections = [error for error in reported if isinstance(error, EventRejectedError)]
    assert {error.event_id for error in rejections} == {upper, huge}
    counts = id_counts(server.url, "dead")
    assert {event_id: counts[event_id] for event_id in good} == {event_id: 1 for event_id in good}
    assert sum(counts.values()) == 3
