"""AsyncAuditClient: the same client for asyncio; nothing it does blocks the event loop.

Delivery runs on the same background thread as the sync client's. log() spools in the caller (a
local file append of microseconds); only when the spool is full under on_full='block' does it wait,
in a worker thread. log_durable() uses grpc.aio; flush() and close() wait in a worker thread.
"""

from __future__ import annotations

import asyncio
import atexit
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from . import retry, transport
from .client import _UNSET, _Base, _close_at_exit_async, _options, durable_error
from .engine import Engine, WouldBlock
from .errors import DurableTimeoutError
from .events import ActorArg, OutcomeArg, Timestamp, encode_event
from .options import GIB, MIB
from .v1 import ingest_pb2, ingest_pb2_grpc


class AsyncAuditClient(_Base):
    """Create it anywhere (inside or outside a running loop); await its methods in one event loop."""

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
        self._aio_channel: Any = None
        self._aio_append: Any = None
        if self.options.close_at_exit:
            atexit.register(_close_at_exit_async, weakref.ref(self))

    async def log(
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
        """Validates, spools and returns the event id; None only when on_full='drop' dropped it."""
        options = self.options
        event_id, encoded = encode_event(action, actor, target, outcome, tenant_id, before, after, metadata, context, id,
                                         occurred_at, options.tenant_id, options.service, options.validate_locally,
                                         subject_id)
        try:
            accepted = self._engine.submit(encoded, wait=False)
        except WouldBlock:
            accepted = await asyncio.to_thread(self._engine.submit, encoded, True)
        return event_id if accepted else None

    async def log_durable(
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
        """As AuditClient.log_durable, awaited."""
        event = self._build(dict(action=action, actor=actor, target=target, outcome=outcome, tenant_id=tenant_id,
                                 before=before, after=after, metadata=metadata, context=context, id=id,
                                 occurred_at=occurred_at, subject_id=subject_id))
        request = ingest_pb2.AppendRequest(events=[event], wait_for_seal=wait_for_seal)
        options = self.options
        if self._aio_channel is None:
            self._aio_channel = transport.make_channel(
                options.url, options.tls_ca, options.tls_client_cert, options.tls_client_key,
                transport.channel_options(min(options.retry_max_delay, 2.0)), aio=True)
            self._aio_append = ingest_pb2_grpc.IngestServiceStub(self._aio_channel).Append
        deadline = time.monotonic() + (options.durable_timeout if timeout is None else timeout)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                response = await self._aio_append(request, timeout=max(0.001, remaining),
                                                  metadata=transport.call_metadata(options.api_key))
                return response.results[0]
            except grpc.aio.AioRpcError as error:
                final = durable_error(error, event.id)
                if final is not None:
                    raise final from None
                attempt += 1
                delay = max(retry.backoff(attempt, options.retry_initial_delay, options.retry_max_delay), retry.retry_after(error) or 0)
                if time.monotonic() + delay >= deadline:
                    raise DurableTimeoutError(f"event {event.id} not acknowledged within the timeout; last error "
                                              f"{error.code().name}: {error.details()}") from None
                await asyncio.sleep(delay)

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Waits until every event logged so far is acknowledged (True) or the timeout passes (False)."""
        return await asyncio.to_thread(self._engine.flush, timeout)

    async def close(self, timeout: float | None = 10.0) -> bool:
        """Flushes, stops the worker and releases the spool; undelivered events stay spooled."""
        delivered = await asyncio.to_thread(self._engine.close, timeout)
        if self._aio_channel is not None:
            await self._aio_channel.close()
            self._aio_channel = None
        return delivered

    async def __aenter__(self) -> AsyncAuditClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
