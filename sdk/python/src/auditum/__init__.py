"""auditum client SDK: `client.log(...)` never slows a request and never loses an event.

    from auditum import AuditClient, request_context
    client = AuditClient("http://127.0.0.1:50051", tenant_id="acme", spool_dir="/var/lib/app/auditum-spool")
    event_id = client.log(action="user.role.updated", actor={"id": "user-17", "type": "user"},
                          target={"type": "user", "id": "user-99"}, before={"role": "viewer"}, after={"role": "admin"})

See README.md for every option and what happens to an event in each failure case.
"""

from .aio import AsyncAuditClient
from .client import AuditClient
from .context import current_context, request_context
from .engine import Counters
from .errors import (
    AuditError,
    ClientClosedError,
    DeliveryError,
    DurableTimeoutError,
    EventRejectedError,
    EventsDroppedError,
    SpoolDamageError,
    SpoolFullError,
    SpoolLockedError,
    ValidationError,
)
from .ids import new_id
from .options import default_spool_dir, recommended_spool_dir

__version__ = "0.1.0"
__all__ = [
    "AsyncAuditClient", "AuditClient", "AuditError", "ClientClosedError", "Counters", "DeliveryError",
    "DurableTimeoutError", "EventRejectedError", "EventsDroppedError", "SpoolDamageError", "SpoolFullError",
    "SpoolLockedError", "ValidationError", "current_context", "default_spool_dir", "new_id", "recommended_spool_dir",
    "request_context",
]
