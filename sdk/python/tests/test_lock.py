"""One client per spool directory: a second one gets a clear error; a dead owner's lock is taken over."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from auditum import AuditClient, SpoolLockedError

HOLDER = textwrap.dedent("""
    import sys
    from auditum import AuditClient
    client = AuditClient("http://127.0.0.1:1", tenant_id="lock", spool_dir=sys.argv[1], on_error=lambda e: None)
    client.log(action="lock.held", actor="holder")
    print("ready", flush=True)
    sys.stdin.read()
""")


def test_a_second_client_gets_a_clear_error_and_a_dead_owners_lock_is_taken_over(tmp_path):
    spool = str(tmp_path / "spool")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, spool], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(SpoolLockedError) as raised:
            AuditClient("http://127.0.0.1:1", tenant_id="lock", spool_dir=spool)
        assert f"pid {holder.pid}" in str(raised.value) and os.path.realpath(spool) in str(raised.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with open(os.path.join(spool, "lock")) as handle:
        assert handle.read().split()[0] == str(holder.pid)  # left behind by the killed owner
    client = AuditClient("http://127.0.0.1:1", tenant_id="lock", spool_dir=spool, on_error=lambda e: None)
    try:
        with open(os.path.join(spool, "lock")) as handle:
            assert handle.read().split()[0] == str(os.getpid())
        assert client.counters.pending == 1  # the dead owner's event is ours to resend
        with pytest.raises(SpoolLockedError, match="another client in this process"):
            AuditClient("http://127.0.0.1:1", tenant_id="lock", spool_dir=spool)
    finally:
        client.close(timeout=0)
    assert not os.path.exists(os.path.join(spool, "lock"))
