"""Which gRPC errors are retried, and how long to wait (SDK.md "Retries")."""

from __future__ import annotations

import random
import re
from typing import Any

import grpc

# Never retried: the event itself is bad (dead letter) or the key is (delivery stops).
REJECTED = {grpc.StatusCode.INVALID_ARGUMENT}
AUTH = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
_EVENT_INDEX = re.compile(r"events\[(\d+)\]")


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Exponential with jitter: attempt 1 waits 50–100 % of `initial`, doubling up to `maximum`."""
    ceiling = min(maximum, initial * (2 ** max(0, attempt - 1)))
    return random.uniform(max(initial, ceiling / 2), ceiling) if ceiling > initial else ceiling


def retry_after(error: Any) -> float | None:
    """The server's `retry-after` hint (seconds) from the trailing metadata, if any."""
    try:
        metadata = error.trailing_metadata() or ()
    except Exception:  # not a grpc.Call
        return None
    for key, value in metadata:
        if key == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def rejected_index(message: str) -> int | None:
    """The index i of `events[i]` that a rejection names."""
    found = _EVENT_INDEX.search(message or "")
    return int(found.group(1)) if found else None
