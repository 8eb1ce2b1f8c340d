"""Client options, their defaults and their checks (README "Options" lists the same)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024
FSYNC_MODES = ("batch", "always", "never")
ON_FULL = ("block", "raise", "drop")
SERVER_MAX_EVENTS = 1000
SERVER_MAX_CALL_BYTES = 4 * MIB


@dataclass(frozen=True)
class Options:
    url: str
    api_key: str | None = None
    tenant_id: str | None = None
    service: str | None = None
    spool_dir: str | None = None
    spool_fsync: str = "batch"
    spool_max_bytes: int = GIB
    on_full: str = "block"
    block_timeout: float = 5.0
    batch_max_events: int = 1000
    batch_max_bytes: int = 2 * MIB
    linger: float = 0.010
    max_in_flight: int = 4
    call_timeout: float = 30.0
    durable_timeout: float = 30.0
    retry_initial_delay: float = 0.1
    retry_max_delay: float = 30.0
    on_error: Callable[[Exception], None] | None = None
    validate_locally: bool = True
    tls_ca: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    close_at_exit: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{name}: {why}")

        if not self.url:
            raise bad("url", "required, e.g. http://127.0.0.1:50051")
        if self.spool_fsync not in FSYNC_MODES:
            raise bad("spool_fsync", f"{self.spool_fsync!r} is not one of {', '.join(FSYNC_MODES)}")
        if self.on_full not in ON_FULL:
            raise bad("on_full", f"{self.on_full!r} is not one of {', '.join(ON_FULL)}")
        if self.spool_max_bytes < 64 * KIB:
            raise bad("spool_max_bytes", f"{self.spool_max_bytes} is below the minimum of {64 * KIB} (64 KiB)")
        if not 1 <= self.batch_max_events <= SERVER_MAX_EVENTS:
            raise bad("batch_max_events", f"{self.batch_max_events} is outside 1..{SERVER_MAX_EVENTS} (the server's per-call limit)")
        if not 64 * KIB <= self.batch_max_bytes <= SERVER_MAX_CALL_BYTES:
            raise bad("batch_max_bytes", f"{self.batch_max_bytes} is outside {64 * KIB}..{SERVER_MAX_CALL_BYTES} (the server's per-call limit)")
        if self.max_in_flight < 1:
            raise bad("max_in_flight", "must be at least 1")
        for name in ("block_timeout", "linger", "call_timeout", "durable_timeout", "retry_initial_delay", "retry_max_delay"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if self.retry_max_delay < self.retry_initial_delay:
            raise bad("retry_max_delay", "must be at least retry_initial_delay")


def default_spool_dir() -> str | None:
    """$AUDITUM_SPOOL_DIR when set (an empty value means none): the spool_dir used when none is given."""
    value = os.environ.get("AUDITUM_SPOOL_DIR")
    return value or None


def recommended_spool_dir(name: str = "default") -> str:
    """A per-user durable location: $XDG_STATE_HOME/auditum/<name> (~/.local/state/auditum/<name>)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "auditum", name)
