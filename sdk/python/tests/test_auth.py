"""API keys: a refused key stops delivery (events stay spooled); RESOURCE_EXHAUSTED is retried."""

import os
import re
import subprocess

from auditum import AuditClient, DeliveryError
from conftest import Server, auditum_bin, id_counts


def api_key(key_id, tenant, scopes):
    """(secret, the [[api_keys]] TOML lines) from `auditum keygen api-key`."""
    output = subprocess.run([auditum_bin(), "keygen", "api-key", "--id", key_id, "--tenant", tenant, "--scope", scopes],
                            capture_output=True, text=True, check=True).stdout
    secret = re.search(rf"^\s*({re.escape(key_id)}\.\S+)\s*$", output, re.M).group(1)
    toml = output[output.index("[[api_keys]]"):]
    return secret, "\n".join(line.lstrip("# ").rstrip() for line in toml.splitlines()) + "\n"


def test_a_refused_key_stops_delivery_and_a_good_key_later_delivers(tmp_path):
    secret, lines = api_key("writer", "auth", "append,query")
    config = tmp_path / "auditum.toml"
    # A small token bucket, so the good key's burst also meets RESOURCE_EXHAUSTED and its retry-after.
    config.write_text("key_rate_per_second = 400\nkey_rate_burst = 400\n" + lines)
    os.makedirs(tmp_path / "server")
    server = Server(str(tmp_path / "server"), ["--config", str(config)]).start()
    try:
        spool = str(tmp_path / "spool")
        reported = []
        refused = AuditClient(server.url, api_key="writer.not-the-secret", tenant_id="auth", spool_dir=spool,
                              on_error=reported.append)
        ids = [refused.log(action="key.tested", actor="tester", metadata={"n": n}) for n in range(10)]
        assert refused.flush(timeout=3) is False
        stops = [error for error in reported if isinstance(error, DeliveryError) and error.stopped]
        assert stops and stops[0].code == "UNAUTHENTICATED"
        assert refused.counters.pending == 10 and refused.counters.delivered == 0
        refused.close(timeout=0)

        reported.clear()
        good = AuditClient(server.url, api_key=secret, tenant_id="auth", spool_dir=spool, on_error=reported.append)
        ids += [good.log(action="key.tested", actor="tester", metadata={"n": n}) for n in range(10, 1500)]
        assert good.flush(timeout=60), good.counters
        assert good.counters.retried > 0, "the burst over the rate limit was retried"
        assert any(isinstance(e, DeliveryError) and e.code == "RESOURCE_EXHAUSTED" for e in reported)
        good.close()
        counts = id_counts(server.url, "auth", metadata=(("authorization", f"Bearer {secret}"),))
        assert all(counts[event_id] == 1 for event_id in ids) and sum(counts.values()) == len(ids)
    finally:
        server.stop()
