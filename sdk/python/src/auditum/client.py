"""AuditClient: log() returns at once (the event is spooled); log_durable() waits for the server."""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from . import retry, transport
from .engine import Counters, Engine
from .errors import DeliveryError, DurableTimeoutError, EventRejectedError
from .events import ActorArg, OutcomeArg, Timestamp, build_event, encode_event
from .options import GIB, MIB, Options, default_spool_dir
from .v1 import ingest_pb2, ingest_pb2_grpc

_UNSET: Any = object()


def _options(url: str, spool_dir: Any, kwargs: dict[str, Any]) -> Options:
    return Options(url=url, spool_dir=default_spool_dir() if spool_dir is _UNSET else spool_dir, **kwargs)


def durable_error(error: grpc.RpcError, event_id: str) -> Exception | None:
    """The exception for a log_durable failure that retrying cannot fix (None: retry it)."""
    code, message = error.code(), error.details() or ""
    if code in retry.REJECTED:
        return EventRejectedError(code.name, message, event_id)
    if code in retry.AUTH:
        return DeliveryError(code.name, message)
    return None


class _Base:
    """What both clients share: options, the engine and building events."""

    options: Options
    _engine: Engine

    def _build(self, fields: dict[str, Any]) -> Any:
        options = self.options
        return build_event(default_tenant=options.tenant_id, default_service=options.service,
                           validate=options.validate_locally, **fields)

    @property
    def counters(self) -> Counters:
        """logged, delivered, duplicates, retried, dead_lettered, dropped, spool_bytes, pending."""
        return self._engine.counters()

    @property
    def spool_dir(self) -> str | None:
        return self._engine.store.directory


def _close_at_exit(reference: weakref.ref) -> None:
    client = reference()
    if client is not None:
        client.close(timeout=5.0)


def _close_at_exit_async(reference: weakref.ref) -> None:
    # No event loop runs at exit: close the engine directly (what was not delivered stays spooled).
    client = reference()
    if client is not None:
        client._engine.close(5.0)


class AuditClient(_Base):
    """A thread-safe client; one per process (and per spool directory) is the usual shape."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        tenant_id: str | None = None,
        service: str | None = None,
        spool_dir: str | None = _UNSET,
        spool_fsync: str = "batch",
        spool_max_bytes: int = GIB,
        on_full: str = "block",
        block_timeout: float = 5.0,
        batch_max_events: int = 1000,
        batch_max_bytes: int = 2 * MIB,
        linger: float = 0.010,
        max_in_flight: int = 4,
        call_timeout: float = 30.0,
        durable_timeout: float = 30.0,
        retry_initial_delay: float = 0.1,
        retry_max_delay: float = 30.0,
        on_error: Callable[[Exception], None] | None = None,
        validate_locally: bool = True,
        tls_ca: str | None = None,
        tls_client_cert: str | None = None,
        tls_client_key: str | None = None,
        close_at_exit: bool = True,
    ) -> None:
        kwargs = {key: value for key, value in locals().items() if key not in ("self", "url", "spool_dir", "__class__")}
        self.options = _options(url, spool_dir, kwargs)
        self._engine = Engine(self.options)
        self._durable_append: Any = None
        if self.options.close_at_exit:
            atexit.register(_close_at_exit, weakref.ref(self))

    def log(
        self,
        *,
        action: str,
        actor: ActorArg = None,
        target: Mapping[str, Any] | None = None,
        outcome: OutcomeArg = "success",
        tenant_id: str | None = None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        id: str | None = None,
        occurred_at: Timestamp = None,
        subject_id: str | None = None,
    ) -> str | None:
        """Validates, spools and returns the event id at once; None only when on_full='drop' dropped it."""
        options = self.options
        event_id, encoded = encode_event(action, actor, target, outcome, tenant_id, before, after, metadata, context, id,
                                         occurred_at, options.tenant_id, options.service, options.validate_locally,
                                         subject_id)
        return event_id if self._engine.submit(encoded) else None

    def log_durable(
        self,
        *,
        action: str,
        actor: ActorArg = None,
        target: Mapping[str, Any] | None = None,
        outcome: OutcomeArg = "success",
        tenant_id: str | None = None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        id: str | None = None,
        occurred_at: Timestamp = None,
        subject_id: str | None = None,
        wait_for_seal: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Sends now and returns the server's AppendResult (seq, id, duplicate, received_at, log).

        Transient errors are retried (same id) until `timeout` (default durable_timeout), then
        DurableTimeoutError; a rejection raises EventRejectedError, a key problem DeliveryError.
        """
        fields = dict(action=action, actor=actor, target=target, outcome=outcome, tenant_id=tenant_id, before=before,
                      after=after, metadata=metadata, context=context, id=id, occurred_at=occurred_at, subject_id=subject_id)
        event = self._build(fields)
        request = ingest_pb2.AppendRequest(events=[event], wait_for_seal=wait_for_seal)
        if self._durable_append is None:
            self._durable_append = ingest_pb2_grpc.IngestServiceStub(self._engine.channel).Append
        options = self.options
        deadline = time.monotonic() + (options.durable_timeout if timeout is None else timeout)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                response = self._durable_append(request, timeout=max(0.001, remaining), metadata=transport.call_metadata(options.api_key))
                return response.results[0]
            except grpc.RpcError as error:
                final = durable_error(error, event.id)
                if final is not None:
                    raise final from None
                attempt += 1
                delay = max(retry.backoff(attempt, options.retry_initial_delay, options.retry_max_delay), retry.retry_after(error) or 0)
                if time.monotonic() + delay >= deadline:
                    raise DurableTimeoutError(f"event {event.id} not acknowledged within the timeout; last error "
                                              f"{error.code().name}: {error.details()}") from None
                time.sleep(delay)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Waits until every event logged so far is acknowledged (True) or the timeout passes (False)."""
        return self._engine.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flushes, stops the worker and releases the spool; undelivered events stay spooled."""
        return self._engine.close(timeout)

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
