"""Ambient request context: set once per request (middleware), picked up by every log() inside it.

Lives in a contextvars.ContextVar, so each thread and each asyncio task sees its own value.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

CONTEXT_FIELDS = ("request_id", "correlation_id", "session_id", "source_ip", "user_agent", "service")

_current: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("auditum_request_context", default=None)


@contextlib.contextmanager
def request_context(
    *,
    request_id: str | None = None,
    correlation_id: str | None = None,
    session_id: str | None = None,
    source_ip: str | None = None,
    user_agent: str | None = None,
    service: str | None = None,
    actor: Mapping[str, Any] | str | None = None,
) -> Iterator[Mapping[str, Any]]:
    """Sets the ambient context for the block; nested blocks add to (and override) the outer one."""
    values = {
        "request_id": request_id, "correlation_id": correlation_id, "session_id": session_id,
        "source_ip": source_ip, "user_agent": user_agent, "service": service, "actor": actor,
    }
    merged = dict(_current.get() or {})
    merged.update({key: value for key, value in values.items() if value is not None})
    token = _current.set(merged)
    try:
        yield merged
    finally:
        _current.reset(token)


def current_context() -> Mapping[str, Any]:
    """The ambient context of the calling thread or task (empty when none is set)."""
    return _current.get() or {}
