"""kill -9 of a producer mid-stream: a new process on the same spool finishes, nothing lost or doubled."""

import os
import signal
import subprocess
import sys

from conftest import query_all

HERE = os.path.dirname(os.path.abspath(__file__))
TOTAL = 20_000


def run_producer(url, spool, tenant, start, stop, kill_after=None):
    """Returns (returned {index: id}, last index whose log() was entered, stdout lines)."""
    process = subprocess.Popen([sys.executable, os.path.join(HERE, "producer.py"), url, spool, tenant, str(start), str(stop)],
                               stdout=subprocess.PIPE)
    returned, entered, lines = {}, start - 1, []
    for raw in process.stdout:
        line = raw.decode().strip()
        lines.append(line)
        kind, _, rest = line.partition(" ")
        if kind == "R":
            index, event_id = rest.split()
            returned[int(index)] = event_id
            if kill_after is not None and len(returned) == kill_after:
                # The child runs ahead by at most a pipe buffer of lines: it is mid-stream now.
                os.kill(process.pid, signal.SIGKILL)
                break
        elif kind == "I":
            entered = int(rest)
    rest_of_output = process.stdout.read().decode()  # what it wrote before it died
    process.wait()  # reaped: its pid no longer looks alive to the next lock holder
    for line in rest_of_output.splitlines():
        lines.append(line)
        kind, _, rest = line.partition(" ")
        if kind == "R" and len(rest.split()) == 2:
            index, event_id = rest.split()
            returned[int(index)] = event_id
        elif kind == "I":
            entered = int(rest)
    return returned, entered, lines, process.returncode


def test_kill_9_mid_stream_then_a_new_process_finishes_exactly_once(server, tmp_path):
    spool, tenant = str(tmp_path / "spool"), "crash"
    first, entered, _, code = run_producer(server.url, spool, tenant, 0, TOTAL, kill_after=8_000)
    assert code == -signal.SIGKILL
    assert 8_000 <= len(first) < TOTAL, "killed mid-stream"
    assert os.path.exists(os.path.join(spool, "lock")), "the killed producer left its lock behind"

    second, _, lines, code = run_producer(server.url, spool, tenant, entered + 1, TOTAL)
    assert code == 0 and lines[-1].startswith("DONE True"), lines[-3:]
    assert len(second) == TOTAL - entered - 1

    stored = query_all(server.url, tenant)
    counts = {}
    for event in stored:
        counts[event.event.id] = counts.get(event.event.id, 0) + 1
    returned = {**first, **second}
    returned_ids = set(returned.values())
    assert len(returned_ids) == len(returned)
    assert {event_id: counts.get(event_id, 0) for event_id in returned_ids if counts.get(event_id) != 1} == {}
    # Only the event whose log() the kill interrupted may be there without its id having been returned.
    others = [event for event in stored if event.event.id not in returned_ids]
    assert all(int(event.event.metadata["index"]) == entered for event in others), others
    assert len(stored) == len(returned) + len(others)
    assert os.listdir(spool) == [] or set(os.listdir(spool)) <= {"dead_letter.jsonl"}, os.listdir(spool)
