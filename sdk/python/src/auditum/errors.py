"""Exceptions raised to callers and reported to the error handler."""

from __future__ import annotations


class AuditError(Exception):
    """Base class of everything this SDK raises or reports."""


class ValidationError(AuditError, ValueError):
    """An event failed a local check; the message names the field and the limit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SpoolFullError(AuditError):
    """The spool (or the in-memory buffer) holds spool_max_bytes and on_full did not allow waiting longer."""


class SpoolLockedError(AuditError):
    """Another live client owns the spool directory."""


class SpoolDamageError(AuditError):
    """A spool segment had a bad record in its middle; the file was moved to spool_dir/damaged/."""


class ClientClosedError(AuditError):
    """The client was closed."""


class EventRejectedError(AuditError):
    """The server refused an event (INVALID_ARGUMENT and the like): resending it cannot succeed.

    Raised by log_durable; reported to the error handler for a dead-lettered event.
    """

    def __init__(self, code: str, message: str, event_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" (event {event_id})" if event_id else ""))
        self.code = code
        self.server_message = message
        self.event_id = event_id


class DeliveryError(AuditError):
    """Delivery is failing: a retried error, or UNAUTHENTICATED/PERMISSION_DENIED (delivery stopped)."""

    def __init__(self, code: str, message: str, stopped: bool = False) -> None:
        super().__init__(f"{code}: {message}" + (" (delivery stopped; events stay spooled)" if stopped else ""))
        self.code = code
        self.server_message = message
        self.stopped = stopped


class EventsDroppedError(AuditError):
    """on_full="drop" discarded an event (reported to the error handler, never raised)."""

    def __init__(self, count: int, total: int) -> None:
        super().__init__(f"spool full: dropped {count} event(s) ({total} dropped in all) under on_full='drop'")
        self.count = count
        self.total = total


class DurableTimeoutError(AuditError):
    """log_durable could not get an acknowledgement within its timeout (the server was unreachable)."""
