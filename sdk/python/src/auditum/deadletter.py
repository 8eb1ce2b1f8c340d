"""spool_dir/dead_letter.jsonl: one JSON object per event the server rejected (sdk/SPOOL.md)."""

from __future__ import annotations

import datetime as _dt
import json
import os

from google.protobuf import json_format

from .v1 import event_pb2


def dead_letter_line(code: str, message: str, event_bytes: bytes) -> str:
    event = event_pb2.AuditEvent.FromString(event_bytes)
    record = {
        "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "code": code,
        "message": message,
        "event": json_format.MessageToDict(event),
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


def append_dead_letters(directory: str, lines: list[str]) -> None:
    """Appends and fsyncs before the events' spool records are acknowledged, so none is lost."""
    fd = os.open(os.path.join(directory, "dead_letter.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(lines).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
