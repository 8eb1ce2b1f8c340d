#!/usr/bin/env python3
"""Throughput and log() cost of the Python SDK against a local auditum server.

    AUDITUM_BIN=/path/to/auditum python3 bench/bench.py [--events 100000] [--always-events 5000]

Starts `auditum serve` on a loopback port (or uses --server URL), then for spool_fsync = batch and
always: logs N events from one thread as fast as it can, with the spool on, and reports the events
per second delivered (first log() to flush() done), the p50/p99/max of the log() call itself, the
spool bytes written per event (event records and acks), and the CPU time per event of this process
and of the server (so a run on a busy machine can still be read).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "src"))  # this checkout's package, not an installed copy

from auditum import AuditClient  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of a process, from /proc (None when unknown)."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url, fsync, count, workdir, server_pid=None):
    spool = os.path.join(workdir, f"spool-{fsync}")
    client = AuditClient(url, tenant_id=f"bench-{fsync}", spool_dir=spool, spool_fsync=fsync)
    actor, target = {"id": "user-17", "type": "user"}, {"type": "invoice", "id": "inv-1"}
    for _ in range(1000):  # warm up the channel and the code paths
        client.log(action="invoice.viewed", actor=actor, target=target, metadata={"plan": "pro"})
    assert client.flush(timeout=60)
    written_before = client._engine.store.bytes_written
    durations = [0] * count
    clock = time.perf_counter_ns
    cpu_before, server_before = time.process_time(), cpu_seconds(server_pid)
    started = time.perf_counter()
    for index in range(count):
        before = clock()
        client.log(action="invoice.viewed", actor=actor, target=target, metadata={"plan": "pro", "index": index})
        durations[index] = clock() - before
    logged = time.perf_counter()
    delivered = client.flush(timeout=600)
    finished = time.perf_counter()
    client_cpu = time.process_time() - cpu_before
    server_cpu = None if server_pid is None else cpu_seconds(server_pid) - server_before
    counters = client.counters
    written = client._engine.store.bytes_written - written_before
    client.close()
    shutil.rmtree(spool, ignore_errors=True)
    durations.sort()
    return {
        "fsync": fsync, "events": count, "delivered": delivered and counters.pending == 0,
        "events_per_s": count / (finished - started), "log_rate": count / (logged - started),
        "p50_us": durations[count // 2] / 1000, "p99_us": durations[int(count * 0.99)] / 1000,
        "max_us": durations[-1] / 1000, "bytes_per_event": written / count,
        "client_cpu_us": client_cpu / count * 1e6, "server_cpu_us": None if server_cpu is None else server_cpu / count * 1e6,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events for spool_fsync=batch")
    parser.add_argument("--always-events", type=int, default=5_000, help="events for spool_fsync=always (one fsync each)")
    parser.add_argument("--server", help="an running server's URL (default: start $AUDITUM_BIN)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="auditum-bench-")
    server = None
    try:
        url = args.server
        if not url:
            from auditum_server import Server

            server = Server(workdir).start()
            url = server.url
        print(f"server {url}; python {sys.version.split()[0]}; {os.cpu_count()} cpus; load average {os.getloadavg()[0]:.2f}")
        print(f"{'fsync':<7}{'events':>8}{'delivered/s':>13}{'log()/s':>10}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>10}"
              f"{'B/event':>9}{'client CPU µs/ev':>18}{'server CPU µs/ev':>18}")
        for fsync, count in (("batch", args.events), ("always", args.always_events)):
            result = run(url, fsync, count, workdir, server.process.pid if server else None)
            if not result["delivered"]:
                raise SystemExit(f"{fsync}: not everything was delivered")
            print(f"{fsync:<7}{count:>8}{result['events_per_s']:>13,.0f}{result['log_rate']:>10,.0f}{result['p50_us']:>9.1f}"
                  f"{result['p99_us']:>9.1f}{result['max_us']:>10.0f}{result['bytes_per_event']:>9.1f}"
                  f"{result['client_cpu_us']:>18.1f}{(result['server_cpu_us'] or float('nan')):>18.1f}")
    finally:
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
