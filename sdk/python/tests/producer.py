"""A producer process for the crash tests: logs events [start, stop) and reports each step on stdout.

    python3 producer.py URL SPOOL_DIR TENANT START STOP

Before each log() it writes `I <index>`, after it `R <index> <id>` (unbuffered, one write per line,
so a kill -9 loses no line that was written). At the end it flushes, closes and writes `DONE`.
"""

import os
import sys

from auditum import AuditClient


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def main() -> None:
    url, spool_dir, tenant, start, stop = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    client = AuditClient(url, tenant_id=tenant, spool_dir=spool_dir, on_error=lambda error: say(f"E {error}"))
    say(f"P {os.getpid()}")
    for index in range(start, stop):
        say(f"I {index}")
        event_id = client.log(action="order.created", actor={"id": "producer", "type": "service"},
                              target={"type": "order", "id": f"order-{index}"}, metadata={"index": index})
        say(f"R {index} {event_id}")
    delivered = client.close(timeout=120)
    say(f"DONE {delivered} {client.counters}")


if __name__ == "__main__":
    main()
