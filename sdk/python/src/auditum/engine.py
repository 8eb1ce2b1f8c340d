"""The delivery worker: a background thread that batches spooled events into Append calls.

log() writes to the Store and wakes the worker; the worker takes batches (after `linger`, or at once
when a batch is full or a flush waits), fsyncs them (spool_fsync='batch'), sends up to
`max_in_flight` calls, and on each answer acks, dead-letters, or requeues with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import grpc

from . import retry, transport
from .deadletter import append_dead_letters, dead_letter_line
from .errors import AuditError, ClientClosedError, DeliveryError, EventRejectedError, EventsDroppedError, SpoolFullError
from .options import Options
from .spool import Segment, Store
from .v1 import ingest_pb2

log = logging.getLogger("auditum")
Item = tuple[Segment, int, bytes]  # (segment, ordinal, encoded event; None in the retry queue until read)


@dataclass(frozen=True)
class Counters:
    logged: int
    delivered: int
    duplicates: int
    retried: int
    dead_lettered: int
    dropped: int
    spool_bytes: int
    pending: int


class WouldBlock(Exception):
    """submit(wait=False) found the spool full under on_full='block' (the async client waits in a thread)."""


def _default_error_handler(error: Exception) -> None:
    log.error("auditum: %s", error)


class Engine:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.on_error = options.on_error or _default_error_handler
        self.store = Store(options.spool_dir, options.spool_max_bytes, options.spool_fsync, self._report)
        self.lock = self.store.lock
        self.wake = threading.Condition(self.lock)       # the worker waits here
        self.progress = threading.Condition(self.lock)   # flush() and blocked log() wait here
        self.channel = transport.make_channel(options.url, options.tls_ca, options.tls_client_cert, options.tls_client_key,
                                              transport.channel_options(min(options.retry_max_delay, 2.0)))
        self.append = self.channel.unary_unary(transport.APPEND_METHOD, request_serializer=None,
                                               response_deserializer=ingest_pb2.AppendResponse.FromString)
        self.metadata = transport.call_metadata(options.api_key)
        self.retry: deque[tuple[Segment, int, bytes | None]] = deque()
        self.completions: deque[tuple[list[Item], Any]] = deque()
        self.inflight: set[Any] = set()
        self.backoff_until = 0.0
        self.attempt = 0
        self.stopped: DeliveryError | None = None
        self.stopping = False
        self.closed = False
        self.flushing = 0
        self.logged = self.delivered = self.duplicates = self.retried = self.dead_lettered = self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="auditum-delivery", daemon=True)
        self.thread.start()

    # -- called by log() -----------------------------------------------------------------------
    def submit(self, event_bytes: bytes, wait: bool = True) -> bool:
        """Spools one encoded event. False when on_full='drop' dropped it; raises SpoolFullError."""
        options, store = self.options, self.store
        size = len(event_bytes) + 9
        dropped = 0
        with self.lock:
            if self.closed:
                raise ClientClosedError("the client is closed")
            if not store.room_for(size):
                if size + 16 > options.spool_max_bytes:
                    raise SpoolFullError(f"event of {size} bytes can never fit in spool_max_bytes={options.spool_max_bytes}")
                if options.on_full == "raise":
                    raise SpoolFullError(self._full_message())
                if options.on_full == "drop":
                    self.dropped += 1
                    dropped = self.dropped
                elif not wait:
                    raise WouldBlock()
                else:
                    deadline = time.monotonic() + options.block_timeout
                    while not store.room_for(size):
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self.closed:
                            raise SpoolFullError(self._full_message() + f"; waited block_timeout={options.block_timeout} s")
                        self.progress.wait(remaining)
            if not dropped:
                was_empty = store.unsent_count == 0
                segment = store.append(event_bytes)
                self.logged += 1
                if was_empty or store.unsent_count == options.batch_max_events:
                    self.wake.notify()
        if dropped:
            self._report(EventsDroppedError(1, dropped))
            return False
        if options.spool_fsync == "always":
            store.sync_now(segment)
        return True

    def _full_message(self) -> str:
        where = self.store.directory or "the in-memory buffer (no spool_dir)"
        return (f"spool full: {self.store.total_bytes} bytes in {where}, spool_max_bytes={self.options.spool_max_bytes} "
                f"(the server is not keeping up or is unreachable)")

    # -- flush / close ---------------------------------------------------------------------------
    def flush(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            target = self.store.next_serial
            self.flushing += 1
            self.wake.notify()
            try:
                while self.store.min_unresolved() < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self.progress.wait(remaining)
                return True
            finally:
                self.flushing -= 1

    def close(self, timeout: float | None) -> bool:
        with self.lock:
            if self.closed:
                return True
        delivered = self.flush(timeout)
        with self.lock:
            self.closed = self.stopping = True
            pending = [future for future in self.inflight if future is not None]
            self.wake.notify()
            self.progress.notify_all()
        for future in pending:
            future.cancel()
        self.thread.join()
        with self.lock:
            left = self.store.unresolved_count
            self.store.close()
        self.channel.close()
        if left and self.store.directory:
            log.info("auditum: closed with %d undelivered event(s); they stay in %s for the next client", left, self.store.directory)
        elif left:  # never silent: without a spool these are gone
            self._report(AuditError(f"closed with {left} undelivered event(s) and no spool_dir: they are lost"))
        return delivered

    def counters(self) -> Counters:
        with self.lock:
            return Counters(self.logged, self.delivered, self.duplicates, self.retried, self.dead_lettered, self.dropped,
                            self.store.total_bytes, self.store.unresolved_count)

    # -- the worker ------------------------------------------------------------------------------
    def _ready(self, now: float) -> bool:
        if self.stopped or self.stopping or len(self.inflight) >= self.options.max_in_flight or now < self.backoff_until:
            return False
        if self.retry:
            return True
        store = self.store
        if not store.unsent_count:
            return False
        if store.unsent_count >= self.options.batch_max_events or self.flushing:
            return True
        return store.first_unsent_at is not None and now - store.first_unsent_at >= self.options.linger

    def _wait_time(self, now: float) -> float | None:
        if self.stopped or self.stopping or len(self.inflight) >= self.options.max_in_flight:
            return None
        if now < self.backoff_until and (self.retry or self.store.unsent_count):
            return self.backoff_until - now
        if self.store.first_unsent_at is not None:
            return max(0.0, self.store.first_unsent_at + self.options.linger - now)
        return None

    def _run(self) -> None:
        while True:
            with self.lock:
                while True:
                    if self.stopping and not self.inflight and not self.completions:
                        return
                    now = time.monotonic()
                    if self.completions or self._ready(now):
                        break
                    self.wake.wait(self._wait_time(now))
                completions = list(self.completions)
                self.completions.clear()
                batch = None if completions else self._take(now)
            try:
                for items, future in completions:
                    self._complete(items, future)
                if batch:
                    self._send(batch)
            except Exception as error:  # an I/O error on the spool: report, keep the worker alive
                self._report(error)
                time.sleep(self.options.retry_initial_delay)

    def _take(self, now: float) -> list[tuple[Segment, int, bytes | None]]:
        options = self.options
        items: list[tuple[Segment, int, bytes | None]] = []
        size = 0
        while self.retry and len(items) < options.batch_max_events:
            segment, ordinal, _ = self.retry[0]
            cost = segment.lengths[ordinal] + 3
            if items and size + cost > options.batch_max_bytes:
                break
            items.append(self.retry.popleft())
            size += cost
        if len(items) < options.batch_max_events and size < options.batch_max_bytes:
            refs = self.store.take(options.batch_max_events - len(items), options.batch_max_bytes - size)
            items.extend((segment, ordinal, None) for segment, ordinal in refs)
        self.inflight.add(None)  # a placeholder until the call starts, so close() waits for it
        return items

    def _send(self, batch: list[tuple[Segment, int, bytes | None]]) -> None:
        try:
            unread = [(segment, ordinal) for segment, ordinal, payload in batch if payload is None]
            if unread and self.options.spool_fsync == "batch":
                self.store.sync({segment for segment, _ in unread})
            payloads = iter(self.store.read(unread))
            items: list[Item] = [(s, o, p if p is not None else next(payloads)) for s, o, p in batch]
            request = transport.encode_append_request([payload for _, _, payload in items])
            future = self.append.future(request, timeout=self.options.call_timeout, metadata=self.metadata)
        except BaseException:
            with self.lock:
                self.inflight.discard(None)
                self.retry.extendleft(reversed(batch))  # type: ignore[arg-type]
            raise
        with self.lock:
            self.inflight.discard(None)
            self.inflight.add(future)
            stopping = self.stopping
        future.add_done_callback(lambda done: self._done(items, done))
        if stopping:
            future.cancel()

    def _done(self, items: list[Item], future: Any) -> None:
        with self.lock:
            self.completions.append((items, future))
            self.wake.notify()

    def _complete(self, items: list[Item], future: Any) -> None:
        with self.lock:
            self.inflight.discard(future)
        try:
            response = future.result()
        except grpc.FutureCancelledError:
            self._requeue(items, None)
            return
        except grpc.RpcError as error:
            self._failed(items, error)
            return
        duplicates = sum(1 for result in response.results if result.duplicate)
        with self.lock:
            self.store.ack([(segment, ordinal) for segment, ordinal, _ in items])
            self.delivered += len(items) - duplicates
            self.duplicates += duplicates
            if self.attempt:
                log.info("auditum: delivery resumed after %d failed attempt(s)", self.attempt)
            self.attempt = 0
            self.progress.notify_all()

    def _requeue(self, items: list[Item], delay: float | None) -> None:
        with self.lock:
            self.retry.extendleft(reversed(items))
            if delay is not None:
                self.backoff_until = time.monotonic() + delay
            self.wake.notify()

    def _failed(self, items: list[Item], error: Any) -> None:
        code, message = error.code(), error.details() or ""
        if code in retry.REJECTED:
            index = retry.rejected_index(message)
            bad = [items[index]] if index is not None and 0 <= index < len(items) else items
            self._dead_letter(bad, code.name, message)
            rest = [item for item in items if item not in bad]
            if rest:
                self._requeue(rest, None)
            return
        if code in retry.AUTH:
            stopped = DeliveryError(code.name, message, stopped=True)
            with self.lock:
                self.stopped = stopped
                self.retry.extendleft(reversed(items))
                self.progress.notify_all()
            self._report(stopped)
            return
        with self.lock:
            self.attempt += 1
            self.retried += len(items)
            attempt = self.attempt
        delay = retry.backoff(attempt, self.options.retry_initial_delay, self.options.retry_max_delay)
        hint = retry.retry_after(error)
        if hint is not None:
            delay = max(delay, hint)
        if attempt == 1:
            self._report(DeliveryError(code.name, f"{message}; retrying with backoff, events stay spooled"))
        log.warning("auditum: Append failed (%s: %s), attempt %d; retrying in %.2f s", code.name, message, attempt, delay)
        self._requeue(items, delay)

    def _dead_letter(self, bad: list[Item], code: str, message: str) -> None:
        lines = [dead_letter_line(code, message, payload) for _, _, payload in bad]
        if self.store.directory:
            append_dead_letters(self.store.directory, lines)
        from .v1 import event_pb2

        ids = [event_pb2.AuditEvent.FromString(payload).id for _, _, payload in bad]
        with self.lock:
            self.store.ack([(segment, ordinal) for segment, ordinal, _ in bad])
            self.dead_lettered += len(bad)
            self.progress.notify_all()
        for event_id in ids:
            self._report(EventRejectedError(code, message, event_id))

    def _report(self, error: Exception) -> None:
        try:
            self.on_error(error)
        except Exception:  # a failing handler must not stop delivery
            log.exception("auditum: the on_error handler raised")
